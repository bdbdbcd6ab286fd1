"""SARI (Xu et al. 2016), the standard metric for text simplification and other rewriting tasks.

SARI ("System output Against References and against the Input") judges an output by what it did
to its *source*: which source n-grams it kept, which it deleted and which new ones it added,
each compared with what the references did (Xu et al. 2016, "Optimizing Statistical Machine
Translation for Text Simplification", TACL 4). For n = 1..4::

    SARI = (mean_n F1_keep + mean_n P_delete + mean_n F1_add) / 3

Deletion is scored by precision alone, as in the paper: deletion recall would reward dropping
everything. Source and output n-gram counts are multiplied by the number of references, and
reference counts are summed over the references, so an n-gram that only some references keep
earns partial credit (the weighting of the original SARI.py, cocoxu/simplification).

This module follows the tensor2tensor variant (``utils/sari_hook.py``) that HF ``evaluate``'s
``sari`` and EASSE's ``sentence_sari`` reproduce, which differs from the original SARI.py
(commit 0210f15) in two documented ways:

1. An empty ratio (0/0) counts as 1, not 0. With the original convention an output identical to
   its source and to its only reference scores 1/3 (nothing to delete or add scores 0), a poor
   reward for getting it exactly right; here it scores 1.
2. Keep recall is the kept-and-wanted n-gram count over the wanted count, not a mean of per-n-gram
   ratios (cocoxu/simplification issue 6). It moves the paper's example from 0.2683 to 0.2695.

Text is normalised as HF ``evaluate`` does: lower-cased, then split into words by sacrebleu's
13a tokenizer, so ``"accepted."`` and ``"accepted ."`` score alike. One deliberate difference:
an empty text has no n-grams here, whereas ``"".split(" ")`` gives HF one empty-string token.
As in :mod:`text_gym.rewards.bleu`, the source and reference statistics of each sample are cached,
since the env re-scores the same sample after every token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from text_gym.rewards.base import check_batch, reference_tuple

MAX_ORDER = 4
"""n-grams of orders 1..4 are scored, as in the paper."""

REFERENCE_CACHE_SIZE = 2**14
"""Distinct ``(source, references)`` pairs whose n-gram statistics are kept per process."""

_TOKENIZER = Tokenizer13a()  # the tokenizer of HF evaluate's sari and of EASSE; it caches its own calls

NGram = tuple[str, ...]


class _OrderStats(NamedTuple):
    """What one n-gram order of one ``(source, references)`` pair contributes, output aside."""

    source: Counter[NGram]  # source counts × number of references
    references: Counter[NGram]  # counts summed over the references
    wanted_kept: int  # total of min(source, references): what a perfect output keeps
    wanted_added: frozenset[NGram]  # n-grams of some reference that are not in the source


class _SampleStats(NamedTuple):
    num_references: int
    orders: tuple[_OrderStats, ...]  # one per order, 1..MAX_ORDER


def _tokens(text: str) -> list[str]:
    return _TOKENIZER(text.lower()).split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter[NGram]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@lru_cache(maxsize=REFERENCE_CACHE_SIZE)
def _sample_stats(source: str, references: tuple[str, ...]) -> _SampleStats:
    # Shared between calls: _order_scores only reads these Counters.
    source_tokens = _tokens(source)
    reference_tokens = [_tokens(ref) for ref in references]
    k = len(references)
    orders = []
    for n in range(1, MAX_ORDER + 1):
        source_counts = Counter({gram: count * k for gram, count in _ngrams(source_tokens, n).items()})
        reference_counts: Counter[NGram] = Counter()
        for tokens in reference_tokens:
            reference_counts.update(_ngrams(tokens, n))
        orders.append(
            _OrderStats(
                source=source_counts,
                references=reference_counts,
                wanted_kept=sum((source_counts & reference_counts).values()),
                wanted_added=frozenset(reference_counts.keys() - source_counts.keys()),
            )
        )
    return _SampleStats(num_references=k, orders=tuple(orders))


def _mean_ratio(good: Counter[NGram], done: Counter[NGram]) -> float:
    """Mean over the n-grams of ``done`` of ``good / done``; 1 when ``done`` is empty (0/0 = 1)."""
    if not done:
        return 1.0
    return sum(good[gram] / count for gram, count in done.items()) / len(done)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0  # 0/0 = 1, see the module docstring


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total > 0 else 0.0


def _order_scores(stats: _OrderStats, output_counts: Counter[NGram], k: int) -> tuple[float, float, float]:
    """Return ``(F1_keep, P_delete, F1_add)`` for one n-gram order."""
    output = Counter({gram: count * k for gram, count in output_counts.items()})
    # Counter & takes the minimum count and Counter - keeps the positive differences.
    kept = stats.source & output
    kept_wanted = kept & stats.references
    keep = _f1(_mean_ratio(kept_wanted, kept), _ratio(sum(kept_wanted.values()), stats.wanted_kept))
    deleted = stats.source - output
    delete = _mean_ratio(deleted - stats.references, deleted)
    # Additions are scored on n-gram types, not counts, as in the paper.
    added = output_counts.keys() - stats.source.keys()
    added_wanted = len(added & stats.wanted_added)
    add = _f1(_ratio(added_wanted, len(added)), _ratio(added_wanted, len(stats.wanted_added)))
    return keep, delete, add


def _check_text(kind: str, text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"Expected each {kind} to be a string, got {text!r} ({type(text).__name__}).")
    return text


def _sentence_sari(source: str, output: str, references: Sequence[str]) -> float:
    stats = _sample_stats(_check_text("source", source), reference_tuple(references))
    output_tokens = _tokens(_check_text("output", output))
    keep = delete = add = 0.0
    for n, order in enumerate(stats.orders, start=1):
        k, d, a = _order_scores(order, _ngrams(output_tokens, n), stats.num_references)
        keep, delete, add = keep + k, delete + d, add + a
    return (keep + delete + add) / (3 * MAX_ORDER)


def sentence_sari(sources: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Return the SARI of each output, given the source it rewrites and its references, in [0, 1].

    Args:
        sources: The texts the outputs transform (for a simplification task, the complex sentence).
        outputs: The generated texts.
        references: One or more reference rewrites per output.

    Returns:
        A ``float64`` array of shape ``(len(outputs),)``; HF ``evaluate``'s ``sari`` / 100 on non-empty texts.
        Output, source and reference all identical score 1; empty texts are allowed and score a
        finite value (an empty output that should have been empty scores 1). Under the 0/0 = 1
        convention an order with no n-grams anywhere scores 1, so texts of fewer than four words
        get those orders free: ``sentence_sari(["a"], [""], [["a"]])`` is 5/6.

    Raises:
        ValueError: the three sequences differ in length, or a sample has no reference.
        TypeError: a source, output or reference is not a string, or references are a bare string.

    Example:
        The example of HF ``evaluate``'s metric card (there 26.953601953601954, on a 0-100 scale):

        >>> refs = ["About 95 species are currently known.", "About 95 species are now accepted.",
        ...         "95 species are now accepted."]
        >>> sentence_sari(["About 95 species are currently accepted."], ["About 95 you now get in."], [refs])
        array([0.26953602])

        Copying the source earns less than the reference's rewrite:

        >>> sentence_sari(["the cat perched on the mat"] * 2, ["the cat perched on the mat", "the cat sat on the mat"],
        ...               [["the cat sat on the mat"]] * 2).round(4)
        array([0.5032, 1.    ])
    """
    if len(sources) != len(outputs):
        raise ValueError(
            f"Expected one source per output, got {len(sources)} sources and {len(outputs)} outputs; "
            "pass the text each output rewrites."
        )
    n = check_batch(outputs, references)
    return np.fromiter(map(_sentence_sari, sources, outputs, references), dtype=np.float64, count=n)


class SARI:
    """SARI as a reward, in [0, 1]: :func:`sentence_sari` of each output against its source.

    The environment passes each sample's *source* as ``prompts``: the text the reply must
    transform (for "Simplify: <sentence>" the sentence), or the raw prompt when the sample has no
    separate source. Unlike BLEU, SARI pays for changing the source the way the references do, so
    copying the input is not a high-scoring strategy (though not a zero one: deleting nothing has
    nothing wrongly deleted).

    Holds no state (the statistics cache is per process), so it pickles cheaply.

    Example:
        >>> SARI()(["the cat perched on the mat"], ["the cat sat on the mat"], [["the cat sat on the mat"]])
        array([1.])
    """

    name = "sari"

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Return the SARI of each output, with ``prompts`` as the sources; see :func:`sentence_sari`."""
        check_batch(outputs, references, prompts)
        return sentence_sari(prompts, outputs, references)

    def __repr__(self) -> str:
        return "SARI()"
