"""Tasks from your own data: JSON Lines files and in-memory records, split like every task.

Each record is an object with a ``prompt`` and either one ``reference`` or a list of
``references``. Two fields are optional: ``source``, the text to transform when the prompt is an
instruction around it (the ``copy-prompt`` baseline copies it, and rewards see it), and
``split``, which pins the record to ``"train"``, ``"validation"`` or ``"test"``. Other fields
are ignored::

    {"prompt": "Say hi", "reference": "hi"}
    {"prompt": "Greet me", "references": ["hello", "hi there"]}
    {"prompt": "Rewrite in simple English: It is imperative.", "source": "It is imperative.", "reference": "It must be done."}
    {"prompt": "What is 2 + 2?", "reference": "4", "split": "test"}

Records are split as :func:`~text_gym.tasks.base.split_task` says: records with the same prompt
(and source) become one sample with all their references, and each sample goes to its declared
split or else to about 80/10/10 by a stable hash of its normalised prompt. ``split="all"`` takes
every record, and only when you ask for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from text_gym.errors import DatasetError
from text_gym.tasks.base import SPLITS, ListTask, Sample, Task, sample_key, split_task

ALLOW_OVERLAP = "allow_overlap"
"""The key of a task mapping that opts out of its overlap check: ``{"train": ..., "test": ..., "allow_overlap": True}``."""


def sample_from_record(record: object, where: str) -> tuple[Sample, str | None]:
    """Validate one record; return it as a :class:`Sample` and its declared split (or None).

    Errors start with ``where``.

    Example:
        >>> sample, split = sample_from_record({"prompt": "Say hi", "reference": "hi"}, "record 0")
        >>> tuple(sample), split
        (('Say hi', ('hi',)), None)
    """
    if not isinstance(record, Mapping):
        raise DatasetError(
            f"{where}: expected an object with 'prompt' and 'reference(s)', got {type(record).__name__}."
        )
    if "prompt" not in record:
        raise DatasetError(f"{where}: missing 'prompt'; expected a non-empty string, found keys {list(record)}.")
    prompt = record["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise DatasetError(f"{where}: expected 'prompt' to be a non-empty string, got {prompt!r:.80}.")
    has_one, has_many = "reference" in record, "references" in record
    if has_one == has_many:
        found = "both" if has_one else f"neither (keys {list(record)})"
        raise DatasetError(
            f"{where}: expected exactly one of 'reference' (a string) or 'references' (a list), got {found}."
        )
    if has_one:
        references = [record["reference"]]
        field = "reference"
    else:
        references = record["references"]
        field = "references"
        if not isinstance(references, list):
            raise DatasetError(
                f"{where}: expected 'references' to be a list of strings, got {type(references).__name__}."
            )
        if not references:
            raise DatasetError(f"{where}: 'references' is an empty list; give at least one non-empty string.")
    for reference in references:
        if not isinstance(reference, str) or not reference.strip():
            raise DatasetError(f"{where}: expected '{field}' to hold non-empty strings, got {reference!r:.80}.")
    source = record.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise DatasetError(f"{where}: expected 'source' to be a non-empty string when present, got {source!r:.80}.")
    split = record.get("split")
    if split is not None and split not in SPLITS:
        raise DatasetError(f"{where}: expected 'split' to be one of {list(SPLITS)} when present, got {split!r:.80}.")
    return Sample(prompt, tuple(references), source), split


def from_records(records: Iterable[Mapping], name: str = "custom", split: str = "train") -> ListTask:
    """Build one split of a task from records, such as rows from your own loader.

    Args:
        records: Mappings with ``prompt`` and ``reference`` (str) or ``references`` (list of
            str), and optionally ``source`` and ``split`` (see the module docstring).
        name: The task's name.
        split: ``"train"``, ``"validation"``, ``"test"``, or ``"all"`` for every record.

    Raises:
        DatasetError: If there are no records, one is malformed (the message gives its index),
            or the chosen split is empty.

    Example:
        >>> records = [{"prompt": "Say hi", "references": ["hi", "hello"]}, {"prompt": "say hi", "reference": "hey"}]
        >>> task = from_records(records, split="all")
        >>> len(task), task[0].references
        (1, ('hi', 'hello', 'hey'))
    """
    if isinstance(records, (str, bytes, Mapping)):
        raise TypeError(f"Expected records to be an iterable of mappings, got a {type(records).__name__}.")
    items = [(*sample_from_record(record, f"record {i}"), f"record {i}") for i, record in enumerate(records)]
    if not items:
        raise DatasetError(f"No records given for task {name!r}; expected at least one.")
    return split_task(items, split, name, origin=f"task {name!r}")


def from_jsonl(
    path: str | os.PathLike[str], name: str | None = None, split: str = "train", whole: bool = False
) -> ListTask:
    """Build one split of a task from a JSON Lines file: one record object per line, blank lines skipped.

    Args:
        path: The ``.jsonl`` file (UTF-8).
        name: The task's name; by default the file's stem.
        split: ``"train"``, ``"validation"``, ``"test"``, or ``"all"`` for every record.
        whole: The file holds exactly the ``split`` split (one file per split): every record is
            kept, and one whose ``split`` field names another split is an error.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        DatasetError: If the file has no records, a line is not valid JSON or not a valid record
            (the message gives the file and the 1-based line number), or the chosen split is empty.
    """
    path = Path(path)
    items = []
    with path.open("rb") as file:
        for lineno, raw in enumerate(file, start=1):
            where = f"{path}, line {lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{where}: expected UTF-8 text, got undecodable bytes ({exc.reason}).") from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); expected one JSON object per line."
                ) from exc
            items.append((*sample_from_record(record, where), where))
    if not items:
        raise DatasetError(f"{path} has no records; expected one JSON object per line with 'prompt' and 'reference'.")
    return split_task(items, split, name or path.stem, origin=str(path), whole=whole)


def check_disjoint(tasks: Mapping[str, Task], origins: Mapping[str, str]) -> None:
    """Raise :class:`DatasetError` if two splits given as separate files share a prompt.

    Prompts are compared by :func:`~text_gym.tasks.base.sample_key` (NFKC, format characters
    removed, whitespace collapsed, case folded), the key that splits every other task source, so
    a test prompt cannot reach train in another spelling. The same file given for two splits
    shares every prompt.

    Args:
        tasks: The task of each split.
        origins: What each split came from (its file), for the message.

    Raises:
        DatasetError: Listing the first shared prompts, their count, and the opt-out
            (``allow_overlap=True`` in the mapping) for overlaps you intend.
    """
    first: dict[str, tuple[str, str]] = {}  # key -> (split, prompt as written)
    shared: dict[tuple[str, str], list[str]] = {}
    for split, task in tasks.items():
        for key, prompt in {sample_key(task[i]): task[i].prompt for i in range(len(task))}.items():
            if key in first and first[key][0] != split:
                shared.setdefault((first[key][0], split), []).append(prompt)
            first.setdefault(key, (split, prompt))
    if not shared:
        return
    (a, b), prompts = next(iter(shared.items()))
    count = sum(map(len, shared.values()))
    pairs = ", ".join(f"{x} ({origins[x]}) and {y} ({origins[y]}): {len(p)}" for (x, y), p in shared.items())
    shown = ", ".join(repr(p[:60]) for p in prompts[:3])
    raise DatasetError(
        f"The task files share {count} prompt(s) between splits ({pairs}), e.g. {a}/{b}: {shown}. A prompt "
        "in two splits leaks held-out data into training. Remove the copies (prompts are compared after "
        f"Unicode NFKC normalisation, case folding and whitespace collapsing), or add {ALLOW_OVERLAP!r}: True "
        "to the task mapping (on the command line: --task train=a.jsonl,test=b.jsonl,allow_overlap=true) "
        "if the overlap is intended."
    )
