"""What every benchmark script shares: arguments from a dataclass, provenance, and output files."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def parse_args(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Build an argparse parser from a dataclass (one ``--flag`` per field, help from its docstring)."""
    parser = argparse.ArgumentParser(description=description or cls.__doc__)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        help_text = field.metadata.get("help", "")
        if field.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, (list, tuple)):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, nargs="+", type=kind, default=list(default), help=help_text)
        else:
            parser.add_argument(flag, type=type(default) if default is not None else str, default=default, help=help_text)
    return cls(**vars(parser.parse_args(argv)))


def git_sha() -> str:
    """Return the current commit (with ``-dirty`` when the tree has changes), or ``"unknown"``."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """Describe where the benchmark ran: CPU, cores, GPU, library versions."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for package in ("gymnasium", "transformers", "stable_baselines3", "sacrebleu"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows of dicts as a GitHub markdown table (floats with 3 significant digits)."""
    columns = list(columns or rows[0].keys())

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out_dir: str | Path, name: str, args: Any, rows: list[dict[str, Any]], table: str) -> Path:
    """Write ``<name>.json`` (rows, arguments, git SHA, machine, date) and ``<name>.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "machine": machine(),
        "args": dataclasses.asdict(args) if dataclasses.is_dataclass(args) else dict(vars(args)),
    }
    (out / f"{name}.json").write_text(json.dumps({**meta, "rows": rows}, indent=2, default=str))
    header = f"_{meta['date']} · commit {meta['git_sha']} · {meta['machine']['processor']} ({meta['machine']['cpu_count']} cores)_\n\n"
    (out / f"{name}.md").write_text(header + table + "\n")
    return out / f"{name}.md"
