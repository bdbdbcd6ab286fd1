"""Confidence intervals for the benchmarks: the paired bootstrap over seeds and prompts.

Two arms played the same test prompts under the same seeds give two ``(seeds, prompts)`` arrays of
per-prompt scores. The interval of their mean difference must carry both sources of noise: which
prompts the test split happened to hold, and which seed the training happened to draw. So each
resample draws seeds with replacement, then, for every drawn seed, prompts with replacement
(the same prompts for both arms: the difference is paired), as in the hierarchical bootstrap of
Efron and Tibshirani (1993, ch. 8)::

    from benchmarks.stats import paired_bootstrap

    interval = paired_bootstrap(rl_bleu, sft_bleu)   # (3, 67) arrays: 3 seeds x 67 test prompts
    interval["mean"], interval["low"], interval["high"]
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["paired_bootstrap"]

_CHUNK = 1_000  # resamples drawn at once: memory stays at _CHUNK x seeds x prompts indices


def paired_bootstrap(
    a: Any,
    b: Any,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """The percentile bootstrap interval of ``mean(a - b)``, resampling seeds, then prompts.

    Args:
        a: Per-prompt scores of one arm, shape ``(seeds, prompts)`` (a 1-D array is one seed).
        b: The other arm's scores on the same prompts, same shape; a single row ``(1, prompts)``
            is broadcast to every seed (an arm that does not depend on the seed, like copy-prompt).
        n_resamples: Bootstrap resamples.
        confidence: The interval's coverage, in (0, 1).
        seed: Seeds the resampling, so a report's interval can be reproduced.

    Returns:
        ``{"mean": the observed mean difference, "low": ..., "high": ..., "confidence": ...,
        "n_resamples": ..., "seeds": ..., "prompts": ...}``.

    Raises:
        ValueError: The shapes do not pair up, an array is empty or not finite, or
            ``n_resamples`` / ``confidence`` is out of range.

    Example:
        >>> paired_bootstrap([[0.5, 0.5], [0.5, 0.5]], [[0.25, 0.25]])["low"]
        0.25
    """
    diff = _paired_differences(a, b)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples: expected a positive int, got {n_resamples!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a float in (0, 1), got {confidence!r}.")
    n_seeds, n_prompts = diff.shape
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        seeds = rng.integers(n_seeds, size=(size, n_seeds))  # (R, S): seeds drawn with replacement
        prompts = rng.integers(n_prompts, size=(size, n_seeds, n_prompts))  # (R, S, P): prompts, per drawn seed
        means.append(diff[seeds[:, :, None], prompts].mean(axis=(1, 2)))  # (R,)
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.concatenate(means), [tail, 1 - tail])
    return {
        "mean": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "confidence": confidence,
        "n_resamples": n_resamples,
        "seeds": n_seeds,
        "prompts": n_prompts,
    }


def _paired_differences(a: Any, b: Any) -> np.ndarray:
    """``a - b`` as a ``(seeds, prompts)`` float array, with a one-row ``b`` broadcast over seeds."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.ndim != 2 or b.ndim != 2 or a.size == 0 or b.size == 0:
        raise ValueError(
            f"Expected non-empty (seeds, prompts) arrays of per-prompt scores, got shapes {a.shape} and {b.shape}."
        )
    if a.shape[1] != b.shape[1] or (b.shape[0] not in (1, a.shape[0]) and a.shape[0] != 1):
        raise ValueError(
            f"Expected scores of the same prompts under the same seeds, got shapes {a.shape} and {b.shape}; "
            "play both arms on every prompt of the split, for every seed (or once, for a seed-free arm)."
        )
    diff = a - b
    if not np.isfinite(diff).all():
        raise ValueError("Expected finite per-prompt scores, got NaN or infinity; check the evaluation.")
    return diff
