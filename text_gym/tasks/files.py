"""Tasks from your own data: JSON Lines files and in-memory records.

Each record is an object with a ``prompt`` and either one ``reference`` or a list of
``references``; other fields are ignored::

    {"prompt": "Say hi", "reference": "hi"}
    {"prompt": "Greet me", "references": ["hello", "hi there"]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from text_gym.errors import DatasetError
from text_gym.tasks.base import ListTask, Sample


def sample_from_record(record: object, where: str) -> Sample:
    """Validate one record and return it as a :class:`Sample`; errors start with ``where``.

    Example:
        >>> sample_from_record({"prompt": "Say hi", "reference": "hi"}, "record 0")
        Sample(prompt='Say hi', references=('hi',))
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
    return Sample(prompt, tuple(references))


def from_records(records: Iterable[Mapping], name: str = "custom") -> ListTask:
    """Build a task from records, such as rows from your own loader.

    Args:
        records: Mappings with ``prompt`` and ``reference`` (str) or ``references`` (list of str).
        name: The task's name.

    Raises:
        DatasetError: If there are no records or one is malformed; the message gives its index.

    Example:
        >>> task = from_records([{"prompt": "Say hi", "references": ["hi", "hello"]}])
        >>> task[0].references
        ('hi', 'hello')
    """
    if isinstance(records, (str, bytes, Mapping)):
        raise TypeError(f"Expected records to be an iterable of mappings, got a {type(records).__name__}.")
    samples = [sample_from_record(record, f"record {i}") for i, record in enumerate(records)]
    if not samples:
        raise DatasetError(f"No records given for task {name!r}; expected at least one.")
    return ListTask(samples, name=name)


def from_jsonl(path: str | os.PathLike[str], name: str | None = None) -> ListTask:
    """Build a task from a JSON Lines file: one record object per line, blank lines skipped.

    Args:
        path: The ``.jsonl`` file (UTF-8).
        name: The task's name; by default the file's stem.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        DatasetError: If the file has no records, or a line is not valid JSON or not a valid
            record; the message gives the file and the 1-based line number.
    """
    path = Path(path)
    samples = []
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
            samples.append(sample_from_record(record, where))
    if not samples:
        raise DatasetError(f"{path} has no records; expected one JSON object per line with 'prompt' and 'reference'.")
    return ListTask(samples, name=name or path.stem)
