"""The learning benchmark's reports: per-seed rows, mean and spread, paired intervals, the plot and the README.

Everything here is computed from the :class:`~benchmarks.learning_arms.ArmRun` list of a run;
see :mod:`benchmarks.learning` for what the arms are.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import markdown_table, provenance, replace_section, write_report
from benchmarks.learning_args import ARMS, TRAINED, Args, command_line
from benchmarks.stats import paired_bootstrap

COMPARISONS: tuple[tuple[str, str], ...] = (
    ("supervised+RL", "supervised"),  # the main target: RL on top of the warm start, at equal compute
    ("RL", "copy-prompt"),  # RL alone beats the trivial answer
    ("supervised+RL", "beam"),  # the decoding control: did RL buy more than search?
    ("supervised", "copy-prompt"),
)
"""The paired differences ``a - b`` whose intervals every report gives."""

SEED_COLUMNS = [
    "arm",
    "seed",
    "bleu",
    "chrf",
    "reward",
    "selected",
    "val bleu",
    "train CPU-min",
    "SFT tokens",
    "RL tokens",
    "example",
]
SUMMARY_COLUMNS = ["arm", "seeds", "test BLEU", "chrF", "reward", "train CPU-min", "selected (phase, step)"]
INTERVAL_COLUMNS = ["difference", "mean", "95% interval", "excludes 0"]
COLORS = {"supervised": "tab:orange", "supervised+RL": "tab:green", "RL": "tab:blue"}


def seed_row(run: Any) -> dict[str, Any]:
    """One arm under one seed: test BLEU, chrF and training reward, selection, budget, an example."""
    evaluation, selection = run.evaluation, run.selection or {}
    prompt, text, _ = evaluation.samples(1)[0]
    return {
        "env": run.env_id,
        "task": evaluation.task,
        "arm": run.arm,
        "seed": run.seed,
        "bleu": evaluation.metrics["bleu"],
        "chrf": evaluation.metrics["chrf"],
        "reward": evaluation.metrics.get("reward", math.nan),
        "length": evaluation.metrics["length"],
        "test prompts": len(evaluation.episodes[0]),
        "selected": f"{selection['phase']} {selection['step']}" if selection else "",
        "val bleu": selection["score"] if selection else "",
        "train CPU-min": run.train_cpu_seconds / 60,
        "eval CPU-min": selection.get("eval_cpu_seconds", 0.0) / 60,
        "SFT tokens": run.sft_tokens,
        "RL tokens": run.rl_tokens,
        "example": f"{prompt!r} -> {text!r}",
        "selection": selection or None,
        "bleu per prompt": evaluation.per_prompt("bleu")[0].tolist(),
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread (sample standard deviation) over seeds of each task's arms."""
    summary = []
    for env in dict.fromkeys(row["env"] for row in rows):
        for arm in ARMS:
            group = [row for row in rows if row["env"] == env and row["arm"] == arm]
            if not group:
                continue
            entry: dict[str, Any] = {"env": env, "arm": arm, "seeds": len(group)}
            for key in ("bleu", "chrf", "reward", "train CPU-min"):
                values = np.array([row[key] for row in group], dtype=float)
                entry[key] = float(values.mean())
                entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry["selected"] = [row["selected"] for row in group if row["selected"]]
            summary.append(entry)
    return summary


def intervals(rows: list[dict[str, Any]], n_resamples: int = 10_000) -> list[dict[str, Any]]:
    """The paired-bootstrap interval of each of :data:`COMPARISONS`, per task, over seeds and test prompts."""
    found = []
    for env in dict.fromkeys(row["env"] for row in rows):
        scores = {}
        for arm in ARMS:
            group = sorted((row for row in rows if row["env"] == env and row["arm"] == arm), key=lambda r: r["seed"])
            if group:
                scores[arm] = np.array([row["bleu per prompt"] for row in group])  # (seeds, prompts)
        for a, b in COMPARISONS:
            if a in scores and b in scores:
                interval = paired_bootstrap(scores[a], scores[b], n_resamples=n_resamples, seed=0)
                found.append({"env": env, "a": a, "b": b, "difference": f"{a} − {b}", **interval})
    return found


