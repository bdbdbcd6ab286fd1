"""Synthetic tasks whose exact references the project generates itself, so the ceiling is known.

=================  ==============================================  ===================
Task               Example prompt                                  Reference
=================  ==============================================  ===================
``copy``           ``Repeat exactly: apple river stone``           ``apple river stone``
``reverse``        ``Reverse the word order: apple river stone``   ``stone river apple``
``sort``           ``Sort alphabetically: river apple stone``      ``apple river stone``
``number-words``   ``Write 42 in words.``                          ``forty-two``
``arithmetic``     ``What is 37 + 5? Answer with the number.``     ``42``
``echo-letter``    ``Say: a``                                      ``a``
=================  ==============================================  ===================

Samples are drawn per split by a NumPy generator seeded from ``(task, split)``, keeping only
prompts whose :func:`~text_gym.tasks.base.split_of` is that split, so the splits are disjoint.
NumPy promises a stable bit stream for a seed, not stable ``Generator`` methods, so a future NumPy
may in principle draw different samples.
"""

from __future__ import annotations

from collections.abc import Callable
from string import ascii_lowercase

import numpy as np

from text_gym.errors import DatasetError, check_positive_int
from text_gym.tasks.base import ALL, SPLITS, ListTask, Sample, check_split, split_of, stable_hash

SIZES = {"train": 2000, "validation": 200, "test": 200}

# 200 common, short, lower-case English nouns: each is one or two tokens for most tokenizers.
VOCABULARY: tuple[str, ...] = tuple(
    """
    act air ant apple arm art baby back bag ball band bank bean bear bed bell bird boat body bone
    book bottle box boy bread bridge bus cake call candle cap car card cat chain chair cheese city
    class clock cloud coat coin cold corn corner cow cup dance day desk dog door dream dress drink
    drum duck ear earth egg eye face farm field fire fish flag floor flower fly food foot forest
    fork friend frog fruit game garden gate gift girl glass glove gold grass green hair hand hat
    head heart hill hole home honey horse house ice iron island jam jar key king kite lake lamp
    leaf leg letter light lion lip lock map milk moon mother mouse music name nest net night nose
    note nut ocean oil orange page paint paper park pear pen pencil piano pig pipe plane plant
    plate pool queen rain ring river road rock roof room rope rose salt sand school sea seed sheep
    ship shoe shop sister sky snow sock song spoon star stone street sun table tail tea teeth tent
    tiger toe town toy train tree truck van wall water wave wheel wind window wing winter wolf wood
    yard zoo
    """.split()
)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_to_words(number: int) -> str:
    """Spell out an integer from 0 to 9999 in English, American style (no "and").

    Tens and ones are hyphenated, as style guides recommend.

    Example:
        >>> number_to_words(42)
        'forty-two'
        >>> number_to_words(1000), number_to_words(0), number_to_words(9105)
        ('one thousand', 'zero', 'nine thousand one hundred five')
    """
    if isinstance(number, bool) or not isinstance(number, (int, np.integer)):
        raise TypeError(f"Expected an int, got {type(number).__name__}.")
    if not 0 <= number <= 9999:
        raise ValueError(f"Expected a number from 0 to 9999, got {number}.")
    number = int(number)
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    head, rest = divmod(number, 1000) if number >= 1000 else divmod(number, 100)
    unit = "thousand" if number >= 1000 else "hundred"
    return f"{_ONES[head]} {unit}" + (f" {number_to_words(rest)}" if rest else "")


def _words(rng: np.random.Generator) -> list[str]:
    # 3 to 5 distinct words: long enough to need real copying, short enough for a 135M model.
    count = int(rng.integers(3, 6))
    return [VOCABULARY[i] for i in rng.choice(len(VOCABULARY), size=count, replace=False)]


def _copy(rng: np.random.Generator) -> Sample:
    text = " ".join(_words(rng))
    return Sample(f"Repeat exactly: {text}", (text,), source=text)


