"""The task interface: a dataset of ``(prompt, references)`` samples, and deterministic splits.

A task is anything with a ``name``, ``len(task)`` and ``task[i] -> Sample``; :class:`ListTask` is
the validated in-memory implementation that every built-in task uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from text_gym.errors import DatasetError

SPLITS: tuple[str, ...] = ("train", "validation", "test")


class Sample(NamedTuple):
    """One task item: a prompt and the replies that count as correct.

    A plain tuple, so ``prompt, references = task[i]`` works.

    Example:
        >>> prompt, references = Sample("Say: a", ("a",))
        >>> references
        ('a',)
    """

    prompt: str
    references: tuple[str, ...]


@runtime_checkable
class Task(Protocol):
    """What an environment needs from a dataset; implement it without subclassing anything.

    Attributes:
        name: A short name used in logs and error messages.
    """

    name: str

    def __len__(self) -> int:
        """Return the number of samples."""
        ...

    def __getitem__(self, index: int) -> Sample:
        """Return sample ``index`` (``0 <= index < len(self)``)."""
        ...


def stable_hash(text: str) -> int:
    """Return a 64-bit hash of ``text`` that is the same in every Python run and on every platform.

    The built-in ``hash()`` is salted per process (PYTHONHASHSEED), so it cannot define splits.

    Example:
        >>> stable_hash("abc") == stable_hash("abc")
        True
    """
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise ``ValueError``."""
    if split not in SPLITS:
        raise ValueError(f"Expected split to be one of {SPLITS}, got {split!r}.")
    return split


def split_of(key: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Assign ``key`` to a split, deterministically, from a hash of its text.

    The same key always lands in the same split, whichever dataset it came from, so splits stay
    disjoint when a dataset grows.

    Args:
        key: The text that identifies a sample, usually its (normalised) prompt.
        fractions: The expected share of train, validation and test; they must sum to 1.

    Returns:
        One of :data:`SPLITS`.

    Example:
        >>> split_of("What is AI?")
        'train'
        >>> split_of("What is AI?", fractions=(0.0, 0.0, 1.0))
        'test'
    """
    if not isinstance(key, str):
        raise TypeError(f"Expected key to be a str, got {type(key).__name__}.")
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"Expected fractions to be 3 non-negative numbers that sum to 1, got {fractions!r}.")
    point = stable_hash(key) / 2**64  # uniform in [0, 1)
    total = 0.0
    for split, fraction in zip(SPLITS, fractions, strict=True):
        total += fraction
        if point < total:
            return split
    return next(s for s, f in zip(reversed(SPLITS), reversed(fractions), strict=True) if f > 0)  # rounding at 1.0


def as_sample(item: object, where: str) -> Sample:
    """Validate one ``(prompt, references)`` pair and return it as a :class:`Sample`.

    ``references`` may be a single string, taken as one reference. Errors name ``where``.
    """
    if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
        raise DatasetError(f"{where}: expected a (prompt, references) pair, got {item!r:.80}.")
    prompt, references = item
    if not isinstance(prompt, str) or not prompt.strip():
        raise DatasetError(f"{where}: expected the prompt to be a non-empty str, got {prompt!r:.80}.")
    if isinstance(references, str):
        references = (references,)
    if not isinstance(references, Sequence) or not references:
        raise DatasetError(
            f"{where}: expected at least one reference (a str or a list of str), got {references!r:.80}."
        )
    for reference in references:
        if not isinstance(reference, str) or not reference.strip():
            raise DatasetError(f"{where}: expected every reference to be a non-empty str, got {reference!r:.80}.")
    return Sample(prompt, tuple(references))


class ListTask:
    """A validated, immutable, in-memory task.

    Args:
        samples: ``Sample`` objects or ``(prompt, references)`` tuples; ``references`` is a
            sequence of strings, or one string.
        name: The task's name, used in logs and errors.

    Raises:
        DatasetError: If ``samples`` is empty, or a sample has an empty or non-string prompt or
            no non-empty string reference; the message gives the sample's index.

    Example:
        >>> task = ListTask([("Say: a", "a"), ("Say: b", ["b", "B"])], name="letters")
        >>> len(task), task[1]
        (2, Sample(prompt='Say: b', references=('b', 'B')))
    """

    def __init__(self, samples: Sequence[Sample | tuple], name: str = "custom") -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Expected name to be a non-empty str, got {name!r}.")
        if isinstance(samples, (str, bytes)):
            raise TypeError("Expected samples to be a sequence of (prompt, references) pairs, got a str.")
        self.name = name
        self._samples = tuple(as_sample(item, f"task {name!r}, sample {i}") for i, item in enumerate(samples))
        if not self._samples:
            raise DatasetError(f"Task {name!r} has no samples; expected at least one (prompt, references) pair.")

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> Sample:
        return self._samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, size={len(self)})"
