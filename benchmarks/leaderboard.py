"""One leaderboard for agents and trainers: quality, diversity, speed and memory on TextGen tasks.

    python -m benchmarks.leaderboard --quick --out /tmp/lb          # tiny model, copy task: seconds
    python -m benchmarks.leaderboard                                # SmolLM2-135M: qa, copy, arithmetic
    python -m benchmarks.leaderboard --agents greedy sampling trained=ckpt:runs/train/model.zip \\
        --tasks qa my_data.jsonl --seeds 0 1 2 --readme README.md

Every agent plays the first ``--episodes`` prompts of each task's held-out split (``test``), one
episode per prompt (``reset(options={"index": i})``), so all agents answer the same prompts. Each
seed repeats that for the random and sampling agents (their generator and the envs seeded by it);
the deterministic ones play once (``--repeat-deterministic`` replays them). Episodes run only
through :func:`agents.evaluation.evaluate`, the loop behind every report: ``--batch-size`` envs at
a time with the agent's batched ``act`` (a finished row takes the next prompt at once). The
replies and the task's references are then scored; see :data:`METRICS` for every column.

Agents (``[LABEL=]KIND[:MODEL]``): ``random``, ``greedy``, ``sampling``, ``beam`` and ``reference``
(:mod:`agents.baselines`), with ``--model`` or ``MODEL`` (a preset, a transformers folder, a saved
``LMActorCritic`` folder or a trainer's ``.zip``); ``ckpt:PATH`` is short for ``greedy:PATH``, a
trained checkpoint decoded greedily. Tasks: registered names (``qa``, ``copy``...) or ``.jsonl``
files. Each agent runs in its own process (``--isolate``, the default), so its memory is
measured from a clean start and its speed is not disturbed by what ran before.

Writes into ``--out``: ``results.json`` (every row and run, replies of a few prompts, git SHA,
machine, versions, arguments and the command), ``leaderboard.md`` and one ``bar_<metric>.png``
per metric with the spread over seeds as error bars, plus ``learning_curves.png`` from the
trainers' CSV logs (``--curves``, and any ``progress.csv`` next to a checkpoint). ``--readme``
puts the table, date, machine and command between ``<!-- leaderboard:start -->`` and
``<!-- leaderboard:end -->`` in that file. Every file is replaced atomically (:mod:`agents.atomic`).

Nothing is lost to a late failure: every run (agent, task, seed) is appended to
``<out>/runs.jsonl`` as soon as it finishes, and the next invocation reuses the runs there that
were played with the same settings (:data:`RESULT_ARGS`, the device and CPU threads, and the
content of the files and model folders used: :func:`run_key`) instead of replaying them;
``--fresh`` replays everything. A user error ends the command with one ``error:`` line and exit
status 2 (``--debug`` shows the traceback). All arguments (agents, checkpoints and their tokenizer, tasks, ``--out``,
``--readme``) are checked before any agent plays.

The code is split by concern: this module is the command line and runs the agents one after
another; :mod:`benchmarks.leaderboard_args` holds the arguments, :mod:`benchmarks.leaderboard_agents`
builds the agents, :mod:`benchmarks.leaderboard_runs` plays one agent's runs,
:mod:`benchmarks.leaderboard_scoring` computes the columns and :mod:`benchmarks.leaderboard_report`
writes the outputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import parse_args
from benchmarks.leaderboard_agents import check_checkpoints, load_policy, make_agent
from benchmarks.leaderboard_args import QUICK, AgentSpec, Args, task_label
from benchmarks.leaderboard_report import check_outputs, render, table, update_readme, write_outputs
from benchmarks.leaderboard_runs import RESULT_ARGS, evaluate_agent, finished_runs, key_text, plan, run_key
from benchmarks.leaderboard_scoring import METRICS, summarize
from text_gym.errors import run_command

__all__ = [
    "METRICS",
    "QUICK",
    "RESULT_ARGS",
    "AgentSpec",
    "Args",
    "evaluate_agent",
    "load_policy",
    "main",
    "make_agent",
    "plan",
    "render",
    "run_agents",
    "run_key",
    "summarize",
    "table",
    "write_outputs",
]


def run_agents(args: Args, log: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every agent's raw runs, each agent in a fresh process when ``args.isolate``.

    With ``log`` (``<out>/runs.jsonl``), each run is appended to it as it finishes, and the runs
    already there with the same :func:`run_key` are reused instead of replayed (all are
    replayed, and the log overwritten, with ``args.fresh``).

    Raises:
        DatasetError, FileNotFoundError, UnknownNameError: A task is unknown, missing or has an
            empty split; checked for every task before any agent plays.
        ValueError: A checkpoint was trained with another tokenizer than ``args.model``, or is
            not a trainer's ``.zip``; checked before any agent plays.
    """
    from text_gym.tasks import make_task

    for task in args.tasks:
        make_task(task, args.split)
    check_checkpoints(args)
    done = finished_runs(log, args.fresh) if log is not None else {}
    runs: list[dict[str, Any]] = []
    for spec in args.agents:
        todo = plan(args, spec)
        kept = {pair: done[key] for pair in todo if (key := key_text(run_key(args, spec, *pair))) in done}
        missing = [pair for pair in todo if pair not in kept]
        if kept:
            print(
                f"[leaderboard] {spec}: skipped {_runs_text(kept)}, already in {log} (--fresh replays them)", flush=True
            )
        if missing:
            print(f"[leaderboard] {spec}: playing {_runs_text(missing)}", flush=True)
        played = dict(zip(missing, _play(args, spec, missing, log) if missing else [], strict=True))
        runs += [kept[pair] if pair in kept else played[pair] for pair in todo]
    return runs


