"""Does training beat the trivial answers? Held-out BLEU of supervised, RL and supervised+RL training, per task.

    python -m benchmarks.learning                                   # SmolLM2-135M: qa, translation, copy
    python -m benchmarks.learning --tasks TextGen-Translate-v0 --minutes 20 --name learning_translate
    python -m benchmarks.learning --tasks TextGen-v0 --task my_data.jsonl --name learning_mine   # your file
    python -m benchmarks.learning --quick                           # tiny model, seconds: checks the script

For each task, on its held-out ``test`` split, every row comes from one evaluator
(:mod:`agents.evaluation`) at the env's reply budget:

- ``untrained greedy``: the model before training;
- ``copy-prompt``: replying with the input (the sample's source, else its prompt);
- ``reference``: the ceiling;
- ``RL-only greedy``: GRPO from the untrained model for ``--minutes`` CPU-minutes;
- ``supervised greedy``: teacher forcing on the train split's references for ``--sft-minutes``;
- ``supervised+RL greedy``: that model, then GRPO for the rest of ``--minutes``.

So both training arms get the same ``--minutes`` of process CPU time (one torch thread makes
CPU time equal wall time), and each task costs ``2 x --minutes`` of training. Every row carries
its margin over the best of ``untrained greedy`` and ``copy-prompt``: the goal is a positive one.
Writes ``<name>.json``/``.md`` (the table) and ``<name>.png`` (training reward per iteration for
both arms, with the held-out scores as lines), and the trained models under ``--save``.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

import text_gym  # noqa: F401  (registers the environments)
from agents.evaluation import add_margins, lm_evaluations, trivial_evaluations
from agents.trainers.grpo import GRPO
from benchmarks.common import (
    check_positive_int_or_zero,
    check_positive_ints,
    markdown_table,
    parse_args,
    set_threads,
    write_report,
)

COLUMNS = [
    "env",
    "task",
    "split",
    "agent",
    "bleu",
    "margin",
    "chrf",
    "reward",
    "length",
    "train CPU-minutes",
    "train tokens",
    "episodes",
    "example",
]


@dataclass
class Args:
    """Arguments of the learning benchmark."""

    model: str = field(default="smollm2-135m", metadata={"help": "model preset (also the env's tokenizer)"})
    tasks: list = field(
        default_factory=lambda: ["TextGen-v0", "TextGen-Translate-v0", "TextGen-Copy-v0"], metadata={"help": "env ids"}
    )
    task: str = field(default="", metadata={"help": "a task name or .jsonl file for every env id ('' : the env's own)"})
    reward: str = field(
        default="bleu", metadata={"help": "training reward: a name, or name=weight,... (bleu=1,source-bleu=-0.5)"}
    )
    max_new_tokens: int = field(default=0, metadata={"help": "reply budget (0: the env's default)"})
    minutes: float = field(default=20.0, metadata={"help": "CPU-minutes of training per arm (RL-only; supervised+RL)"})
    sft_minutes: float = field(
        default=5.0, metadata={"help": "CPU-minutes of the supervised warm start, part of --minutes"}
    )
    sft_learning_rate: float = field(default=5e-5, metadata={"help": "AdamW step size of the warm start"})
    n_envs: int = field(default=16, metadata={"help": "episodes per iteration"})
    group_size: int = field(default=4, metadata={"help": "GRPO replies per prompt"})
    batch_size: int = field(default=8, metadata={"help": "episodes per optimizer step"})
    learning_rate: float = field(default=2e-5, metadata={"help": "GRPO AdamW step size"})
    beta: float = field(default=0.0, metadata={"help": "GRPO KL coefficient to the reference (0: none)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of GRPO's rollouts"})
    lora: int = field(default=0, metadata={"help": "LoRA rank (0: train all weights)"})
    eval_episodes: int = field(
        default=0, metadata={"help": "held-out prompts per evaluation (0: the whole test split)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the trainers"})
    threads: int = field(default=1, metadata={"help": "torch threads (1: CPU time equals wall time)"})
    name: str = field(default="learning", metadata={"help": "output file stem: <name>.json/.md/.png"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for the outputs"})
    save: str = field(default="runs/learning", metadata={"help": "folder for the trained models ('' : do not save)"})
    quick: bool = field(default=False, metadata={"help": "tiny model, copy task with chrF, seconds"})

    def __post_init__(self) -> None:
        if self.quick:
            self.model, self.tasks, self.max_new_tokens, self.reward = "tiny", ["TextGen-Copy-v0"], 8, "chrf"
            self.minutes, self.sft_minutes, self.learning_rate, self.sft_learning_rate = 0.2, 0.05, 1e-2, 1e-2
            self.eval_episodes, self.n_envs, self.group_size, self.save = 16, 16, 4, ""
        if not self.minutes > 0 or not 0 < self.sft_minutes < self.minutes:
            raise ValueError(
                f"expected minutes > 0 and 0 < sft_minutes < minutes, got {self.minutes} and {self.sft_minutes}."
            )
        if not self.tasks:
            raise ValueError("tasks: expected at least one env id, got none.")
        check_positive_ints(self, "n_envs", "group_size", "batch_size")
        check_positive_int_or_zero("max_new_tokens", self.max_new_tokens, "the env's default")
        check_positive_int_or_zero("eval_episodes", self.eval_episodes, "the whole test split")
        check_positive_int_or_zero("lora", self.lora, "training all weights")


class CPUBudget(BaseCallback):
    """Stop ``learn`` once ``seconds`` of process CPU time have passed (checked at every env step)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def _on_training_start(self) -> None:
        self.start = time.process_time()

    def _on_step(self) -> bool:
        return time.process_time() - self.start < self.seconds


