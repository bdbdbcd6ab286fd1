"""SB3 loggers for the trainers: no stray temporary folders, and a ``progress.csv`` that a resumed run extends.

SB3's ``configure(folder, formats)`` creates a folder even when nothing is written to it (with
``folder=None`` it makes ``<tempdir>/SB3-<date>``, also for ``["stdout"]`` or ``[]``), and its CSV
writer opens ``progress.csv`` with mode ``"w"``, so a resumed run would erase the log of the run
it continues. :func:`make_logger` builds the same ``Logger`` without either surprise.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

from stable_baselines3.common.logger import (
    CSVOutputFormat,
    HumanOutputFormat,
    JSONOutputFormat,
    KVWriter,
    Logger,
    make_output_format,
)

from agents.atomic import atomic_write_text

__all__ = ["AppendingCSVOutputFormat", "make_logger"]

STEP_COLUMN = "time/total_timesteps"
"""The column :class:`AppendingCSVOutputFormat` reads a row's step from."""

FILE_FORMATS = ("csv", "log", "json", "tensorboard")


def make_logger(folder: str | os.PathLike[str] | None, formats: list[str], *, resume_at: int | None = None) -> Logger:
    """SB3's ``Logger`` writing ``formats`` (``"stdout"``, ``"csv"``, ``"tensorboard"``...) into ``folder``.

    Unlike SB3's ``configure``, it creates ``folder`` only when a format writes files there, and
    never a temporary one.

    Args:
        folder: Where the file formats write; may be None when ``formats`` has none of them.
        formats: SB3's format names; ``[]`` logs nothing.
        resume_at: Continue the log of a run resumed at this step: ``progress.csv`` is appended
            to (rows logged after this step, by a run that went on past its checkpoint, are
            dropped, since the resumed run logs those steps again), and ``log.txt`` and
            ``progress.json`` are appended to. None starts new files, as SB3 does.

    Raises:
        ValueError: A file format without a ``folder``.
    """
    writes_files = [f for f in formats if f in FILE_FORMATS]
    if writes_files and folder is None:
        raise ValueError(f"expected a folder for the file formats {writes_files}, got folder=None.")
    if writes_files:
        Path(folder).mkdir(parents=True, exist_ok=True)
    outputs: list[KVWriter] = []
    for name in formats:
        if name == "stdout":  # not make_output_format: it creates the folder first
            outputs.append(HumanOutputFormat(sys.stdout))
        elif name == "csv" and resume_at is not None:
            outputs.append(AppendingCSVOutputFormat(Path(folder, "progress.csv"), resume_at))
        elif name in ("log", "json") and resume_at is not None:
            outputs.append(_appending(name, Path(folder)))
        else:
            outputs.append(make_output_format(name, str(folder)))
    return Logger(folder=None if folder is None else str(folder), output_formats=outputs)


class AppendingCSVOutputFormat(CSVOutputFormat):
    """SB3's CSV writer, continuing an existing file: its header and rows are kept.

    A new column is handled as SB3 does within one run: the header is rewritten and every
    earlier row padded with an empty cell. Rows whose ``time/total_timesteps`` is above
    ``resume_at`` are dropped, and so is a last line cut short by a kill.

    Args:
        filename: The CSV file; a missing or empty one is started as SB3 would.
        resume_at: The step the resumed run continues from.
    """

    def __init__(self, filename: str | os.PathLike[str], resume_at: int) -> None:
        path = Path(filename)
        if not path.is_file() or path.stat().st_size == 0:
            super().__init__(str(path))
            return
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # a row cut short by a kill
        self.keys = next(csv.reader(lines[:1]), [])
        self.separator, self.quotechar = ",", '"'
        step = self.keys.index(STEP_COLUMN) if STEP_COLUMN in self.keys else None
        kept = "".join(lines[:1] + [line for line in lines[1:] if not _after(line, step, resume_at)])
        if kept != text:
            atomic_write_text(path, kept)  # a kill now leaves the old file, not half of it
        self.file = open(path, "r+")  # closed by close(), as SB3's writer
        self.file.seek(0, os.SEEK_END)  # SB3's header rewrite seeks to 0 itself; rows go at the end


def _after(line: str, column: int | None, step: int) -> bool:
    """Whether a CSV row was logged after ``step`` (a row without a step is kept)."""
    if column is None:
        return False
    cells = next(csv.reader([line]), [])
    try:
        return float(cells[column]) > step
    except (IndexError, ValueError):
        return False


def _appending(name: str, folder: Path) -> KVWriter:
    """SB3's ``log`` or ``json`` writer, appending to its file instead of starting it again."""
    if name == "log":
        writer = HumanOutputFormat(open(folder / "log.txt", "a"))  # closed by close()
        writer.own_file = True
        return writer
    return _AppendingJSONOutputFormat(folder / "progress.json")


class _AppendingJSONOutputFormat(JSONOutputFormat):
    """SB3's JSON-lines writer, opened for appending."""

    def __init__(self, filename: Path) -> None:  # not super().__init__: it opens with "w"
        self.file = open(filename, "a")  # closed by close()
