"""The paired bootstrap against intervals worked out by hand."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from benchmarks import stats
from benchmarks.stats import paired_bootstrap


def test_doctests() -> None:
    result = doctest.testmod(stats)
    assert result.attempted > 0 and result.failed == 0


def test_constant_differences_give_a_zero_width_interval_at_the_constant() -> None:
    rng = np.random.default_rng(1)
    b = rng.random((3, 40))
    interval = paired_bootstrap(b + 0.02, b)  # every prompt of every seed gains exactly 0.02

    assert interval["mean"] == pytest.approx(0.02)
    assert interval["low"] == pytest.approx(0.02) and interval["high"] == pytest.approx(0.02)
    assert (interval["seeds"], interval["prompts"], interval["n_resamples"]) == (3, 40, 10_000)


def test_two_prompts_zero_and_one() -> None:
    # One seed, differences (0, 1): a resample's mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles are 0 and 1 and the observed mean is 0.5.
    interval = paired_bootstrap([1.0, 1.0], [1.0, 0.0])

    assert (interval["mean"], interval["low"], interval["high"]) == (0.5, 0.0, 1.0)


def test_seeds_are_resampled_too() -> None:
    # Each seed is constant over prompts: resampling prompts alone would give a zero-width
    # interval at 0.5; drawing the seeds with replacement gives both seeds alone (p = 1/4 each).
    diff = np.array([[0.0] * 50, [1.0] * 50])
    interval = paired_bootstrap(diff, np.zeros((1, 50)))

    assert interval["mean"] == 0.5 and (interval["low"], interval["high"]) == (0.0, 1.0)


def test_reproducible_for_a_seed() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 30)), rng.random((3, 30))

    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    assert paired_bootstrap(a, b, seed=7) != paired_bootstrap(a, b, seed=8)


def test_interval_is_symmetric_for_a_symmetric_case() -> None:
    diff = np.tile([-1.0, 1.0], (2, 25))  # mean 0, symmetric around it
    interval = paired_bootstrap(diff, np.zeros_like(diff), n_resamples=20_000)

    assert interval["mean"] == 0.0
    assert interval["low"] == pytest.approx(-interval["high"], abs=0.03) and interval["low"] < -0.1


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        (np.zeros((2, 3)), np.zeros((2, 4)), {}, "same prompts"),
        (np.zeros((3, 3)), np.zeros((2, 3)), {}, "same prompts"),
        (np.zeros((0, 3)), np.zeros((1, 3)), {}, "non-empty"),
        ([np.nan], [0.0], {}, "finite"),
        ([1.0], [0.0], {"n_resamples": 0}, "n_resamples"),
        ([1.0], [0.0], {"confidence": 1.0}, "confidence"),
    ],
)
def test_bad_inputs(a: object, b: object, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(a, b, **kwargs)