def _reverse(rng: np.random.Generator) -> Sample:
    words = _words(rng)
    return Sample(f"Reverse the word order: {' '.join(words)}", (" ".join(reversed(words)),), source=" ".join(words))


def _sort(rng: np.random.Generator) -> Sample:
    words = _words(rng)
    return Sample(f"Sort alphabetically: {' '.join(words)}", (" ".join(sorted(words)),), source=" ".join(words))


def _number_words(rng: np.random.Generator) -> Sample:
    number = int(rng.integers(0, 10000))
    return Sample(f"Write {number} in words.", (number_to_words(number),))


def _arithmetic(rng: np.random.Generator) -> Sample:
    # a + b and a - b with a, b < 100 (a >= b, so answers are never negative); a * b with a
    # single-digit b. About 15,000 distinct prompts, enough for 2,000 train samples.
    op = ("+", "-", "*")[int(rng.integers(3))]
    a, b = int(rng.integers(100)), int(rng.integers(10 if op == "*" else 100))
    if op == "-" and a < b:
        a, b = b, a
    answer = a + b if op == "+" else a - b if op == "-" else a * b
    return Sample(f"What is {a} {op} {b}? Answer with the number.", (str(answer),))


GENERATORS: dict[str, Callable[[np.random.Generator], Sample]] = {
    "copy": _copy,
    "reverse": _reverse,
    "sort": _sort,
    "number-words": _number_words,
    "arithmetic": _arithmetic,
}


class SyntheticTask(ListTask):
    """One of the generated tasks in :data:`GENERATORS`, for one split.

    Args:
        kind: ``"copy"``, ``"reverse"``, ``"sort"``, ``"number-words"`` or ``"arithmetic"``.
        split: One of ``"train"``, ``"validation"``, ``"test"``, or ``"all"`` (the three together).
        size: Number of distinct samples; by default :data:`SIZES` (2000 / 200 / 200).

    Example:
        >>> task = SyntheticTask("number-words", "test", size=3)
        >>> all(p.startswith("Write ") for p, _ in task)
        True
    """

    def __init__(self, kind: str, split: str = "train", size: int | None = None) -> None:
        if kind not in GENERATORS:
            raise ValueError(f"Expected kind to be one of {sorted(GENERATORS)}, got {kind!r}.")
        if check_split(split) == ALL:
            super().__init__([s for part in SPLITS for s in SyntheticTask(kind, part)], name=kind)
            return
        size = SIZES[split] if size is None else size
        check_positive_int("size", size)
        generate, rng = GENERATORS[kind], np.random.default_rng(stable_hash(f"{kind}/{split}"))
        samples: dict[str, Sample] = {}  # by prompt: no duplicates within a split
        for _ in range(100 * size):
            sample = generate(rng)
            if sample.prompt not in samples and split_of(sample.prompt) == split:
                samples[sample.prompt] = sample
                if len(samples) == size:
                    break
        else:
            raise DatasetError(
                f"Could draw only {len(samples)} distinct {kind!r} prompts for {split!r}; ask for fewer."
            )
        super().__init__(list(samples.values()), name=kind)
        self.split = split


class EchoLetterTask(ListTask):
    """``"Say: a"`` -> ``"a"`` for the 26 lower-case letters: a smoke test that learning works.

    The reply is one token that appears in the prompt, so even a tiny model trained from scratch
    should reach reward 1 within seconds; use it to check that an agent learns at all before a
    slow run on a real task. It is the one task whose splits are identical (all 26 letters):
    it measures learning, not generalisation.

    Args:
        split: One of ``"train"``, ``"validation"``, ``"test"`` (all give the same samples).
    """

    def __init__(self, split: str = "train") -> None:
        check_split(split)
        super().__init__([Sample(f"Say: {letter}", (letter,)) for letter in ascii_lowercase], name="echo-letter")
        self.split = split
