"""One learning report from runs that differ only in their seeds: one process per seed, one report.

    python -m benchmarks.learning --seeds 0 --name run_s0 --out results/run ...
    python -m benchmarks.learning --seeds 1 --name run_s1 --out results/run ...
    python -m benchmarks.learning_merge --runs results/run/run_s0.json results/run/run_s1.json --name run

A 3-seed run of :mod:`benchmarks.learning` takes hours at its default budget; run seed by seed, an
interruption loses one seed, not all, and a machine with cores to spare can run seeds side by side
(its budget is process CPU time). This checks that the runs share every argument but ``seeds``
(and where they wrote; an argument a run predates counts as its default, which new levers give
the old behaviour), that no seed repeats, then writes the report one
run with all their seeds would have written: per-seed rows as recorded, mean and spread, paired
bootstrap intervals over every seed and test prompt, the plot, a line in ``learning_runs.jsonl``
and, with ``--readme``, the README section. The report's command lists each run's command.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import learning_report
from benchmarks.common import append_jsonl, parse_args, writable_folder
from benchmarks.learning import RUNS_LOG
from benchmarks.learning_args import Args, command_line

PER_RUN = ("seeds", "name", "out", "readme", "save")
"""Arguments that may differ between the merged runs; every other one must be equal."""


@dataclass
class MergeArgs:
    """Arguments of the merge: the runs' JSON reports, and where the merged report goes."""

    runs: list = field(default_factory=list, metadata={"help": "the runs' <name>.json reports (two or more)"})
    name: str = field(default="learning", metadata={"help": "output file stem of the merged report"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for the merged report"})
    readme: str = field(default="", metadata={"help": "rewrite this file's learning section ('' : none)"})

    def __post_init__(self) -> None:
        if len(self.runs) < 2:
            raise ValueError(f"runs: expected two or more <name>.json reports of benchmarks.learning, got {self.runs}.")


def load_run(path: str | Path) -> dict[str, Any]:
    """Read one run's ``<name>.json``; a clear error when it is not a learning benchmark's report."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: expected a benchmarks.learning report (JSON), could not read it: {error}") from None
    keys = {"args", "rows", "git_sha", "command"}
    if not isinstance(record, dict) or not keys <= set(record) or not isinstance(record["args"], dict):
        found = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path}: expected a benchmarks.learning report with keys {sorted(keys)}, got {found}.")
    defaults = asdict(Args())
    unknown = sorted(set(record["args"]) - set(defaults))
    if unknown:
        raise ValueError(f"{path}: expected the arguments of benchmarks.learning, got unknown {unknown}.")
    # A run from before an argument existed ran with its default (new levers default to the old behaviour).
    record["args"] = {**defaults, **record["args"]}
    return record


def merged_args(runs: list[dict[str, Any]], paths: list[str], merge: MergeArgs) -> Args:
    """The arguments of one run with every run's seeds; raises ValueError where the runs differ otherwise."""
    first = runs[0]["args"]
    for path, run in zip(paths[1:], runs[1:], strict=True):
        for key, value in run["args"].items():
            if key not in PER_RUN and value != first[key]:
                raise ValueError(
                    f"{path}: expected the configuration of {paths[0]} but for the seeds, got {key}={value!r} "
                    f"instead of {first[key]!r}."
                )
    seeds = [seed for run in runs for seed in run["args"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"expected every seed in one run only, got seeds {seeds} from {paths}.")
    args = Args(**{**first, "quick": False})  # checks the stored values as if given on the command line
    args.quick = first["quick"]  # set after: __post_init__ would apply the --quick preset over them again
    args.seeds, args.name, args.out, args.readme, args.save = seeds, merge.name, merge.out, merge.readme, ""
    return args


def merge_reports(merge: MergeArgs) -> dict[str, Any]:
    """Build and write the merged report; returns it (``rows``, ``summary``, ``intervals``, ``sources``)."""
    runs = [load_run(path) for path in merge.runs]
    args = merged_args(runs, [str(p) for p in merge.runs], merge)
    folder = writable_folder(merge.out)  # checked before any file is written
    rows = [row for run in runs for row in run["rows"]]
    rows.sort(key=lambda row: (args.tasks.index(row["env"]), args.seeds.index(row["seed"])))  # stable: arms keep order
    merge_command = f"python -m benchmarks.learning_merge --runs {' '.join(map(str, merge.runs))} --name {merge.name}"
    report = {
        "command": "\n".join([*(_with_out(run) for run in runs), merge_command]),
        "rows": rows,
        "summary": learning_report.summarize(rows),
        "intervals": learning_report.intervals(rows),
        "sources": [
            {"path": str(path), "git_sha": run["git_sha"], "date": run.get("date"), "command": run["command"]}
            for path, run in zip(merge.runs, runs, strict=True)
        ],
        "equivalent command": command_line(args),
    }
    learning_report.write_outputs(args, report)
    append_jsonl(folder / RUNS_LOG, learning_report.headline(args, report))
    return report


def _with_out(run: dict[str, Any]) -> str:
    """A run's command, with its ``--out`` when not the default (the merge command reads the runs from there)."""
    out = run["args"]["out"]
    return run["command"] + (f" --out {out}" if out != Args().out else "")


if __name__ == "__main__":
    merge_reports(parse_args(MergeArgs, sys.argv[1:]))
