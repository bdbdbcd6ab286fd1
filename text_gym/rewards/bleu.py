"""BLEU (Papineni et al. 2002) through sacrebleu, fast enough to score every env step.

Sentence scores equal ``min(sacrebleu.sentence_bleu(out, refs).score / 100, 1)`` exactly: the 13a
tokenizer, exponential smoothing and ``effective_order=True``, as sacrebleu recommends at the
sentence level. ``sacrebleu.sentence_bleu`` builds a new metric and re-tokenizes and re-counts the
references on every call; under ``reward_shaping="delta"`` the env scores the same references
after every token, so here one metric object is reused and each reference tuple's n-gram counts
are cached (:func:`functools.lru_cache`). Only the hypothesis side is computed per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from sacrebleu.metrics.bleu import BLEU as _SacreBLEU

from text_gym.rewards.base import check_batch, reference_tuple

# The metric's hooks (_preprocess_segment, _extract_reference_info, _compute_segment_statistics,
# _compute_score_from_stats) are the ones sacrebleu's own reference cache is built on
# (Metric._cache_references); tests pin their results to sacrebleu.sentence_bleu.
_SENTENCE = _SacreBLEU(effective_order=True)
_CORPUS = _SacreBLEU()  # the defaults of sacrebleu.corpus_bleu

REFERENCE_CACHE_SIZE = 2**14
"""Distinct reference tuples kept per process; a dataset's worth, each a few small Counters."""


@lru_cache(maxsize=REFERENCE_CACHE_SIZE)
def _reference_info(references: tuple[str, ...]) -> dict[str, Any]:
    # Shared between calls: sacrebleu only reads these Counters when scoring a hypothesis.
    return _SENTENCE._extract_reference_info([_SENTENCE._preprocess_segment(ref) for ref in references])


def _sentence_bleu(output: str, references: Sequence[str]) -> float:
    if not isinstance(output, str):
        raise TypeError(f"Expected each output to be a string, got {output!r} ({type(output).__name__}).")
    info = _reference_info(reference_tuple(references))
    stats = _SENTENCE._compute_segment_statistics(_SENTENCE._preprocess_segment(output), info)
    # exp(mean(log p)) of identical texts rounds to 100.00000000000004; keep the [0, 1] promise.
    return min(_SENTENCE._compute_score_from_stats(stats).score / 100.0, 1.0)


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
    n = check_batch(outputs, references)
    return np.fromiter(map(_sentence_bleu, outputs, references), dtype=np.float64, count=n)


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


class BLEU:
    """Sentence BLEU as a reward, in [0, 1]: :func:`sentence_bleu` of each output; prompts are ignored.

    Holds no state (the metric and the reference cache are per process), so it pickles cheaply.

    Example:
        >>> BLEU()(["Translate: chat"], ["the cat"], [["the cat", "a cat"]])
        array([1.])
    """

    name = "bleu"

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Return the sentence BLEU of each output; see :func:`sentence_bleu`."""
        check_batch(outputs, references, prompts)
        return sentence_bleu(outputs, references)

    def __repr__(self) -> str:
        return "BLEU()"