def env_kwargs_of(args: Args) -> dict[str, Any]:
    """The env keyword arguments of every evaluation and trainer; unset ones keep the env's defaults."""
    from agents.train_args import parse_reward

    kwargs: dict[str, Any] = {"tokenizer": args.model, "reward": parse_reward(args.reward)}
    if args.task:
        kwargs["task"] = args.task
    if args.max_new_tokens:
        kwargs["max_new_tokens"] = args.max_new_tokens
    return kwargs


def make_trainer(args: Args, env_id: str) -> GRPO:
    policy_kwargs = {"lora": {"r": args.lora, "lora_alpha": 2 * args.lora}} if args.lora else {}
    return GRPO(
        args.model,
        env_id,
        env_kwargs=env_kwargs_of(args),
        policy_kwargs=policy_kwargs,
        n_envs=args.n_envs,
        group_size=args.group_size,
        batch_size=min(args.batch_size, args.n_envs),
        learning_rate=args.learning_rate,
        beta=args.beta,
        temperature=args.temperature,
        seed=args.seed,
        verbose=0,
    )


def run_task(args: Args, env_id: str) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Baselines, then both training arms; return table rows and the training curves."""
    common = {"split": "test", "n_episodes": args.eval_episodes or None, "batch_size": args.n_envs}
    kwargs = env_kwargs_of(args)
    rows, curves = [], {}

    def record(evaluation: Any, seconds: float = 0.0, tokens: int = 0) -> None:
        row = evaluation.row()
        prompt, text, _ = evaluation.samples(1)[0]
        rows.append(
            {
                "env": env_id,
                **row,
                "train CPU-minutes": seconds / 60,
                "train tokens": tokens,
                "example": f"{prompt!r} -> {text!r}",
            }
        )

    trainer = make_trainer(args, env_id)
    record(lm_evaluations(trainer.policy, "untrained", env_id, kwargs, sampling=False, **common)[0])
    for evaluation in trivial_evaluations(env_id, kwargs, **common):
        record(evaluation)

    start = time.process_time()
    trainer.learn(10**9, callback=CPUBudget(args.minutes * 60))
    record(
        lm_evaluations(trainer.policy, "RL-only", env_id, kwargs, sampling=False, **common)[0],
        time.process_time() - start,
        trainer.num_timesteps,
    )
    curves["RL-only"] = [r["rollout/batch_rew_mean"] for r in trainer.history]
    _save(args, trainer, env_id, "rl")
    del trainer
    gc.collect()

    trainer = make_trainer(args, env_id)
    trainer.warm_start(
        max_seconds=args.sft_minutes * 60, learning_rate=args.sft_learning_rate, batch_size=args.batch_size
    )
    sft_seconds = trainer.supervised_history[-1]["supervised/cpu_seconds"]
    record(
        lm_evaluations(trainer.policy, "supervised", env_id, kwargs, sampling=False, **common)[0],
        sft_seconds,
        int(trainer.supervised_history[-1]["supervised/tokens"]),
    )
    _save(args, trainer, env_id, "sft")
    start = time.process_time()  # the evaluation above is not training: the RL budget is what the warm start left
    trainer.learn(10**9, callback=CPUBudget(args.minutes * 60 - sft_seconds))
    record(
        lm_evaluations(trainer.policy, "supervised+RL", env_id, kwargs, sampling=False, **common)[0],
        sft_seconds + time.process_time() - start,
        trainer.num_timesteps,
    )
    curves["supervised+RL"] = [r["rollout/batch_rew_mean"] for r in trainer.history]
    _save(args, trainer, env_id, "sft_rl")
    add_margins(rows)
    return rows, curves


def _save(args: Args, trainer: GRPO, env_id: str, arm: str) -> None:
    if args.save:
        trainer.save(Path(args.save) / args.name / f"{env_id}_{arm}.zip")


def plot(args: Args, curves: dict[str, dict[str, list[float]]], rows: list[dict[str, Any]]) -> None:
    """One panel per task: training reward per iteration of both arms; held-out BLEU of every row as lines."""
    from benchmarks.plots import pyplot, save_figure

    fig, axes = pyplot().subplots(1, len(curves), figsize=(5.5 * len(curves), 3.8), squeeze=False)
    colors = {"RL-only": "tab:blue", "supervised+RL": "tab:green"}
    for ax, (task, arms) in zip(axes[0], curves.items(), strict=True):
        for arm, curve in arms.items():
            x = np.arange(1, len(curve) + 1)
            ax.plot(x, curve, color=colors[arm], alpha=0.3)
            if len(curve) >= 5:
                ax.plot(
                    x[4:],
                    np.convolve(curve, np.ones(5) / 5, mode="valid"),
                    color=colors[arm],
                    label=f"{arm}: training reward (5-iteration mean)",
                )
        styles = {
            "untrained greedy": ("gray", ":"),
            "copy-prompt": ("tab:red", ":"),
            "reference": ("black", "-"),
            "supervised greedy": ("tab:orange", "--"),
            "RL-only greedy": ("tab:blue", "--"),
            "supervised+RL greedy": ("tab:green", "--"),
        }
        for row in rows:
            if row["env"] == task and row["agent"] in styles:
                color, style = styles[row["agent"]]
                ax.axhline(row["bleu"], color=color, linestyle=style, label=f"held-out BLEU: {row['agent']}")
        ax.set_title(f"{task} ({args.model}, GRPO)")
        ax.set_xlabel("RL iteration")
        ax.set_ylabel(f"training reward / held-out BLEU ({args.reward})")
    axes[0][-1].legend(fontsize=6, loc="best")
    save_figure(fig, f"{args.out}/{args.name}.png", dpi=120)


def main(args: Args) -> list[dict[str, Any]]:
    torch.manual_seed(args.seed)
    set_threads(args.threads)
    rows, curves = [], {}
    for env_id in args.tasks:
        task_rows, curves[env_id] = run_task(args, env_id)
        rows += task_rows
        print(markdown_table(task_rows, COLUMNS), flush=True)
    table = markdown_table(rows, COLUMNS)
    header = (
        f"GRPO on {args.model}: {args.n_envs} episodes per iteration ({args.group_size} per prompt), lr "
        f"{args.learning_rate}, beta {args.beta}, {'LoRA r=' + str(args.lora) if args.lora else 'all weights'}, reward "
        f"`{args.reward}`; {args.minutes:g} CPU-minutes per arm (supervised+RL: {args.sft_minutes:g} of teacher forcing, "
        f"lr {args.sft_learning_rate}); held-out = the `test` split"
        f"{f', first {args.eval_episodes} prompts' if args.eval_episodes else ', every prompt'}, greedy; "
        "margin = BLEU minus the best of untrained greedy and copy-prompt\n\n"
    )
    path = write_report(args.out, args.name, args, rows, header + table)
    plot(args, curves, rows)
    print(f"\n{header}{table}\n\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main(parse_args(Args))
