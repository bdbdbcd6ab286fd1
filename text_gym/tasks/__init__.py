"""Tasks: datasets of ``(prompt, references)`` samples, by name, by file or as objects.

Built-in names: ``"qa"`` (chatterbot-corpus questions, the default), the synthetic ``"copy"``,
``"reverse"``, ``"sort"``, ``"number-words"``, ``"arithmetic"`` and ``"echo-letter"``, and
``"translate-fr"``, ``"translate-de"`` and ``"translate-es"`` (English UI strings from Django's
catalogues; they need ``pip install django``).
Add your own with :func:`register_task`, or pass a ``.jsonl`` file or any :class:`Task` object.

Example:
    >>> task = make_task("copy", split="validation")
    >>> prompt, references = task[0]
    >>> prompt.startswith("Repeat exactly: ") and references == (prompt[len("Repeat exactly: "):],)
    True
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from text_gym.errors import UnknownNameError
from text_gym.tasks.base import (
    ALL,
    SPLITS,
    ListTask,
    Sample,
    Task,
    check_split,
    check_task,
    get_sample,
    split_of,
    split_task,
)
from text_gym.tasks.files import ALLOW_OVERLAP, check_disjoint, from_jsonl, from_records
from text_gym.tasks.qa import QATask
from text_gym.tasks.synthetic import GENERATORS, EchoLetterTask, SyntheticTask, number_to_words
from text_gym.tasks.translation import LANGUAGES, TranslationTask

_FACTORIES: dict[str, Callable[[str], Task]] = {}


def register_task(name: str, factory: Callable[[str], Task], *, overwrite: bool = False) -> None:
    """Make ``make_task(name, split)`` (and so ``TextGenEnv(task=name)``) build ``factory(split)``.

    Args:
        name: The task's name; it must not look like a file path.
        factory: Called with a split name (see :data:`SPLITS`), returns a :class:`Task`. Use a
            module-level function or class so environments can be pickled into subprocesses.
        overwrite: Replace an existing registration instead of raising.

    Raises:
        ValueError: If ``name`` is already registered and ``overwrite`` is false.
    """
    if not isinstance(name, str) or not name or name.endswith(".jsonl") or os.sep in name:
        raise ValueError(f"Expected name to be a non-empty str that is not a file path, got {name!r}.")
    if not callable(factory):
        raise TypeError(f"Expected factory to be callable as factory(split) -> Task, got {type(factory).__name__}.")
    if name in _FACTORIES and not overwrite:
        raise ValueError(f"Task {name!r} is already registered; pass overwrite=True to replace it.")
    _FACTORIES[name] = factory
    _build.cache_clear()


def task_names() -> list[str]:
    """Return the registered task names, sorted."""
    return sorted(_FACTORIES)


@functools.cache
def _build(name: str, split: str) -> Task:
    # One task object per (name, split) per process: 64 envs in a vector env share it.
    task = _FACTORIES[name](split)
    if not isinstance(task, Task):
        raise TypeError(f"The factory of task {name!r} returned a {type(task).__name__}; expected a Task.")
    return check_task(task)


@functools.lru_cache(maxsize=16)
def _load_jsonl(path: str, mtime_ns: int, size: int, split: str, whole: bool) -> ListTask:
    # Keyed by modification time and size as well, so an edited file is read again.
    return from_jsonl(path, split=split, whole=whole)


def _is_path(spec: object) -> bool:
    return isinstance(spec, os.PathLike) or (isinstance(spec, str) and spec.endswith(".jsonl"))


def _file_id(spec: str | os.PathLike[str]) -> tuple[str, int, int]:
    path = Path(spec).resolve()
    stat = path.stat()  # FileNotFoundError names the path
    return str(path), stat.st_mtime_ns, stat.st_size


def _jsonl_task(spec: str | os.PathLike[str], split: str, whole: bool = False) -> ListTask:
    return _load_jsonl(*_file_id(spec), split, whole)


@functools.lru_cache(maxsize=16)
def _check_files_disjoint(files: tuple[tuple[str, str, int, int], ...]) -> None:
    # Once per set of files (errors are not cached): the 64 envs of a vector env check once.
    tasks = {split: _load_jsonl(path, mtime_ns, size, split, True) for split, path, mtime_ns, size in files}
    check_disjoint(tasks, {split: path for split, path, _, _ in files})


def _mapped_task(spec: Mapping[str, Any], split: str) -> ListTask:
    files = {key: value for key, value in spec.items() if key != ALLOW_OVERLAP}
    allow_overlap = spec.get(ALLOW_OVERLAP, False)
    unknown = sorted(str(key) for key in files if key not in SPLITS)
    if unknown or not files:
        raise ValueError(
            f"Expected a task mapping of splits {list(SPLITS)} to .jsonl files, got keys {sorted(map(str, spec))} "
            f"(it may also hold {ALLOW_OVERLAP!r}: True)."
        )
    if not isinstance(allow_overlap, bool):
        raise TypeError(f"Expected the task mapping's {ALLOW_OVERLAP!r} to be a bool, got {allow_overlap!r}.")
    bad = {key: value for key, value in files.items() if not _is_path(value)}
    if bad:
        raise TypeError(f"Expected every value of the task mapping to be a .jsonl path, got {bad!r}.")
    if split != ALL and split not in files:
        raise ValueError(
            f"The task mapping has no file for split {split!r}; expected one of its keys {sorted(files)}, "
            f"or add {split!r}: 'path.jsonl' to it."
        )
    if not allow_overlap:
        _check_files_disjoint(tuple((key, *_file_id(files[key])) for key in SPLITS if key in files))
    if split == ALL:
        return ListTask(
            [s for key in SPLITS if key in files for s in _jsonl_task(files[key], key, whole=True)], name="files"
        )
    return _jsonl_task(files[split], split, whole=True)


def make_task(
    spec: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | Task | Sequence[Sample | tuple],
    split: str = "train",
) -> Task:
    """Return one split of a task from a registered name, a ``.jsonl`` file, a mapping of files, or a task object.

    Args:
        spec: One of

            - a registered name (see :func:`task_names`): that task's ``split``, cached per process;
            - a path (a ``str`` ending in ``.jsonl``, or any ``os.PathLike``): the file's ``split``,
              as :func:`from_jsonl` splits it (records' own ``split`` fields first, then about
              80/10/10 by a hash of the prompt);
            - a mapping of split names to ``.jsonl`` files (``{"train": "a.jsonl", "test":
              "b.jsonl"}``): the file of ``split``, used whole; files that share a prompt (compared
              as splits compare them) are an error unless the mapping also holds ``"allow_overlap": True``;
            - an object with ``name``, ``__len__`` and ``__getitem__``: returned as is (you chose
              its samples yourself);
            - a list or tuple of ``(prompt, references)`` pairs: wrapped in a :class:`ListTask`, whole.
        split: One of :data:`SPLITS`, or ``"all"`` for every sample; checked even where it is not
            used, to catch typos.

    Raises:
        UnknownNameError: If ``spec`` is a string that is neither a registered name nor a ``.jsonl`` path.
        ValueError: If ``split`` is not one of :data:`SPLITS` or ``"all"``, or a mapping lacks it.
        DatasetError: If the split of a file is empty or a record is malformed.
        DatasetError: Also if a task object has no samples or its ``task[0]`` is not a :class:`Sample`.
        TypeError: If ``spec`` is none of the above.
    """
    check_split(split)
    if isinstance(spec, str) and spec in _FACTORIES:
        return _build(spec, split)
    if _is_path(spec):
        return _jsonl_task(spec, split)
    if isinstance(spec, Mapping):
        return _mapped_task(spec, split)
    if isinstance(spec, str):
        raise UnknownNameError(
            f"Unknown task {spec!r}; expected one of {task_names()}, a path to a .jsonl file, or a Task object."
        )
    if isinstance(spec, Task):
        return check_task(spec)
    if isinstance(spec, (list, tuple)):
        return ListTask(spec)
    raise TypeError(
        f"Expected a task name, a .jsonl path, or an object with name, __len__ and __getitem__, "
        f"got {type(spec).__name__}."
    )


register_task("qa", QATask)
for _kind in GENERATORS:
    register_task(_kind, functools.partial(SyntheticTask, _kind))
register_task("echo-letter", EchoLetterTask)
for _language in LANGUAGES:  # partials of a class pickle, so vector envs can rebuild them
    register_task(f"translate-{_language}", functools.partial(TranslationTask, language=_language))

__all__ = [
    "ALL",
    "SPLITS",
    "EchoLetterTask",
    "ListTask",
    "QATask",
    "Sample",
    "SyntheticTask",
    "Task",
    "TranslationTask",
    "from_jsonl",
    "from_records",
    "get_sample",
    "make_task",
    "number_to_words",
    "register_task",
    "split_of",
    "split_task",
    "task_names",
]