def build_report(args: Args, runs: list[Any]) -> dict[str, Any]:
    """Rows, summary and intervals of a run's :class:`~benchmarks.learning_arms.ArmRun` list."""
    rows = [seed_row(run) for run in runs]
    return {"command": command_line(args), "rows": rows, "summary": summarize(rows), "intervals": intervals(rows)}


def write_outputs(args: Args, report: dict[str, Any]) -> Path:
    """Write ``<name>.json``/``.md``/``.png`` into ``args.out`` and, with ``args.readme``, the README section."""
    extra = {key: value for key, value in report.items() if key != "rows"}
    path = write_report(args.out, args.name, args, report["rows"], markdown(args, report), extra=extra)
    plot(args, report["rows"], Path(args.out) / f"{args.name}.png")
    if args.readme:
        replace_section(args.readme, "learning", readme_section(args, report))
    print(f"\n{markdown(args, report)}\n\nwritten to {path}", flush=True)
    return path


def configuration(args: Args) -> str:
    """One paragraph: the budget, selection and every lever of the run."""
    clip = f", upper clip {args.clip_range_high:g}" if args.clip_range_high else ""
    clip += f", plus {args.sft_coef:g} x the references' NLL (not in the RL arm)" if args.sft_coef else ""
    clip += f", RL arm at lr {args.rl_only_learning_rate:g}" if args.rl_only_learning_rate else ""
    risk = f" (alpha {args.risk_alpha:g})" if args.baseline == "risk" else ""
    risk += ", over beam-search n-best replies" if args.candidates == "beam" else ""
    decay = f" decaying linearly to 0 at T = {args.minutes:g}" if args.sft_lr_schedule == "linear" else ""
    return (
        f"{args.model}; T = {args.minutes:g} training CPU-minutes per arm (supervised+RL: {args.sft_minutes:g} of "
        f"teacher forcing at lr {args.sft_learning_rate:g}{decay}, then GRPO); seeds {', '.join(map(str, args.seeds))}. "
        f"GRPO: reward `{args.reward}`, baseline `{args.baseline}`{risk}, KL {args.beta:g} to the warm start, "
        f"{args.n_envs} episodes per iteration ({args.group_size} per prompt), temperature {args.temperature:g}, "
        f"lr {args.learning_rate:g}, loss `{args.loss_type}`{clip}, "
        f"{'std-scaled' if args.scale_rewards else 'mean-centred'} advantages, "
        f"{'LoRA r=' + str(args.lora) if args.lora else 'all weights'}. Selection: validation BLEU every "
        f"{args.eval_every_minutes:g} training CPU-minutes ({args.val_prompts or 'all'} prompts), best model kept; "
        f"test: every prompt once, greedy; beam = beam search ({args.beams} beams) on the selected supervised model."
    )


def task_tables(report: dict[str, Any], env: str) -> tuple[str, str, str]:
    """The per-seed, summary and interval tables of one task."""
    rows = [row for row in report["rows"] if row["env"] == env]
    summary = []
    for entry in (e for e in report["summary"] if e["env"] == env):
        summary.append(
            {
                "arm": entry["arm"],
                "seeds": entry["seeds"],
                "test BLEU": f"{entry['bleu']:.3f} ± {entry['bleu_std']:.3f}",
                "chrF": f"{entry['chrf']:.3f} ± {entry['chrf_std']:.3f}",
                "reward": f"{entry['reward']:.3f}",
                "train CPU-min": f"{entry['train CPU-min']:.2f}",
                "selected (phase, step)": "; ".join(entry["selected"]),
            }
        )
    found = [
        {
            "difference": item["difference"],
            "mean": f"{item['mean']:+.3f}",
            "95% interval": f"[{item['low']:+.3f}, {item['high']:+.3f}]",
            "excludes 0": "yes" if item["low"] > 0 or item["high"] < 0 else "no",
        }
        for item in report["intervals"]
        if item["env"] == env
    ]
    return markdown_table(rows, SEED_COLUMNS), markdown_table(summary, SUMMARY_COLUMNS), _table(found)


def markdown(args: Args, report: dict[str, Any]) -> str:
    """The ``<name>.md`` body: the configuration, then per task the summary, intervals and per-seed rows."""
    command = report["command"]  # several lines when benchmarks.learning_merge joined runs
    parts = [f"```\n{command}\n```" if "\n" in command else f"`{command}`", configuration(args)]
    for env in args.tasks:
        per_seed, summary, found = task_tables(report, env)
        parts += [f"## {env}", summary, _INTERVALS_NOTE, found, "Per seed (test split):", per_seed]
    return "\n\n".join(parts)


