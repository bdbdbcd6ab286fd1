"""One table of every throughput benchmark: the env, rollout and trainer scripts' latest results.

    python -m benchmarks.throughput_report                      # reads benchmarks/results/*.json
    python -m benchmarks.throughput_report --readme README.md   # and fills the README's section

It runs nothing: it reads the JSON files that ``benchmarks.env_throughput``,
``benchmarks.rollout_throughput`` and ``benchmarks.trainer_throughput`` wrote (each with its date,
commit and machine) and writes ``throughput.md`` and ``throughput.json`` next to them. Each row
keeps its source's throughput (the first ``.../s`` column) and its ratio columns (``ratio``,
``x <baseline>``, ``... vs ...``): ratios come from one process and one machine, so they are the
figures to compare; absolute speeds are only comparable within a source. ``--readme`` puts the
table between ``<!-- throughput:start -->`` and ``<!-- throughput:end -->``.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.atomic import atomic_write_text
from benchmarks.common import machine_text, markdown_table, parse_args, provenance, replace_section

# Counts that a row carries but that do not describe its configuration.
SKIPPED_KEYS = ("tokens", "seconds", "episodes", "steps")


@dataclass
class Args:
    """Arguments of the throughput report."""

    results: str = field(default="benchmarks/results", metadata={"help": "folder of the benchmarks' JSON files"})
    benchmarks: list = field(
        default_factory=lambda: ["env_throughput", "rollout_throughput", "trainer_throughput"],
        metadata={"help": "benchmark names to gather (the 'benchmark' field of each JSON)"},
    )
    include_quick: bool = field(default=False, metadata={"help": "also gather the --quick smoke runs (<name>_quick)"})
    readme: str = field(default="", metadata={"help": "file whose throughput markers receive the table ('' to skip)"})
    out: str = field(default="", metadata={"help": "folder for throughput.md/.json (default: --results)"})


def load_sources(folder: str | Path, names: Sequence[str], include_quick: bool = False) -> list[dict[str, Any]]:
    """Return the benchmark reports in ``folder`` whose ``benchmark`` is one of ``names``, in that order.

    A ``<name>_quick`` report counts only with ``include_quick``, and only when there is no full
    one. Files that are not benchmark reports are skipped.
    """
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(report, dict) and isinstance(report.get("rows"), list) and "benchmark" in report:
            found[report["benchmark"]] = {**report, "file": path.name}
    sources = []
    for name in names:
        report = found.get(name) or (found.get(f"{name}_quick") if include_quick else None)
        if report is not None:
            sources.append(report)
    return sources


def unify(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Turn one report's rows into rows of ``benchmark, configuration, throughput, unit, relative``.

    >>> unify({"benchmark": "env_throughput", "date": "2026-11-29T02:53:53+00:00", "git_sha": "abc",
    ...        "rows": [{"env": "TextGen-v0", "num_envs": 64, "env steps/s": 44787.3, "env cost vs LM step": "0.04%"}]})
    [{'benchmark': 'env_throughput', 'configuration': 'TextGen-v0, num_envs=64', 'throughput': 44787.3, 'unit': 'env steps/s', 'relative': 'env cost vs LM step: 0.04%', 'date': '2026-11-29', 'commit': 'abc'}]
    """
    rows = []
    for row in report["rows"]:
        unit = next((key for key in row if key.endswith("/s")), None)
        relative = [key for key in row if _is_ratio(key)]
        config = []
        for key, value in row.items():
            if key == unit or key in relative or key in SKIPPED_KEYS:
                continue
            if isinstance(value, float):
                config.append(f"{key}={value:.3g}")
            elif isinstance(value, int) and not isinstance(value, bool):
                config.append(f"{key}={value}")
            elif value not in (None, "", "-"):
                config.append(str(value))
        rows.append(
            {
                "benchmark": report["benchmark"],
                "configuration": ", ".join(config),
                "throughput": row.get(unit) if unit else None,
                "unit": unit or "",
                "relative": "; ".join(f"{key}: {_fmt(row[key])}" for key in relative),
                "date": str(report.get("date", ""))[:10],
                "commit": report.get("git_sha", ""),
            }
        )
    return rows


def _is_ratio(key: str) -> bool:
    return key == "ratio" or key.startswith("x ") or " vs " in key


def _fmt(value: Any) -> str:
    return f"{value:.2f}x" if isinstance(value, float) else str(value)


def sources_text(sources: list[dict[str, Any]]) -> str:
    """One line per source: file, date, commit, machine."""
    return "\n".join(
        f"- `{report['file']}`: {str(report.get('date', ''))[:16]} UTC, commit {report.get('git_sha', '?')}, "
        f"{machine_text(report.get('machine', {}))}"
        for report in sources
    )


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Gather the reports named by the command line ``argv`` (default: ``sys.argv[1:]``); return the rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(Args, argv, description=__doc__.splitlines()[0])
    sources = load_sources(args.results, args.benchmarks, args.include_quick)
    if not sources:
        raise SystemExit(f"No results of {args.benchmarks} in {args.results}; run those benchmarks first.")
    rows = [row for report in sources for row in unify(report)]
    table = markdown_table(rows, ["benchmark", "configuration", "throughput", "unit", "relative"])
    command = "python -m benchmarks.throughput_report " + shlex.join(argv)
    meta = {"benchmark": "throughput_report", **provenance(args), "command": command}
    body = (
        f"_Gathered {meta['date'][:10]} by `{command.strip()}` from:_\n\n{sources_text(sources)}\n\n{table}\n\n"
        "Compare the ratios (measured within one process); absolute speeds depend on each source's machine and load."
    )
    out = Path(args.out or args.results)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "throughput.md", body + "\n")
    gathered = [{k: s.get(k) for k in ("file", "benchmark", "date", "git_sha", "machine")} for s in sources]
    report = {**meta, "sources": gathered, "rows": rows}
    atomic_write_text(out / "throughput.json", json.dumps(report, indent=2, default=str))
    if args.readme:
        replace_section(args.readme, "throughput", body)
    print(table)
    return rows


if __name__ == "__main__":
    main()
