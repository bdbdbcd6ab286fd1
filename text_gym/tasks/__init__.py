"""Tasks: datasets of ``(prompt, references)`` samples, by name, by file or as objects.

Built-in names: ``"qa"`` (chatterbot-corpus questions, the default) and the synthetic
``"copy"``, ``"reverse"``, ``"sort"``, ``"number-words"``, ``"arithmetic"`` and ``"echo-letter"``.
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
from collections.abc import Callable, Sequence
from pathlib import Path

from text_gym.errors import UnknownNameError
from text_gym.tasks.base import SPLITS, ListTask, Sample, Task, check_split, split_of
from text_gym.tasks.files import from_jsonl, from_records
from text_gym.tasks.qa import QATask
from text_gym.tasks.synthetic import GENERATORS, EchoLetterTask, SyntheticTask, number_to_words

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
    return task


@functools.lru_cache(maxsize=16)
def _load_jsonl(path: str, mtime_ns: int, size: int) -> ListTask:
    # Keyed by modification time and size as well, so an edited file is read again.
    return from_jsonl(path)


def make_task(spec: str | os.PathLike[str] | Task | Sequence[Sample | tuple], split: str = "train") -> Task:
    """Return a task from a registered name, a ``.jsonl`` file, a task object or a list of samples.

    Args:
        spec: One of

            - a registered name (see :func:`task_names`): that task's ``split``, cached per process;
            - a path (a ``str`` ending in ``.jsonl``, or any ``os.PathLike``): the whole file as
              :func:`from_jsonl` reads it, whatever ``split`` is, because a file is one split that
              you chose yourself;
            - an object with ``name``, ``__len__`` and ``__getitem__``: returned as is;
            - a list or tuple of ``(prompt, references)`` pairs: wrapped in a :class:`ListTask`.
        split: One of :data:`SPLITS`; checked even where it is not used, to catch typos.

    Raises:
        UnknownNameError: If ``spec`` is a string that is neither a registered name nor a ``.jsonl`` path.
        ValueError: If ``split`` is not one of :data:`SPLITS`.
        TypeError: If ``spec`` is none of the above.
    """
    check_split(split)
    if isinstance(spec, str) and spec in _FACTORIES:
        return _build(spec, split)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and spec.endswith(".jsonl")):
        path = Path(spec).resolve()
        stat = path.stat()  # FileNotFoundError names the path
        return _load_jsonl(str(path), stat.st_mtime_ns, stat.st_size)
    if isinstance(spec, str):
        raise UnknownNameError(
            f"Unknown task {spec!r}; expected one of {task_names()}, a path to a .jsonl file, or a Task object."
        )
    if isinstance(spec, Task):
        return spec
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

__all__ = [
    "SPLITS",
    "EchoLetterTask",
    "ListTask",
    "QATask",
    "Sample",
    "SyntheticTask",
    "Task",
    "from_jsonl",
    "from_records",
    "make_task",
    "number_to_words",
    "register_task",
    "split_of",
    "task_names",
]
