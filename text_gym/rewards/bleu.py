"""BLEU (Papineni et al. 2002) through sacrebleu, fast enough to score every env step.

Sentence scores equal ``min(sacrebleu.sentence_bleu(out, refs).score / 100, 1)`` exactly: the 13a
tokenizer, exponential smoothing and ``effective_order=True``, as sacrebleu recommends at the
sentence level, computed by :class:`~text_gym.rewards.sentence.SentenceMetric` (references cached).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics.bleu import BLEU as _SacreBLEU

from text_gym.rewards.base import check_batch, reference_tuple
from text_gym.rewards.sentence import SentenceMetric, SentenceReward

_SENTENCE = SentenceMetric(
    _SacreBLEU(effective_order=True), lambda metric, stats: metric._compute_score_from_stats(stats).score
)
_CORPUS = _SacreBLEU()  # the defaults of sacrebleu.corpus_bleu


def sentence_bleu(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Return the sentence BLEU of each output against its references, in [0, 1].

    With several references, n-gram matches are clipped by the highest count of that n-gram in
    any one reference, and the brevity penalty uses the reference length closest to the output's.

    Args:
        outputs: The generated texts.
        references: One or more reference strings per output.

    Returns:
        A ``float64`` array of shape ``(len(outputs),)``. An empty output scores 0.

    Example:
        >>> sentence_bleu(["the cat sat on the mat", "", "dogs bark"], [["the cat sat on the mat"], ["hi"], ["cats purr"]])
        array([1., 0., 0.])
        >>> sentence_bleu(["the cat sat"], [["a dog sat", "the cat sat"]])
        array([1.])
    """
    return _SENTENCE(outputs, references)


def corpus_bleu(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Return the corpus BLEU of ``outputs``, in [0, 1]; samples may have different numbers of references.

    Equals ``sacrebleu.corpus_bleu`` (no effective order). sacrebleu takes references as streams,
    ``streams[k][i]`` being the ``k``-th reference of sample ``i``; a sample with fewer references
    pads its streams with ``None``, which sacrebleu drops per sample (``Metric._cache_references``).
    Padding with ``""`` would instead count an empty reference, changing the brevity penalty.

    Example:
        >>> corpus_bleu(["the cat sat on the mat", "a dog barked loudly"], [["the cat sat on the mat"], ["x", "a dog barked loudly"]])
        1.0
    """
    n = check_batch(outputs, references)
    if n == 0:
        raise ValueError("Expected at least one output for corpus BLEU, got none.")
    for output in outputs:
        if not isinstance(output, str):
            raise TypeError(f"Expected each output to be a string, got {output!r} ({type(output).__name__}).")
    samples = [reference_tuple(refs) for refs in references]
    width = max(map(len, samples))
    streams = [[refs[k] if k < len(refs) else None for refs in samples] for k in range(width)]
    return min(_CORPUS.corpus_score(list(outputs), streams).score / 100.0, 1.0)


class BLEU(SentenceReward):
    """Sentence BLEU as a reward, in [0, 1]: :func:`sentence_bleu` of each output; prompts are ignored.

    Example:
        >>> BLEU()(["Translate: chat"], ["the cat"], [["the cat", "a cat"]])
        array([1.])
    """

    name = "bleu"

    metric = staticmethod(sentence_bleu)
