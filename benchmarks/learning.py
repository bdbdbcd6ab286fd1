"""Does training help? Held-out BLEU of a trained agent against the untrained LM, per task.

    python -m benchmarks.learning                      # SmolLM2-135M, TextGen-v0 and TextGen-Copy-v0, 20 min each
    python -m benchmarks.learning --minutes 5          # a shorter budget
    python -m benchmarks.learning --tasks TextGen-Copy-v0 --max-new-tokens 16 --name learning_copy
    python -m benchmarks.learning --quick              # tiny model, seconds: checks the script

For each task: evaluate the untrained model on the held-out ``test`` split (greedy and sampling),
train with GRPO for ``--minutes`` of wall-clock time (the training env pays BLEU, the metric
reported), evaluate the trained model the same way, and write ``<name>.json``/``.md`` (the
table) and ``<name>.png`` (training reward per iteration, with the held-out scores as lines).
Evaluation time is not counted in the budget. The margin is reported whatever its sign.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

import text_gym  # noqa: F401  (registers the environments)
from agents.grpo import GRPO
from agents.train import evaluate
from benchmarks.common import markdown_table, parse_args, write_report


@dataclass
class Args:
    """Arguments of the learning benchmark."""

    model: str = field(default="smollm2-135m", metadata={"help": "model preset (also the env's tokenizer)"})
    tasks: list = field(default_factory=lambda: ["TextGen-v0", "TextGen-Copy-v0"], metadata={"help": "env ids"})
    max_new_tokens: list = field(default_factory=lambda: [24, 16], metadata={"help": "reply budget per task"})
    reward: str = field(default="bleu", metadata={"help": "training reward and reported metric"})
    minutes: float = field(default=20.0, metadata={"help": "training wall-clock budget per task"})
    n_envs: int = field(default=16, metadata={"help": "episodes per iteration"})
    group_size: int = field(default=4, metadata={"help": "GRPO replies per prompt"})
    batch_size: int = field(default=8, metadata={"help": "episodes per optimizer step (two steps per iteration)"})
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW step size (full fine-tuning)"})
    lora: int = field(default=0, metadata={"help": "LoRA rank (0: train all weights)"})
    eval_episodes: int = field(default=96, metadata={"help": "held-out prompts per evaluation"})
    seed: int = field(default=0, metadata={"help": "seed of the trainer and of sampling evaluations"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default)"})
    name: str = field(default="learning", metadata={"help": "output file stem: <name>.json/.md/.png"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for the outputs"})
    quick: bool = field(default=False, metadata={"help": "tiny model, copy task with chrF, 20 s"})

    def __post_init__(self) -> None:
        if self.quick:
            self.model, self.tasks, self.max_new_tokens, self.reward = "tiny", ["TextGen-Copy-v0"], [8], "chrf"
            self.minutes, self.learning_rate, self.eval_episodes, self.n_envs, self.group_size = 0.34, 1e-2, 16, 32, 8
        if len(self.max_new_tokens) != len(self.tasks):
            raise ValueError(f"expected one max_new_tokens per task ({len(self.tasks)}), got {self.max_new_tokens}")
        if not self.minutes > 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")


class TimeBudget(BaseCallback):
    """Stop ``learn`` once ``seconds`` of wall-clock time have passed (checked at every env step)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        return time.perf_counter() - self.start < self.seconds


def run_task(args: Args, env_id: str, max_new_tokens: int) -> tuple[list[dict[str, Any]], list[float]]:
    """Evaluate, train for the budget, evaluate again; return table rows and the training curve."""
    env_kwargs = {"tokenizer": args.model, "reward": args.reward, "max_new_tokens": max_new_tokens}
    policy_kwargs = {"lora": {"r": args.lora, "lora_alpha": 2 * args.lora}} if args.lora else {}
    trainer = GRPO(args.model, env_id, env_kwargs=env_kwargs, policy_kwargs=policy_kwargs, n_envs=args.n_envs,
                   group_size=args.group_size, batch_size=min(args.batch_size, args.n_envs), learning_rate=args.learning_rate,
                   seed=args.seed, verbose=1)

    def held_out(label: str) -> list[dict[str, Any]]:
        rows = []
        for mode in ("greedy", "sampling"):
            result = evaluate(trainer, env_id, env_kwargs, "test", args.eval_episodes, deterministic=mode == "greedy", seed=args.seed)
            rows.append({"task": env_id, "agent": f"{label} {mode}", args.reward: result["reward"], "episodes": result["episodes"],
                         "example": f"{result['samples'][0][0]!r} -> {result['samples'][0][1]!r}"})
            print(rows[-1], flush=True)
        return rows

    before = held_out("untrained")
    start, start_cpu = time.perf_counter(), time.process_time()
    trainer.learn(10**9, callback=TimeBudget(args.minutes * 60), progress_bar=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    after = held_out("trained")
    for row in after:
        row["train minutes"] = seconds / 60
        row["train CPU-minutes"] = cpu_seconds / 60
        row["train tokens"] = trainer.num_timesteps
        base = next(r for r in before if r["agent"].split()[-1] == row["agent"].split()[-1])
        row["margin"] = row[args.reward] - base[args.reward]
    best_untrained = max(r[args.reward] for r in before)
    for row in after:
        row["vs best untrained"] = row[args.reward] - best_untrained
    curve = [r["rollout/batch_rew_mean"] for r in trainer.history]
    return before + after, curve


def plot(args: Args, curves: dict[str, list[float]], rows: list[dict[str, Any]]) -> None:
    """One panel per task: training reward per iteration, held-out scores as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (task, curve) in zip(axes[0], curves.items(), strict=True):
        x = np.arange(1, len(curve) + 1)
        ax.plot(x, curve, color="tab:blue", alpha=0.35, label="training batch (sampling)")
        if len(curve) >= 5:
            smooth = np.convolve(curve, np.ones(5) / 5, mode="valid")
            ax.plot(x[4:], smooth, color="tab:blue", label="training, 5-iteration mean")
        styles = {"untrained greedy": ("gray", ":"), "untrained sampling": ("gray", "--"),
                  "trained greedy": ("tab:green", ":"), "trained sampling": ("tab:green", "--")}
        for row in rows:
            if row["task"] == task:
                color, style = styles[row["agent"]]
                ax.axhline(row[args.reward], color=color, linestyle=style, label=f"held-out {row['agent']}")
        ax.set_title(f"{task} ({args.model}, GRPO)")
        ax.set_xlabel("iteration")
        ax.set_ylabel(args.reward)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(f"{args.out}/{args.name}.png", dpi=120)


def main(args: Args) -> list[dict[str, Any]]:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, curves = [], {}
    for env_id, max_new_tokens in zip(args.tasks, args.max_new_tokens, strict=True):
        task_rows, curves[env_id] = run_task(args, env_id, max_new_tokens)
        rows += task_rows
    columns = ["task", "agent", args.reward, "margin", "vs best untrained", "train minutes", "train CPU-minutes", "train tokens",
               "episodes", "example"]
    table = markdown_table(rows, columns)
    header = (f"GRPO on {args.model}, {args.n_envs} episodes per iteration ({args.group_size} per prompt), "
              f"lr {args.learning_rate}, {'LoRA r=' + str(args.lora) if args.lora else 'all weights'}, "
              f"{args.minutes:g} min per task; held-out = the `test` split, {args.eval_episodes} prompts\n\n")
    path = write_report(args.out, args.name, args, rows, header + table)
    plot(args, curves, rows)
    print(f"\n{header}{table}\n\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main(parse_args(Args))
