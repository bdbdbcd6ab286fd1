"""One run per folder: what ``python -m agents.train`` does to its ``--out`` before, during and after a run.

- A fresh run refuses a folder that holds another run's files (:data:`RUN_FILES`) and says how to
  continue that run (``--resume``) or replace it (``--overwrite``, which removes those files and
  nothing else). Before, a second run silently overwrote the first's model, results and log, and
  its checkpoint pruning deleted the first run's checkpoints. A resumed run goes on in the folder
  its checkpoint lies in; resumed into another folder, that folder must hold no run's files.
- :class:`RunLock` holds ``<out>/.lock`` (the process id and host) for the whole run, so a
  second live run in the same folder stops at once instead of interleaving ``progress.csv``. A
  lock left by a process that no longer runs (killed, crashed) is taken over, with a note.
- :func:`clean_strays` removes the temporaries that killed saves left in the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.atomic import remove_stray_temporaries
from text_gym.errors import TextGymError

__all__ = ["RUN_FILES", "RunFolderError", "RunLock", "check_fresh_folder", "claimed_folder", "clean_strays"]

RUN_FILES = (
    "model.zip",
    "interrupted.zip",
    "results.json",
    "progress.csv",
    "progress.json",
    "log.txt",
    "events.out.tfevents.*",
    "checkpoints/*.zip",
    "best_model.zip",
    "selection.json",
)
"""What a run writes in ``--out`` (glob patterns): a fresh run refuses a folder with any of them."""
LOCK_FILE = ".lock"


class RunFolderError(TextGymError, ValueError):
    """An ``--out`` folder that another run holds, or that holds another run's files; the message says what to do."""


def run_files(out: Path) -> list[Path]:
    """The files of a run in ``out`` (:data:`RUN_FILES`), sorted."""
    return sorted({path for pattern in RUN_FILES for path in out.glob(pattern) if path.is_file()})


def check_fresh_folder(out: Path, *, overwrite: bool, resume: Path | None = None) -> None:
    """Refuse (or, with ``overwrite``, empty of run files) an ``--out`` that holds another run's files.

    ``resume`` is the checkpoint of a run resumed from another folder (the message says so).

    Raises:
        RunFolderError: ``out`` is a file, or holds run files and ``overwrite`` is False.
    """
    _check_folder(out)
    found = run_files(out)
    if not found:
        return
    if overwrite:
        for path in found:
            path.unlink(missing_ok=True)
        return
    shown = ", ".join(str(p.relative_to(out)) for p in found[:5]) + (", ..." if len(found) > 5 else "")
    if resume is not None:
        home = resume.parent.parent if resume.parent.name == "checkpoints" else resume.parent
        raise RunFolderError(
            f"--out {out} holds another run's files ({shown}), and --resume {resume} is not one of them: resume "
            f"into the run's own folder (--out {home}) or an empty one, or replace those files with --overwrite."
        )
    saved = next((out / name for name in ("interrupted.zip", "model.zip") if (out / name).is_file()), None)
    cont = f"continue it with --resume {saved}, " if saved else ""
    raise RunFolderError(
        f"--out {out} holds another run's files ({shown}): {cont}replace it with --overwrite (removes those "
        "files), or choose another --out."
    )


def _check_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out: expected a folder for the run's files, got the file {out}; choose another --out.")


class RunLock:
    """``<out>/.lock`` held for a run's lifetime; a context manager.

    Raises:
        RunFolderError: On entry, when a live process holds the lock.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_FILE
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder):
                    raise RunFolderError(
                        f"--out {self.path.parent} is in use by another run (process {holder['pid']} on "
                        f"{holder['host']}, started {time.ctime(holder['started'])}): wait for it to end, or "
                        "choose another --out."
                    ) from None
                print(f"Taking over {self.path}: the run that held it ({holder or 'unreadable'}) is gone.", flush=True)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as file:
                json.dump(self.record, file)
            return self
        raise RunFolderError(f"could not take {self.path}: another run took it at the same time; choose another --out.")

    def __exit__(self, *exc: object) -> None:
        if self._holder() == self.record:
            self.path.unlink(missing_ok=True)

    def _holder(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(self.path.read_text())
            return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None
        except (OSError, ValueError):
            return None


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the lock's process still runs (one on another host is assumed to)."""
    if holder.get("host") != socket.gethostname():
        return True
    if holder["pid"] == os.getpid():  # a lock with our own id is from an earlier life of this id (a container)
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_strays(out: Path) -> list[Path]:
    """Remove the temporaries of killed saves in ``out`` and ``out/checkpoints`` (ours too: call it at exit)."""
    return [p for folder in (out, out / "checkpoints") for p in remove_stray_temporaries(folder, ours=True)]


@contextlib.contextmanager
def claimed_folder(out: Path, *, resume: Path | None, overwrite: bool) -> Iterator[None]:
    """Hold ``out`` for a run: locked, free of another run's files when fresh, cleaned of strays at exit.

    A run resumed from ``resume`` (a checkpoint) goes on among its own files when the checkpoint
    lies in ``out``; from anywhere else, ``out`` is claimed as by a fresh run.
    Under ``accelerate`` only the main process (``RANK`` 0) claims it: the others write nothing there.

    Raises:
        RunFolderError: Another live run holds ``out``, or a fresh run (or one resumed from another
            folder) finds another run's files there.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    _check_folder(out)
    with RunLock(out):
        try:
            if resume is None:
                check_fresh_folder(out, overwrite=overwrite)
            elif not resume.resolve().is_relative_to(out.resolve()):
                check_fresh_folder(out, overwrite=overwrite, resume=resume)
            yield
        finally:
            clean_strays(out)
