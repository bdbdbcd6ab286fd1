"""Diversity, repetition and summary statistics of generated replies: pure functions, no model.

The quality metrics that compare replies with references (BLEU, chrF, coherence) live in
:mod:`text_gym.rewards`; these describe the replies themselves. Every function takes sequences of
tokens (token ids, or words from ``str.split``), so the same code measures either.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

from text_gym.errors import check_positive_int

Tokens = Sequence[Hashable]


def ngrams(tokens: Tokens, n: int) -> list[tuple[Hashable, ...]]:
    """Return the ``n``-grams of ``tokens`` in order; none when ``len(tokens) < n``.

    >>> ngrams([1, 2, 3], 2)
    [(1, 2), (2, 3)]
    >>> ngrams("a b".split(), 3)
    []
    """
    _check_n(n)
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(sequences: Iterable[Tokens], n: int) -> float:
    """Distinct-n of a set of replies (Li et al. 2016): distinct ``n``-grams / all ``n``-grams.

    The count is over the whole corpus: an ``n``-gram repeated across two replies counts once in
    the numerator and twice in the denominator, so a model that says the same thing to every
    prompt scores low even when each reply is varied. Replies shorter than ``n`` contribute
    nothing; with no ``n``-gram at all the result is ``0.0``.

    Args:
        sequences: The replies, each a sequence of tokens.
        n: The ``n``-gram order (1 or 2 in the leaderboard).

    Returns:
        A float in [0, 1].

    >>> distinct_n([[1, 2, 3], [1, 2, 4]], 1)   # 4 distinct of 6
    0.6666666666666666
    >>> distinct_n([[1, 2, 3], [1, 2, 4]], 2)   # (1,2) twice, (2,3), (2,4): 3 of 4
    0.75
    >>> distinct_n([[], [7]], 2)
    0.0
    """
    seen: set[tuple[Hashable, ...]] = set()
    total = 0
    for tokens in sequences:
        grams = ngrams(tokens, n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def repeated_ngrams(tokens: Tokens, n: int) -> tuple[int, int]:
    """Return ``(repeats, total)``: ``n``-gram positions whose ``n``-gram occurred earlier in ``tokens``, and all positions.

    >>> repeated_ngrams("the cat the cat the".split(), 2)   # (the cat) (cat the) (the cat)* (cat the)*
    (2, 4)
    >>> repeated_ngrams([5], 2)
    (0, 0)
    """
    grams = ngrams(tokens, n)
    return len(grams) - len(set(grams)), len(grams)


def repetition_rate(sequences: Iterable[Tokens], n: int = 2) -> float:
    """Repetition rate: the fraction of ``n``-grams that repeat an ``n``-gram earlier in the *same* reply.

    For one reply of tokens ``x_1..x_L`` there are ``L - n + 1`` ``n``-gram positions; position
    ``i`` is a repeat when ``(x_i, ..., x_{i+n-1})`` already occurred at some ``j < i``. This is
    ``seq-rep-n`` of Welleck et al. 2020 ("Neural Text Generation with Unlikelihood Training"),
    ``1 - unique / total`` per reply, except that the counts are pooled over replies (repeats of
    all replies / positions of all replies), so that short replies do not get as much weight as
    long ones. Unlike :func:`distinct_n`, repeats *across* replies do not count: this measures
    degenerate loops ("I am a bot. I am a bot."), not a lack of variety between prompts.

    Args:
        sequences: The replies, each a sequence of tokens.
        n: The ``n``-gram order. The leaderboard uses 2: replies are at most a few dozen tokens,
            too short for the ``n = 4`` Welleck et al. use on 100-token continuations.

    Returns:
        A float in [0, 1]; ``0.0`` when no reply has ``n`` tokens.

    >>> repetition_rate(["the cat the cat the".split(), "a b c".split()], 2)   # 2 repeats of 4 + 2
    0.3333333333333333
    >>> repetition_rate([[1, 1, 1, 1]], 1)                                     # 3 of 4 tokens repeat
    0.75
    >>> repetition_rate([[1, 2], [1, 2]], 2)                                   # across replies: no repeat
    0.0
    """
    repeats = total = 0
    for tokens in sequences:
        r, t = repeated_ngrams(tokens, n)
        repeats, total = repeats + r, total + t
    return repeats / total if total else 0.0


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Return the mean and the sample standard deviation (``ddof=1``; 0 for a single value).

    NaNs are ignored; with no finite value the result is ``(nan, nan)``.

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    >>> mean_std([4.0])
    (4.0, 0.0)
    >>> mean_std([])
    (nan, nan)
    """
    finite = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(var)


def _check_n(n: int) -> None:
    check_positive_int("n", n, "the n-gram order")


__all__ = ["distinct_n", "mean_std", "ngrams", "repeated_ngrams", "repetition_rate"]
