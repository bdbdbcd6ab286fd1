"""Source BLEU: how much an output copies its source, as a penalty against copying the input.

On tasks whose reply transforms a source text (translate, simplify, paraphrase), BLEU against
the references pays an agent for copying the source wherever source and reference share words,
and copying is an easy local optimum for a policy. :class:`SourceBLEU` scores each output with
:func:`~text_gym.rewards.bleu.sentence_bleu` against its source as the single reference; with a
negative weight it takes that pay back::

    from text_gym.rewards import make_reward

    reward = make_reward({"bleu": 1.0, "source-bleu": -0.5})
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from text_gym.rewards.base import check_batch
from text_gym.rewards.bleu import sentence_bleu


def _as_reference(source: object) -> list[str]:
    if not isinstance(source, str):
        raise TypeError(f"Expected each prompt (source) to be a string, got {source!r} ({type(source).__name__}).")
    return [source]


class SourceBLEU:
    """Sentence BLEU of each output against its source, in [0, 1]; the references are ignored.

    The environment passes each sample's *source* as ``prompts``: the text the reply must
    transform (for "Translate to French: Save" the source is "Save"), or the raw prompt when the
    sample has no separate source. Scores follow :func:`~text_gym.rewards.bleu.sentence_bleu`
    (sacrebleu's 13a tokenizer, exponential smoothing, effective order), so an exact copy scores
    1 and an output sharing no word with its source scores 0. Give it a negative weight to
    penalise copying; a weight of 0 keeps it as a logged metric.

    Holds no state, so it pickles cheaply.

    Example:
        >>> source_bleu = SourceBLEU()
        >>> source_bleu(["Save the file"], ["Save the file"], [["Enregistrer le fichier"]])
        array([1.])
        >>> from text_gym.rewards import make_reward
        >>> reward = make_reward({"bleu": 1.0, "source-bleu": -0.5})
        >>> reward(["Save the file"] * 2, ["Save the file", "Enregistrer le fichier"], [["Enregistrer le fichier"]] * 2)
        array([-0.5,  1. ])
    """

    name = "source-bleu"

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Return the sentence BLEU of each output against ``prompts[i]``, its source."""
        check_batch(outputs, references, prompts)
        return sentence_bleu(outputs, [_as_reference(source) for source in prompts])

    def __repr__(self) -> str:
        return "SourceBLEU()"
