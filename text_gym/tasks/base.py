"""The task interface: a dataset of ``(prompt, references)`` samples, and deterministic splits.

A task is anything with a ``name``, ``len(task)`` and ``task[i] -> Sample``; :class:`ListTask` is
the validated in-memory implementation that every built-in task uses.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from text_gym.errors import DatasetError

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""The held-apart splits every task defines."""
ALL = "all"
"""The split name that asks for every sample of a task; never the default, so held-out stays held out."""


@dataclass(frozen=True)
class Sample:
    """One task item: a prompt, the replies that count as correct, and the text to transform.

    It unpacks as a pair, so ``prompt, references = task[i]`` works.

    Attributes:
        prompt: What the agent is asked, as the user wrote it (before any chat template).
        references: One or more replies that count as correct.
        source: The text the prompt asks to transform, when the prompt is an instruction around it
            (``"Translate to French: Save"`` has the source ``"Save"``). After construction it is
            always a str: the prompt itself when no source was given. Rewards receive it as their
            ``prompts`` argument, and the ``copy-prompt`` baseline replies with it.

    Example:
        >>> prompt, references = Sample("Say: a", ("a",))
        >>> references
        ('a',)
        >>> Sample("Repeat exactly: a b", ("a b",), source="a b").source
        'a b'
        >>> Sample("What is AI?", ("A field.",)).source
        'What is AI?'
    """

    prompt: str
    references: tuple[str, ...]
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "references", tuple(self.references))
        if self.source is None:
            object.__setattr__(self, "source", self.prompt)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.prompt, self.references))

    @property
    def has_source(self) -> bool:
        """True when the sample names a source distinct from its prompt."""
        return self.source != self.prompt


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


def get_sample(task: Task, index: int) -> Sample:
    """Return ``task[index]``, or raise :class:`DatasetError` if it is not a :class:`Sample`.

    A task object is the user's code; this turns a wrong return type into an error that names the
    task and the fix, instead of an ``AttributeError`` deep inside the env.
    """
    sample = task[index]
    if not isinstance(sample, Sample):
        name = getattr(task, "name", type(task).__name__)
        raise DatasetError(
            f"Task {name!r}: expected task[{index}] to be a text_gym.tasks.Sample, got {type(sample).__name__} "
            f"{sample!r:.80}. Return Sample(prompt, references), or wrap (prompt, references) pairs in ListTask(pairs)."
        )
    return sample


def check_task(task: Task) -> Task:
    """Return ``task`` if it has at least one sample and ``task[0]`` is a :class:`Sample`; else raise.

    Raises:
        DatasetError: If ``len(task)`` is not a positive int, or ``task[0]`` is not a Sample.
    """
    size = len(task)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        name = getattr(task, "name", type(task).__name__)
        raise DatasetError(f"Task {name!r} has {size!r} samples; expected at least one (prompt, references) Sample.")
    get_sample(task, 0)
    return task


