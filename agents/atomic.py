"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every checkpoint, result and report is written through :func:`atomic_path`: to a temporary file
in the target's folder (so the final rename never crosses file systems), flushed and fsynced,
then moved over the target with ``os.replace``, which POSIX and Windows make atomic. A crash,
Ctrl-C or SIGKILL before the rename leaves the previous file intact and at most a stray
``.<name>.tmp-*`` file beside it::

    with atomic_path("runs/x/model.zip") as tmp:
        write_zip(tmp)                      # any writer that takes a path
    atomic_write_text("runs/x/results.json", json.dumps(results))
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, fsync it and move it onto ``path``.

    The parent folder is created if needed. If the block raises (or the process dies), ``path``
    is untouched and the temporary file is removed (when the process lives to do so).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
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
