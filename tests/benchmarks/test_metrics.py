"""benchmarks.metrics against hand-counted values, including empty and identical inputs."""

from __future__ import annotations

import doctest
import math

import pytest

from benchmarks import metrics
from benchmarks.metrics import distinct_n, mean_std, ngrams, repeated_ngrams, repetition_rate


def test_doctests() -> None:
    result = doctest.testmod(metrics)
    assert result.attempted > 0 and result.failed == 0


def test_distinct_n_hand_made() -> None:
    replies = ["the cat sat".split(), "the cat ran".split()]
    # unigrams: the cat sat the cat ran -> 4 distinct of 6; bigrams: (the cat) x2, (cat sat), (cat ran) -> 3 of 4
    assert distinct_n(replies, 1) == pytest.approx(4 / 6)
    assert distinct_n(replies, 2) == pytest.approx(3 / 4)
    assert distinct_n(replies, 3) == pytest.approx(2 / 2)


def test_distinct_n_identical_and_empty() -> None:
    assert distinct_n([[1, 2]] * 5, 2) == pytest.approx(1 / 5)  # the same reply to every prompt
    assert distinct_n([], 1) == 0.0
    assert distinct_n([[], []], 1) == 0.0
    assert distinct_n([[3]], 2) == 0.0  # shorter than n: no n-gram


def test_repetition_rate_hand_made() -> None:
    loop = (
        "I am a bot . I am a bot .".split()
    )  # bigrams 2..5 of the second sentence repeat: (I am) (am a) (a bot) (bot .)
    assert repeated_ngrams(loop, 2) == (4, 9)
    assert repetition_rate([loop], 2) == pytest.approx(4 / 9)
    # Pooled over replies: 4 repeats of 9 + 0 of 2.
    assert repetition_rate([loop, "no loop here".split()], 2) == pytest.approx(4 / 11)
    assert repetition_rate([[7, 7, 7]], 1) == pytest.approx(2 / 3)


def test_repetition_rate_ignores_repeats_across_replies_and_empty() -> None:
    assert repetition_rate([[1, 2, 3], [1, 2, 3]], 2) == 0.0
    assert repetition_rate([], 2) == 0.0
    assert repetition_rate([[1]], 2) == 0.0


def test_ngrams_rejects_bad_order() -> None:
    with pytest.raises(ValueError, match="positive int"):
        ngrams([1, 2], 0)
    with pytest.raises(ValueError, match="got True"):
        distinct_n([[1, 2]], True)  # type: ignore[arg-type]


def test_mean_std() -> None:
    assert mean_std([2.0, 4.0]) == pytest.approx((3.0, math.sqrt(2.0)))
    assert mean_std([1.0, float("nan")]) == (1.0, 0.0)
    mean, std = mean_std([float("nan")])
    assert math.isnan(mean) and math.isnan(std)
