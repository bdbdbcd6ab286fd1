"""Periodic checkpoints: a save every few minutes between iterations, pruned to this run's newest few."""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

from agents.trainers.archive import Archive, CheckpointError
from text_gym.errors import check_positive_int

__all__ = ["PeriodicCheckpoints", "stored_run_id"]


class PeriodicCheckpoints:
    """Save a trainer every ``minutes`` of wall time, between iterations, keeping this run's newest ``keep``.

    Pass it to ``learn(checkpoints=...)``. Saving happens only after a complete iteration (rollout
    and update), so every checkpoint resumes exactly; files are
    ``<folder>/<prefix>_<num_timesteps>_steps.zip`` (``<prefix>_warm_<tokens>_tokens.zip`` during a
    warm start, which takes them too), written atomically. Pruning deletes only
    checkpoints of the same run (the ``run_id`` stored in each), never another run's files that
    share the folder and prefix (a name another run's checkpoint holds gets ``.<run id>`` before
    ``.zip`` instead of replacing it). A save that fails (a full disk) warns, and training goes on.

    Args:
        folder: Where the checkpoints go.
        minutes: Wall time between two saves.
        keep: How many of this run's newest checkpoints to keep (older ones are deleted).
        prefix: The file name prefix.
    """

    def __init__(
        self, folder: str | os.PathLike[str], minutes: float = 10.0, keep: int = 3, prefix: str = "checkpoint"
    ) -> None:
        if not minutes > 0 or not math.isfinite(minutes):
            raise ValueError(f"minutes: expected a finite positive number, got {minutes!r}.")
        check_positive_int("keep", keep)
        self.folder, self.seconds, self.keep, self.prefix = Path(folder), 60.0 * minutes, keep, prefix
        self._last = time.monotonic()

    def maybe_save(self, trainer: Any) -> Path | None:
        """Save ``trainer`` if ``minutes`` have passed since the last save (or the start); return the path.

        A failed save (``OSError``: a full disk, a folder gone) is a warning, not the end of the
        run: the next one is tried ``minutes`` later.
        """
        if time.monotonic() - self._last < self.seconds:
            return None
        self._last = time.monotonic()
        warm = trainer.warm_start_progress
        name = (
            f"{self.prefix}_warm_{warm}_tokens.zip"
            if warm is not None
            else f"{self.prefix}_{trainer.num_timesteps}_steps.zip"
        )
        target = self.folder / name
        if target.exists() and stored_run_id(target) != trainer.run_id:  # never overwrite another run's file
            target = target.with_name(f"{target.stem}.{trainer.run_id[:8]}.zip")
        try:
            path = trainer.save(target)
        except OSError as error:
            warnings.warn(
                f"Periodic checkpoint in {self.folder} failed ({error}); training goes on, the next save is in "
                f"{self.seconds / 60:g} minutes.",
                stacklevel=2,
            )
            return None
        for old in self.saved(trainer.run_id)[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def saved(self, run_id: str | None = None) -> list[Path]:
        """This prefix's checkpoints in the folder, oldest first; only run ``run_id``'s if given.

        Oldest first means warm-start checkpoints (``<prefix>_warm_<tokens>_tokens.zip``, by
        tokens), then RL ones (``<prefix>_<steps>_steps.zip``, by step count).
        """
        pattern = re.compile(rf"{re.escape(self.prefix)}_(?:(\d+)_steps|warm_(\d+)_tokens)(?:\.[0-9a-f]{{8}})?\.zip")
        found = []
        for path in self.folder.glob(f"{self.prefix}_*.zip"):
            if m := pattern.fullmatch(path.name):
                found.append(((1, int(m.group(1))) if m.group(1) else (0, int(m.group(2))), path))
        return [p for _, p in sorted(found) if run_id is None or stored_run_id(p) == run_id]


def stored_run_id(path: Path) -> str | None:
    """The ``run_id`` a checkpoint stores; None when it has none or cannot be read."""
    try:
        with warnings.catch_warnings(), Archive(path) as archive:
            warnings.simplefilter("ignore")
            state = archive.read_json("trainer.json")
    except (OSError, CheckpointError):
        return None
    return state.get("run_id") if isinstance(state, dict) else None