def _runs_text(pairs: Sequence[tuple[str, int]]) -> str:
    return f"{len(pairs)} run(s): " + ", ".join(f"{task_label(task)} seed {seed}" for task, seed in pairs)


def _play(
    args: Args, spec: str, todo: list[tuple[str, int]], log: str | os.PathLike[str] | None
) -> list[dict[str, Any]]:
    if not args.isolate:
        return evaluate_agent(args, spec, todo, log)
    # The child appends to the log: agents play one at a time, so only one process writes it.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(evaluate_agent, args, spec, todo, log).result()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the leaderboard with the command line ``argv`` (default: ``sys.argv[1:]``); return the report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(Args, argv, description=__doc__.splitlines()[0])
    if args.render:
        return rerender(args.render, args.readme)
    if args.quick:  # the preset fills what the command line did not set
        given = {a.split("=")[0].lstrip("-").replace("-", "_").removeprefix("no_") for a in argv if a.startswith("--")}
        args = dataclasses.replace(args, **{k: v for k, v in QUICK.items() if k not in given})
    command = "python -m benchmarks.leaderboard " + shlex.join(argv)
    check_outputs(args)
    start = time.perf_counter()
    runs = run_agents(args, log=Path(args.out) / "runs.jsonl")
    rows, per_seed = summarize(runs, args)
    report = write_outputs(args, rows, per_seed, runs, command, time.perf_counter() - start)
    if args.readme:
        update_readme(args.readme, args, report)
    print(table(rows, args.coherence))
    print(
        f"[leaderboard] wrote {args.out}/results.json, leaderboard.md, plots and runs.jsonl in {report['seconds']:.0f} s"
    )
    return report


def rerender(results: str, readme: str = "") -> dict[str, Any]:
    """Redraw ``leaderboard.md``, the plots and ``readme`` from a ``results.json`` (or its folder); play nothing."""
    path = Path(results)
    report = json.loads((path / "results.json" if path.is_dir() else path).read_text())
    out = str(path if path.is_dir() else path.parent)
    played = Args(**{**report["args"], "out": out, "readme": readme, "render": ""})
    check_outputs(played)
    render(played, report)
    if readme:
        update_readme(readme, played, report)
    return report


if __name__ == "__main__":
    run_command(main, "python -m benchmarks.leaderboard")  # a user error: one line and exit 2 (text_gym.errors)
