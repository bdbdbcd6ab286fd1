"""Choosing supervised+RL's levers on validation: every configuration from one shared warm start, test never played.

    python -m benchmarks.learning_sweep --tasks TextGen-Translate-v0 --seeds 0 --minutes 4 --sft-minutes 2.5 \\
        --configs "beta=0.05" "beta=0;learning_rate=1e-05" "baseline=group" "reward=bleu"
    python -m benchmarks.learning_sweep --quick                    # tiny model, seconds: checks the script

For each task and seed, the supervised arm of :mod:`benchmarks.learning` runs once: teacher forcing
for T, selected on validation, its model at t kept (:class:`~benchmarks.learning_arms.Fork`). From
that one model at t, GRPO runs for T - t with each configuration of ``--configs``: overrides of
the benchmark's RL levers (:data:`LEVERS`), ``name=value`` pairs joined by ``;``. Every run is
scored by the same validation schedule and keeps its best model, so a row's ``val BLEU`` is what
that configuration would bring to the benchmark, next to the supervised arm's at the same
compute. The ``test`` split is never played here: pick on this report, then run
:mod:`benchmarks.learning` once with the chosen flags.

Every configuration is reported, a failed one with its error. Writes ``<name>.json`` and
``<name>.md`` to ``--out`` and appends the sweep to ``<out>/learning_runs.jsonl``.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import sys
from dataclasses import dataclass, field
from typing import Any

import text_gym  # noqa: F401  (registers the environments)
from benchmarks.common import append_jsonl, markdown_table, parse_args, set_threads, writable_folder, write_report
from benchmarks.learning import RUNS_LOG
from benchmarks.learning_args import Args, command_line
from benchmarks.learning_arms import make_trainer, rl_from_fork, supervised_with_fork

LEVERS = (
    "reward",
    "baseline",
    "beta",
    "group_size",
    "temperature",
    "learning_rate",
    "loss_type",
    "clip_range_high",
    "scale_rewards",
    "sft_coef",
    "risk_alpha",
    "candidates",
    "n_envs",
    "batch_size",
)
"""The settings a configuration may override: GRPO's, for the RL phase (the warm start is shared)."""

COLUMNS = ["task", "seed", "configuration", "val BLEU", "vs supervised", "selected", "RL tokens", "train CPU-min"]


@dataclass
class SweepArgs(Args):
    """Arguments of the sweep: the benchmark's, and the configurations to try."""

    configs: list = field(
        default_factory=lambda: ["beta=0.05"],
        metadata={"help": "configurations: name=value pairs joined by ';' (names: see LEVERS)"},
    )
    name: str = field(default="learning_sweep", metadata={"help": "output file stem: <name>.json/.md"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for spec in self.configs:
            with_levers(self, spec)  # every configuration is checked before anything trains


def with_levers(args: Args, spec: str) -> Args:
    """``args`` with the overrides of ``spec`` (``"beta=0.05;learning_rate=1e-05"``), checked like the flags.

    Raises:
        ValueError: A name is not one of :data:`LEVERS`, a value does not parse, or the result is out of range.
    """
    values: dict[str, Any] = {}
    for pair in filter(None, (part.strip() for part in spec.split(";"))):
        name, sep, text = pair.partition("=")
        if not sep or name not in LEVERS:
            raise ValueError(
                f"configuration {spec!r}: expected name=value pairs with names in {list(LEVERS)}, got {pair!r}."
            )
        values[name] = _parse(name, text, getattr(args, name))
    configured = copy.copy(args)
    for name, value in values.items():
        setattr(configured, name, value)
    fields = {f.name: getattr(configured, f.name) for f in dataclasses.fields(Args)}
    Args(**{**fields, "quick": False})  # the flags' own checks, without the --quick preset
    return configured


def _parse(name: str, text: str, current: Any) -> Any:
    """``text`` as a value of the type of ``current``."""
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return type(current)(text)
    except ValueError:
        raise ValueError(f"{name}: expected a {type(current).__name__}, got {text!r}.") from None


def sweep_seed(args: SweepArgs, env_id: str, seed: int) -> list[dict[str, Any]]:
    """The supervised arm and every configuration from its model at t, under ``seed``: one row each."""
    trainer = make_trainer(args, env_id, seed)
    selection, fork, seconds = supervised_with_fork(args, trainer, env_id)
    supervised = selection.best_score
    rows = [_row(env_id, seed, "supervised (teacher forcing for T)", selection.summary(), 0, seconds, supervised)]
    selection.close()
    del trainer
    for spec in args.configs:
        try:
            rl, branch, seconds = rl_from_fork(with_levers(args, spec), fork, env_id, seed)
            rows.append(_row(env_id, seed, spec, branch.summary(), rl.num_timesteps, seconds, supervised))
            branch.close()
            del rl
        except Exception as error:  # a failed configuration is a row too
            rows.append(
                {"task": env_id, "seed": seed, "configuration": spec, "error": f"{type(error).__name__}: {error}"}
            )
        gc.collect()
    return rows


def _row(
    env_id: str, seed: int, name: str, summary: dict[str, Any], rl_tokens: int, seconds: float, supervised: float
) -> dict[str, Any]:
    return {
        "task": env_id,
        "seed": seed,
        "configuration": name,
        "val BLEU": summary["score"],
        "vs supervised": summary["score"] - supervised,
        "selected": f"{summary['phase']} {summary['step']}",
        "RL tokens": int(rl_tokens),
        "train CPU-min": seconds / 60,
        "history": summary["history"],
    }


def markdown(args: SweepArgs, rows: list[dict[str, Any]]) -> str:
    """The sweep's report: the command, what was shared, one row per configuration and seed."""
    shown = [{**row, "val BLEU": row.get("val BLEU", row.get("error", ""))} for row in rows]
    return "\n\n".join(
        [
            f"`{command_line(args, 'benchmarks.learning_sweep')}`",
            f"Validation split only ({args.val_prompts or 'every'} prompts, greedy BLEU, best of each run's "
            f"evaluations every {args.eval_every_minutes:g} training CPU-minutes). T = {args.minutes:g} CPU-minutes; "
            f"every configuration starts from the supervised arm's model at t = {args.sft_minutes:g}. "
            "`vs supervised`: the configuration's best minus the supervised arm's best (teacher forcing for all of T).",
            markdown_table(shown, COLUMNS),
        ]
    )


def main(args: SweepArgs) -> list[dict[str, Any]]:
    """Run every task, seed and configuration; write the report; log the sweep."""
    set_threads(args.threads)
    folder = writable_folder(args.out)
    rows: list[dict[str, Any]] = []
    for env_id in args.tasks:
        for seed in args.seeds:
            rows += sweep_seed(args, env_id, int(seed))
    write_report(folder, args.name, args, rows, markdown(args, rows))
    best = max((row for row in rows if "val BLEU" in row), key=lambda row: row["val BLEU"])
    append_jsonl(
        folder / RUNS_LOG,
        {"sweep": args.name, "command": command_line(args, "benchmarks.learning_sweep"), "best": best["configuration"]},
    )
    return rows


if __name__ == "__main__":
    main(parse_args(SweepArgs, sys.argv[1:]))
