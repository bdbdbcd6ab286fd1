"""PNG plots for the benchmarks: grouped bar charts with error bars, learning curves, and saving.

matplotlib is imported inside each function, with the non-interactive ``Agg`` backend, so
importing this module is free and plotting works on machines without a display. Every benchmark
draws with :func:`pyplot` and writes with :func:`save_figure` (atomic, no timestamp).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import atomic_output

MATPLOTLIB_INSTALL = 'pip install matplotlib   (or: pip install -e ".[bench]")'

# x: SB3's step count; y: the first of these columns that the log has (our trainers, then SB3).
CURVE_X = "time/total_timesteps"
CURVE_Y = ("rollout/ep_rew_mean", "rollout/batch_rew_mean")


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the ``Agg`` backend; an ImportError naming the install command without it."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(f"The benchmark plots need matplotlib; install it with `{MATPLOTLIB_INSTALL}`.") from error
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_chart(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | os.PathLike[str],
    *,
    label: str | None = None,
    group: str = "task",
    series: str = "agent",
    title: str | None = None,
    log: bool = False,
) -> Path:
    """Draw ``rows[metric]`` as bars grouped by ``rows[group]``, one colour per ``rows[series]``.

    Error bars are ``rows[metric + "_std"]`` when present (the spread over seeds). Rows whose
    value is missing or NaN leave a gap.

    Args:
        rows: Dicts with at least ``group``, ``series`` and ``metric`` keys.
        metric: The key to plot.
        path: The PNG file to write (its folder is created).
        label: The y-axis label; default ``metric``.
        group: The key whose values make the x-axis groups.
        series: The key whose values make the bars of a group.
        title: The figure title; default ``label``.
        log: A logarithmic y-axis (for speeds that span orders of magnitude).

    Returns:
        ``path`` as a ``Path``.
    """
    plt = pyplot()
    groups = list(dict.fromkeys(str(r[group]) for r in rows))
    names = list(dict.fromkeys(str(r[series]) for r in rows))
    lookup = {(str(r[group]), str(r[series])): r for r in rows}
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(len(names), 2) * 0.5 + 2), 4.0))
    for k, name in enumerate(names):
        xs, ys, errs = [], [], []
        for g, key in enumerate(groups):
            row = lookup.get((key, name))
            value = _number(row.get(metric)) if row else math.nan
            if math.isnan(value):
                continue
            xs.append(g - 0.4 + width * (k + 0.5))
            ys.append(value)
            std = _number(row.get(f"{metric}_std"))
            errs.append(0.0 if math.isnan(std) else std)
        ax.bar(xs, ys, width=width * 0.95, yerr=errs, capsize=3, label=name)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(label or metric)
    if log:
        ax.set_yscale("log")
    ax.set_title(title or label or metric)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", ncols=min(len(names), 3), loc="best")
    return save_figure(fig, path)


def read_curve(
    path: str | os.PathLike[str], x: str = CURVE_X, y: Sequence[str] = CURVE_Y
) -> tuple[list[float], list[float]]:
    """Return ``(steps, rewards)`` from a trainer's CSV log (SB3's ``progress.csv``).

    Raises:
        ValueError: The file has no ``x`` column or none of the ``y`` columns.
    """
    with open(path, newline="") as file:
        records = list(csv.DictReader(file))
    columns = set(records[0]) if records else set()
    y_key = next((key for key in y if key in columns), None)
    if x not in columns or y_key is None:
        raise ValueError(
            f"Expected a trainer CSV log with columns {x!r} and one of {list(y)}, got {sorted(columns)} in {path}."
        )
    points = [(_number(r[x]), _number(r[y_key])) for r in records]
    points = [(a, b) for a, b in points if not (math.isnan(a) or math.isnan(b))]
    return [a for a, _ in points], [b for _, b in points]


def learning_curves(
    logs: Mapping[str, str | os.PathLike[str]], path: str | os.PathLike[str], *, title: str = "Training reward"
) -> Path:
    """Plot the mean episode reward against generated tokens, one line per trainer CSV log.

    Args:
        logs: Label -> CSV log path (``progress.csv`` written by SB3's logger, as ``agents.train`` does).
        path: The PNG file to write.
        title: The figure title.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for name, log in logs.items():
        steps, rewards = read_curve(log)
        ax.plot(steps, rewards, marker="." if len(steps) < 30 else None, label=name)
    ax.set_xlabel("generated tokens (env steps)")
    ax.set_ylabel("mean episode reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to the PNG ``path`` (its folder is created) and close it.

    The file is replaced atomically, so a crash while drawing leaves the previous plot whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        # No timestamps in the file, so re-running with the same numbers changes no committed byte.
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    return path


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


__all__ = ["bar_chart", "learning_curves", "pyplot", "read_curve", "save_figure"]