def readme_section(args: Args, report: dict[str, Any]) -> str:
    """The README's learning section: the command, configuration, and per task the summary and intervals."""
    parts = [
        f"### Does RL earn its place? Test BLEU at equal training CPU time ({args.model}, {len(args.seeds)} seeds)",
        "Command (one torch thread; `--minutes` is process CPU time spent training, validation left out):",
        f"```\n{report['command']}\n```",
        configuration(args),
    ]
    for env in args.tasks:
        _, summary, found = task_tables(report, env)
        parts += [f"**{env}** (mean ± standard deviation over seeds):", summary, _INTERVALS_NOTE, found]
    home = Path(args.readme).resolve().parent if args.readme else Path.cwd()  # links relative to the README
    stem = Path(os.path.relpath(Path(args.out) / args.name, home)).as_posix()
    parts.append(
        f"Per-seed rows with examples: [{args.name}.md]({stem}.md); validation curves: [{args.name}.png]({stem}.png)."
    )
    return "\n\n".join(parts)


def plot(args: Args, rows: list[dict[str, Any]], path: Path) -> Path:
    """Validation BLEU over training CPU-minutes, one panel per task: each seed faint, the mean over seeds bold."""
    from benchmarks.plots import pyplot, save_figure

    fig, axes = pyplot().subplots(1, len(args.tasks), figsize=(5.5 * len(args.tasks), 3.8), squeeze=False)
    grid = np.linspace(0.0, args.minutes, 60)
    for ax, env in zip(axes[0], args.tasks, strict=True):
        for arm in TRAINED:
            curves = []
            for row in (r for r in rows if r["env"] == env and r["arm"] == arm and r["selection"]):
                history = row["selection"]["history"]
                x = [point["train_cpu_seconds"] / 60 for point in history]
                y = [point["score"] for point in history]
                ax.plot(x, y, color=COLORS[arm], alpha=0.25, linewidth=0.8)
                if x:  # NaN outside the seed's evaluations: the mean is drawn where every seed has one
                    curves.append(np.interp(grid, x, y, left=np.nan, right=np.nan))
            if curves:
                mean = np.mean(curves, axis=0)  # (grid,)
                ax.plot(grid, mean, color=COLORS[arm], marker=".", label=f"{arm} (mean of {len(curves)} seeds)")
        ax.axvline(args.sft_minutes, color="gray", linestyle=":", linewidth=0.8, label="supervised+RL: RL starts")
        ax.set_title(f"{env} ({args.model})")
        ax.set_xlabel("training CPU-minutes")
        ax.set_ylabel("validation BLEU")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    return save_figure(fig, path, dpi=120)


def headline(args: Args, report: dict[str, Any]) -> dict[str, Any]:
    """The line that ``learning_runs.jsonl`` keeps of a finished run: configuration, means and intervals."""
    keep = ("env", "arm", "seeds", "bleu", "bleu_std", "chrf", "train CPU-min")
    return {
        **provenance(args),
        "status": "ok",
        "name": args.name,
        "command": report["command"],
        "summary": [{key: entry[key] for key in keep} for entry in report["summary"]],
        "intervals": report["intervals"],
    }


def failed_record(args: Args, runs: list[Any], error: BaseException, trace: str) -> dict[str, Any]:
    """The line that ``learning_runs.jsonl`` keeps of a failed run: the error and the arms finished before it."""
    finished = [{"env": r.env_id, "arm": r.arm, "seed": r.seed, "bleu": r.evaluation.metrics["bleu"]} for r in runs]
    return {
        **provenance(args),
        "status": "failed",
        "name": args.name,
        "command": command_line(args),
        "error": f"{type(error).__name__}: {error}",
        "traceback": trace[-4000:],
        "finished": finished,
    }


_INTERVALS_NOTE = (
    "Paired differences of test BLEU, 95% bootstrap interval over seeds and test prompts (10,000 resamples):"
)


def _table(rows: list[dict[str, Any]]) -> str:
    return markdown_table(rows, INTERVAL_COLUMNS) if rows else "(no pair of arms to compare)"
