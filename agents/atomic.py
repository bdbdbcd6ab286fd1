"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every checkpoint, result and report is written through :func:`atomic_path`: to a temporary file
in the target's folder (so the final rename never crosses file systems), flushed and fsynced,
then moved over the target with ``os.replace``, which POSIX and Windows make atomic. A crash,
Ctrl-C or SIGKILL before the rename leaves the previous file intact and at most a stray
``.<name>.tmp-<pid>-*`` file beside it, which :func:`remove_stray_temporaries` removes once that
process is gone (the next save of the same file does)::

    with atomic_path("runs/x/model.zip") as tmp:
        write_zip(tmp)                      # any writer that takes a path
    atomic_write_text("runs/x/results.json", json.dumps(results))
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "remove_stray_temporaries"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, fsync it and move it onto ``path``.

    The parent folder is created if needed. If the block raises (or the process dies), ``path``
    is untouched and the temporary file is removed (when the process lives to do so).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes the file private (0600); keep the target's mode, or the usual 0644.
    os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
    try:
        yield tmp
        with open(tmp, "rb+") as file:  # the writer may have closed it without fsync
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path`` as a ``Path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return ``path`` as a ``Path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def remove_stray_temporaries(folder: str | os.PathLike[str], name: str = "*", *, ours: bool = False) -> list[Path]:
    """Remove the temporary files and folders a killed write of ``folder/name`` left; return them.

    A temporary (``.<name>.tmp-<pid>-*``) is a stray when process ``pid`` no longer runs; one of
    this process is a stray only with ``ours=True`` (at exit, when no write of ours is in progress).
    Temporaries of live processes are left alone: they are another writer's work in progress.
    Names without a process id (from before this version) count as strays.
    """
    removed = []
    for path in Path(folder).glob(f".{name}.tmp-*"):
        pid_text = path.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        pid = int(pid_text) if pid_text.isdigit() else None
        if pid is not None and (pid == os.getpid() and not ours or pid != os.getpid() and _alive(pid)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a platform that cannot tell: leave its files alone
    return True


def _fsync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk (POSIX); Windows has
    # no folder handles to fsync, and there os.replace is already durable enough.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