def stable_hash(text: str) -> int:
    """Return a 64-bit hash of ``text`` that is the same in every Python run and on every platform.

    The built-in ``hash()`` is salted per process (PYTHONHASHSEED), so it cannot define splits.

    Example:
        >>> stable_hash("abc") == stable_hash("abc")
        True
    """
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS` or :data:`ALL`, else raise ``ValueError``."""
    if split not in SPLITS and split != ALL:
        raise ValueError(f"Expected split to be one of {(*SPLITS, ALL)}, got {split!r}.")
    return split


def normalize_text(text: str) -> str:
    """Return the key under which identical prompts are grouped and hashed to a split.

    Two prompts that a reader cannot tell apart get one key, so they land in one split and a test
    prompt cannot leak into train in another spelling: the text is NFKC-normalised (NFC and NFD
    forms, full-width letters and ligatures become one form), format characters (Unicode category
    ``Cf``: zero-width spaces and joiners, the byte-order mark, bidi marks) are removed, runs of
    whitespace become one space, the ends are stripped, and case is folded.

    Example:
        >>> normalize_text("  What is   AI? ") == normalize_text("what is ai?")
        True
        >>> normalize_text("Caf\\u00e9") == normalize_text("Cafe\\u0301") == normalize_text("caf\\u200b\\u00e9")
        True
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = re.sub(r"\s+", " ", text).strip().casefold()
    return unicodedata.normalize("NFKC", text)  # casefolding can undo NFKC ("\u0130" -> "i\u0307")


def sample_key(sample: Sample) -> str:
    """Return the text that identifies a sample for grouping and splitting: its normalised prompt, and source.

    The source counts too, because an instruction prompt (``"Translate to French:"``) is shared
    by every sample of a task whose records give the text to transform separately.
    """
    key = normalize_text(sample.prompt)
    return key + "\n" + normalize_text(sample.source) if sample.has_source else key


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

    ``references`` may be a single string, taken as one reference. A :class:`Sample` keeps its
    source. Errors name ``where``.
    """
    source = None
    if isinstance(item, Sample):
        item, source = (item.prompt, item.references), item.source
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
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise DatasetError(f"{where}: expected the source to be a non-empty str, got {source!r:.80}.")
    return Sample(prompt, tuple(references), source)


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
        >>> len(task), tuple(task[1])
        (2, ('Say: b', ('b', 'B')))
    """

    def __init__(self, samples: Sequence[Sample | tuple], name: str = "custom") -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Expected name to be a non-empty str, got {name!r}.")
        if isinstance(samples, (str, bytes)):
            raise TypeError("Expected samples to be a sequence of (prompt, references) pairs, got a str.")
        self.name = name
        self.split: str = ALL  # which split these samples are; subclasses and split_task set it
        self.split_sizes: dict[str, int] | None = None  # distinct prompts per split, when split by split_task
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


def split_task(
    items: Sequence[tuple[Sample, str | None, str]],
    split: str,
    name: str,
    origin: str,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    whole: bool = False,
) -> ListTask:
    """Group samples that share a prompt, assign each group a split, and keep the groups of ``split``.

    This is the one splitting rule of every task built from records (files, lists, catalogues):

    - Samples whose :func:`sample_key` (normalised prompt, and source) is the same become one
      sample carrying all their distinct references, in order of first appearance.
    - A group goes to the split its records declare (the ``split`` field of a record), else to
      :func:`split_of` of its key: about 80/10/10, the same in every process and on every machine.
    - ``split="all"`` keeps every group; it is never a default.

    Args:
        items: ``(sample, declared split or None, where)`` per record; ``where`` names the record in errors.
        split: One of :data:`SPLITS`, or :data:`ALL`.
        name: The task's name.
        origin: What the records came from (a file path, "records"), for error messages.
        fractions: Shares of train, validation and test for groups without a declared split.
        whole: Every record belongs to ``split`` (a file given for one split): all are kept, and a
            record that declares another split is an error.

    Raises:
        DatasetError: Records of one group declare different splits, a record declares another
            split than ``whole`` pins, or the chosen split is empty.

    Example:
        >>> items = [(Sample("Say hi", ("hi",)), None, "r0"), (Sample("say  HI", ("hello",)), None, "r1")]
        >>> task = split_task(items, "all", "greetings", "records")
        >>> len(task), task[0].references
        (1, ('hi', 'hello'))
    """
    check_split(split)
    groups: dict[str, tuple[Sample, list[str], str | None, str]] = {}
    for sample, declared, where in items:
        if whole and declared is not None and declared != split:
            raise DatasetError(
                f"{where}: this file is given for the {split!r} split, but the record says split {declared!r}; "
                "remove the record's 'split' field or move it to the file of its split."
            )
        declared = split if whole else declared
        key = sample_key(sample)
        if key not in groups:
            groups[key] = (sample, list(sample.references), declared, where)
            continue
        first, references, first_split, first_where = groups[key]
        if declared is not None and first_split is not None and declared != first_split:
            raise DatasetError(
                f"{where}: the prompt {sample.prompt[:60]!r} is also at {first_where}, with split {first_split!r}; "
                f"expected the same split, got {declared!r}. Give every copy of a prompt the same 'split'."
            )
        references += [r for r in sample.references if r not in references]
        groups[key] = (first, references, first_split if first_split is not None else declared, first_where)
    chosen, counts = [], dict.fromkeys(SPLITS, 0)
    for key, (sample, references, declared, _) in groups.items():
        assigned = declared if declared is not None else split_of(key, fractions)
        counts[assigned] += 1
        if split in (ALL, assigned):
            chosen.append(Sample(sample.prompt, tuple(references), sample.source))
    if not chosen:
        raise DatasetError(
            f"{origin}: the {split!r} split is empty; its {len(groups)} distinct prompts went to {counts} "
            f"(by a hash of the prompt, or their 'split' field). Add records, give some a 'split' field, "
            "or pass split='all' to use every record (then nothing is held out)."
        )
    task = ListTask(chosen, name=name)
    task.split, task.split_sizes = split, counts
    return task
