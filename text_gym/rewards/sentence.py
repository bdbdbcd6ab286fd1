"""Sentence-level sacrebleu metrics, fast enough to score every env step.

``sacrebleu.sentence_bleu`` and ``sentence_chrf`` build a new metric and re-tokenize and re-count
the references on every call. Under ``reward_shaping="delta"`` the env scores the same references
after every token, so :class:`SentenceMetric` reuses one metric object and caches each reference
tuple's n-gram counts (:func:`functools.lru_cache`); only the hypothesis side is computed per call.

The metric's hooks (``_preprocess_segment``, ``_extract_reference_info``,
``_compute_segment_statistics``) are the ones sacrebleu's own reference cache is built on
(``Metric._cache_references``); tests pin the results to sacrebleu's sentence functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from text_gym.rewards.base import check_batch, reference_tuple

REFERENCE_CACHE_SIZE = 2**14
"""Distinct reference tuples kept per metric and process; a dataset's worth, each a few small Counters."""


class SentenceMetric:
    """Score outputs against their references with one sacrebleu metric, references cached.

    Args:
        metric: A sacrebleu metric object (``BLEU(effective_order=True)``, ``CHRF()``).
        score: Turns the metric's segment statistics into a score in [0, 100].
    """

    def __init__(self, metric: Any, score: Callable[[Any, list], float]) -> None:
        self.metric = metric
        self._score = score
        # Shared between calls: sacrebleu only reads these Counters when scoring a hypothesis.
        self._references = lru_cache(maxsize=REFERENCE_CACHE_SIZE)(self._reference_info)

    def _reference_info(self, references: tuple[str, ...]) -> dict[str, Any]:
        return self.metric._extract_reference_info([self.metric._preprocess_segment(ref) for ref in references])

    def one(self, output: str, references: Sequence[str]) -> float:
        """The score of one output in [0, 1] (clipped: identical texts can round to 100.00000000000004)."""
        if not isinstance(output, str):
            raise TypeError(f"Expected each output to be a string, got {output!r} ({type(output).__name__}).")
        info = self._references(reference_tuple(references))
        stats = self.metric._compute_segment_statistics(self.metric._preprocess_segment(output), info)
        return min(self._score(self.metric, stats) / 100.0, 1.0)

    def __call__(self, outputs: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        """A ``float64`` array with the score of each output, shape ``(len(outputs),)``."""
        n = check_batch(outputs, references)
        return np.fromiter(map(self.one, outputs, references), dtype=np.float64, count=n)


class SentenceReward:
    """A reward that is a sentence metric of each output against its references; prompts are ignored.

    Subclasses name the metric (``name``) and compute it (``metric``). They hold no state (the
    metric and its reference cache are per process), so they pickle cheaply.
    """

    name = ""

    def metric(self, outputs: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        """The metric of each output, in [0, 1]."""
        raise NotImplementedError

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Return the metric of each output, a ``float64`` array of shape ``(len(outputs),)``."""
        check_batch(outputs, references, prompts)
        return self.metric(outputs, references)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
