"""chrF (Popović 2015), the character n-gram F-score, through sacrebleu.

Scores equal ``sacrebleu.sentence_chrf(out, refs).score / 100`` (character order 6, no word
n-grams, beta 2). As in :mod:`text_gym.rewards.bleu`, one metric object is reused and each reference
tuple's n-gram counts are cached, since the env re-scores the same references after every token.
chrF gives partial credit for partly right words, so it is a denser signal than BLEU for short
replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from sacrebleu.metrics.chrf import CHRF as _SacreCHRF

from text_gym.rewards.base import check_batch, reference_tuple

_METRIC = _SacreCHRF()  # the defaults of sacrebleu.sentence_chrf

REFERENCE_CACHE_SIZE = 2**14
"""Distinct reference tuples kept per process."""


@lru_cache(maxsize=REFERENCE_CACHE_SIZE)
def _reference_info(references: tuple[str, ...]) -> dict[str, Any]:
    # Shared between calls: sacrebleu only reads these Counters when scoring a hypothesis.
    return _METRIC._extract_reference_info([_METRIC._preprocess_segment(ref) for ref in references])


def _sentence_chrf(output: str, references: Sequence[str]) -> float:
    if not isinstance(output, str):
        raise TypeError(f"Expected each output to be a string, got {output!r} ({type(output).__name__}).")
    info = _reference_info(reference_tuple(references))
    # With several references sacrebleu keeps the statistics of the best-scoring one.
    stats = _METRIC._compute_segment_statistics(_METRIC._preprocess_segment(output), info)
    return min(_METRIC._compute_f_score(stats) / 100.0, 1.0)  # clip float rounding, as for BLEU


def sentence_chrf(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Return the chrF of each output against its best-matching reference, in [0, 1].

    Args:
        outputs: The generated texts.
        references: One or more reference strings per output.

    Returns:
        A ``float64`` array of shape ``(len(outputs),)``. An empty output scores 0.

    Example:
        >>> sentence_chrf(["the cat sat", "", "the cats"], [["the cat sat"], ["hi"], ["the cat"]]).round(3)
        array([1.   , 0.   , 0.933])
    """
    n = check_batch(outputs, references)
    return np.fromiter(map(_sentence_chrf, outputs, references), dtype=np.float64, count=n)


class CHRF:
    """chrF as a reward, in [0, 1]: :func:`sentence_chrf` of each output; prompts are ignored.

    Example:
        >>> CHRF()(["Say hi"], ["hello"], [["hello", "hi"]])
        array([1.])
    """

    name = "chrf"

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Return the chrF of each output; see :func:`sentence_chrf`."""
        check_batch(outputs, references, prompts)
        return sentence_chrf(outputs, references)

    def __repr__(self) -> str:
        return "CHRF()"
