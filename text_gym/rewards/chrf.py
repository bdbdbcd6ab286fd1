"""chrF (Popović 2015), the character n-gram F-score, through sacrebleu.

Scores equal ``sacrebleu.sentence_chrf(out, refs).score / 100`` (character order 6, no word
n-grams, beta 2). Computed by :class:`~text_gym.rewards.sentence.SentenceMetric` (references cached).
chrF gives partial credit for partly right words, so it is a denser signal than BLEU for short
replies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics.chrf import CHRF as _SacreCHRF

from text_gym.rewards.sentence import SentenceMetric, SentenceReward

# With several references sacrebleu keeps the statistics of the best-scoring one.
_SENTENCE = SentenceMetric(
    _SacreCHRF(), lambda metric, stats: metric._compute_f_score(stats)
)  # sentence_chrf's defaults


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
    return _SENTENCE(outputs, references)


class CHRF(SentenceReward):
    """chrF as a reward, in [0, 1]: :func:`sentence_chrf` of each output; prompts are ignored.

    Example:
        >>> CHRF()(["Say hi"], ["hello"], [["hello", "hi"]])
        array([1.])
    """

    name = "chrf"

    metric = staticmethod(sentence_chrf)
