"""Train an LM agent on any TextGen task, then compare it with the trivial answers on held-out prompts.

    python -m agents.train --task my_data.jsonl --algo grpo --steps 20000       # your own file
    python -m agents.train --task train=a.jsonl,test=b.jsonl --reward bleu=1,source-bleu=-0.5
    python -m agents.train --env TextGen-Translate-v0 --warm-start-tokens 20000 --steps 20000
    python -m agents.train --quick            # the README demo: SmolLM2-135M, a few CPU minutes
    accelerate launch --multi_gpu --num_processes 2 -m agents.train --algo grpo ...   # 2 GPUs (or 2 CPU processes)

Before training it evaluates, on the held-out split (``--eval-split``, ``test`` by default), the
untrained model (greedy and sampling), ``copy-prompt`` (replying with the input: the sample's
source, else its prompt) and ``reference`` (the ceiling), all at the env's reply budget. It then
optionally warm-starts by teacher forcing on the train split's references
(``--warm-start-tokens``), trains with RL (progress bar, checkpoints, SB3 logs under ``--out``),
and evaluates again. The table, also in ``--out/results.json``, gives every row's margin over the
best of the untrained model and ``copy-prompt``: a trained model that does not beat both has
learned nothing that copying or doing nothing would not give. All rows come from one evaluator
(:mod:`agents.evaluation`). Under ``accelerate launch`` each process rolls out its own envs and
gradients are averaged; evaluation and saving happen on the main process.

Ctrl-C (or SIGTERM) saves ``--out/interrupted.zip`` and prints the command that resumes the run.
A resumed run is the saved run (:mod:`agents.train_args` says what the checkpoint determines):
its ``progress.csv`` grows, and its table reuses the untrained rows that the first run stored in
``results.json`` (``before_rl``) when they were measured as this run evaluates; else it says
they are missing and measures the margin over ``copy-prompt`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import text_gym  # noqa: F401  (registers the environments)
from agents.atomic import atomic_write_text
from agents.evaluation import Evaluation, add_margins, lm_evaluations, trivial_evaluations
from agents.run_folder import claimed_folder
from agents.train_args import ALGOS, parse_args, parse_reward, parse_task, resume_command
from agents.train_checks import splits_line, start_line
from agents.trainers.base import TrainerBase
from agents.trainers.checkpoint import read_settings
from agents.trainers.interrupts import TrainingInterrupted
from agents.trainers.loggers import make_logger
from agents.trainers.periodic import PeriodicCheckpoints
from agents.trainers.selection import ValidationSelection
from text_gym.errors import run_command

__all__ = ["main", "parse_args", "parse_reward", "parse_task"]

BEFORE_RL = ("untrained greedy", "untrained sampling", "supervised greedy")
"""The rows measured before RL, which a resumed run cannot measure again: kept in ``results.json``."""


def build_trainer(args: argparse.Namespace, accelerator: Any = None) -> TrainerBase:
    """The trainer the command line describes, or the one ``--resume`` saved (its settings rule)."""
    if args.resume:
        overrides = {"micro_batch_size": args.micro_batch_size} if "micro_batch_size" in args.given else {}
        return ALGOS[args.algo].load(args.resume, device=args.device, accelerator=accelerator, **overrides)
    policy_kwargs: dict[str, Any] = {"model": args.model}
    if args.lora:
        policy_kwargs["lora"] = {"r": args.lora, "lora_alpha": 2 * args.lora}
    kwargs: dict[str, Any] = {
        "learning_rate": args.learning_rate,
        "n_envs": args.n_envs,
        "temperature": args.temperature,
    }
    for name in ("n_epochs", "batch_size", "micro_batch_size"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.algo == "grpo":
        kwargs["group_size"] = args.group_size
        kwargs["baseline"] = args.baseline
        if args.kl is not None:
            kwargs["beta"] = args.kl
    elif args.kl is not None:
        kwargs["kl_coef"] = args.kl
    return ALGOS[args.algo](
        args.model,
        args.env,
        policy_kwargs=policy_kwargs,
        env_kwargs=env_kwargs_of(args),
        seed=args.seed,
        device=args.device,
        accelerator=accelerator,
        **kwargs,
    )


def env_kwargs_of(args: argparse.Namespace) -> dict[str, Any]:
    """The env keyword arguments the command line sets; the others keep the env's defaults."""
    kwargs: dict[str, Any] = {"tokenizer": args.model, "reward": args.reward}
    for name in ("task", "max_new_tokens", "max_prompt_tokens", "prompt_truncation"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: one row per agent; BLEU, chrF, reward, length, and the margin over the best trivial row."""
    names = ["bleu", "margin", "chrf", "reward", "length"]
    lines = ["| agent | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in rows:
        cells = [
            f"{row[n]:+.3f}" if n == "margin" else f"{row[n]:.3f}" if n != "length" else f"{row[n]:.1f}" for n in names
        ]
        lines.append(f"| {row['agent']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line: evaluate, (warm-start,) train, save, evaluate again; return the results."""
    args = parse_args(argv)  # on --resume, the run's settings come from the checkpoint
    if int(os.environ.get("RANK", "0")) == 0:  # say something at once: loading and evaluating take minutes
        print(start_line(args), flush=True)
    with claimed_folder(Path(args.out), resume=bool(args.resume), overwrite=args.overwrite):
        return _train(args)


def _train(args: argparse.Namespace) -> dict[str, Any]:
    """The run itself, in a claimed ``--out``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    trainer = build_trainer(args, _accelerator(args))  # builds the env: bad task, reward or budget fail here
    if args.resume and "optimizer" not in read_settings(args.resume)[0]:
        print(f"Note: {args.resume} holds weights and settings only: training goes on from its weights with a fresh "
              "optimizer, not exactly where it stopped (interrupted.zip and checkpoints/ resume exactly).", flush=True)  # fmt: skip
    # A resumed run plays the env it was saved with, even one a Python script gave other kwargs.
    env_id = (trainer.env_id or args.env) if args.resume else args.env
    env_kwargs = dict(trainer.env_kwargs) if args.resume else env_kwargs_of(args)
    if trainer._is_main:
        print(splits_line(args, trainer.get_env(), env_id, env_kwargs), flush=True)
    run = _Run(args, out, _Evaluator(args, env_id, env_kwargs, bool(args.eval_episodes) and trainer._is_main))
    run.start_tokens = trainer.num_timesteps
    if trainer._is_main:
        formats, resume_at = ["stdout", "csv", "tensorboard"], trainer.num_timesteps if args.resume else None
        trainer.set_logger(make_logger(out, formats, resume_at=resume_at))  # a resumed run extends progress.csv
    run.before_rl(trainer)
    selection = _selection(args, env_id, env_kwargs, out) if trainer._is_main else None
    start = time.perf_counter()
    if trainer.warm_start_progress is not None or args.warm_start_tokens > 0 and not args.resume:
        _warm_start(trainer, args, out, selection)  # or, on --resume from a checkpoint saved during one, its rest
        run.after_warm_start(trainer)
    _learn(trainer, args, out, selection)
    seconds = time.perf_counter() - start
    # Weights and settings only (a third of a checkpoint); a full disk must not lose them.
    saved = trainer.save_or_rescue(out / "model.zip", resumable=False)
    if selection is not None:
        selection.restore_best(trainer)  # the table measures the model selected on validation
        run.selection = selection
    label = "supervised+RL" if trainer.supervised_history else "trained"
    run.evaluations += run.evaluator.policy(trainer, label)
    results = run.results(trainer, seconds, finished=True)
    if trainer._is_main:
        atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str))
        _print_summary(args, results, run)
        print(
            f"\nSaved {saved}: reload it with {type(trainer).__name__}.load({str(saved)!r}), or train on from it "
            "(with a fresh optimizer: it holds weights and settings only) with\n"
            f"  {resume_command(args, saved, args.steps)}\n"
            f"Results in {out / 'results.json'}; training logs in {out / 'progress.csv'} and TensorBoard ({out}).",
            flush=True,
        )
        if selection is not None:
            print(f"The model selected on {selection.split} (the table's trained rows): {selection.best_model_path}")
    return results


def _selection(
    args: argparse.Namespace, env_id: str, env_kwargs: dict[str, Any], out: Path
) -> ValidationSelection | None:
    """The ``--eval-every`` checkpoint selection on ``--selection-split`` (None when off), saving ``best_model.zip``."""
    if not args.eval_every:
        return None
    return ValidationSelection(
        env_id,
        env_kwargs,
        split=args.selection_split,
        eval_every=args.eval_every,
        max_prompts=args.eval_episodes if args.eval_episodes > 0 else None,
        best_model_save_path=out,
        batch_size=args.n_envs,
        verbose=1,
    )


def _accelerator(args: argparse.Namespace) -> Any:
    """An ``accelerate.Accelerator`` when started by ``accelerate launch`` with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import Accelerator

    return Accelerator(cpu=args.device == "cpu")


@dataclass
class _Evaluator:
    """The held-out evaluations of a run, all from one evaluator (none when disabled)."""

    args: argparse.Namespace
    env_id: str
    env_kwargs: dict[str, Any]
    enabled: bool

    def policy(self, trainer: TrainerBase, prefix: str, sampling: bool = True) -> list[Evaluation]:
        """The trainer's policy, labelled ``"<prefix> greedy"`` (and ``"<prefix> sampling"``)."""
        if not self.enabled:
            return []
        temperature = self.args.temperature
        return lm_evaluations(
            trainer.policy,
            prefix,
            self.env_id,
            self.env_kwargs,
            sampling=sampling,
            temperature=temperature,
            **self._common(),
        )

    def trivial(self) -> list[Evaluation]:
        """``copy-prompt`` and ``reference``: the floor to beat and the ceiling."""
        return trivial_evaluations(self.env_id, self.env_kwargs, **self._common()) if self.enabled else []

    def settings(self) -> dict[str, Any]:
        """What two runs' rows must share to be compared: env, env kwargs, split, prompts, seed, temperature."""
        args = self.args
        settings = {"env": self.env_id, "env_kwargs": self.env_kwargs, "split": args.eval_split}
        settings |= {"episodes": args.eval_episodes, "seed": args.seed, "temperature": args.temperature}
        return json.loads(json.dumps(settings, default=str))  # as results.json stores them

    def _common(self) -> dict[str, Any]:
        args, n = self.args, (None if self.args.eval_episodes < 0 else self.args.eval_episodes)
        return {"split": args.eval_split, "n_episodes": n, "seeds": [args.seed], "batch_size": args.n_envs}


@dataclass
class _Run:
    """One segment of a run: its evaluations, the rows measured before RL, and ``results.json``.

    The rows measured before RL (:data:`BEFORE_RL`) are stored in ``results.json`` as soon as
    they exist, under ``before_rl`` with the evaluation settings; a resumed run shows them again
    when it evaluates with the same settings (``reused``), and carries them on either way.
    """

    args: argparse.Namespace
    out: Path
    evaluator: _Evaluator
    evaluations: list[Evaluation] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)  # {"evaluation": settings, "rows": [...], "samples": {...}}
    reused: bool = False
    missing: str = ""  # why a resumed run has no untrained rows
    start_tokens: int = 0
    # With --eval-every: the selection whose best model the final rows measure.
    selection: ValidationSelection | None = None

    def before_rl(self, trainer: TrainerBase) -> None:
        """Measure (or, on ``--resume``, find) the untrained rows, and the trivial ones."""
        if not self.args.resume:
            self.evaluations = self.evaluator.policy(trainer, "untrained") + self.evaluator.trivial()
            self._store_before_rl(trainer)
            return
        self.evaluations = self.evaluator.trivial()
        # The first run's folder: --out, else the checkpoint's (interrupted.zip) or its parent's (checkpoints/).
        folders = [self.out, Path(self.args.resume).parent, Path(self.args.resume).parent.parent]
        self.before = next(filter(None, map(_previous_before_rl, folders)), {})
        stored = self.before.get("evaluation")
        self.reused = stored == self.evaluator.settings() and bool(self.before.get("rows"))
        if not self.evaluator.enabled or self.reused:
            return
        if not self.before:
            self.missing = f"no results.json from before RL in {self.out} or beside {self.args.resume}"
        else:
            differ = [k for k, v in self.evaluator.settings().items() if (stored or {}).get(k) != v]
            self.missing = f"the first run measured them with other evaluation settings ({', '.join(differ)})"

    def after_warm_start(self, trainer: TrainerBase) -> None:
        """Measure the warm-started model (greedy) and store it with the rows before RL."""
        self.evaluations += self.evaluator.policy(trainer, "supervised", sampling=False)
        self._store_before_rl(trainer)

    def _store_before_rl(self, trainer: TrainerBase) -> None:
        ours = [e for e in self.evaluations if e.label in BEFORE_RL]
        rows, samples = [e.row() for e in ours], {e.label: e.samples() for e in ours}
        self.before = {"evaluation": self.evaluator.settings(), "rows": rows, "samples": samples}
        if trainer._is_main:  # so that a resumed run has them, even if this one is interrupted
            results = self.results(trainer, 0.0, finished=False)
            atomic_write_text(self.out / "results.json", json.dumps(results, indent=2, default=str))

    def results(self, trainer: TrainerBase, seconds: float, *, finished: bool) -> dict[str, Any]:
        """What ``results.json`` holds: the arguments, the table's rows with margins, samples and the logs."""
        reused = self.before.get("rows", []) if self.reused else []
        rows = sorted(reused + [e.row() for e in self.evaluations], key=_row_order)
        if rows:
            add_margins(rows)
        env_id, env_kwargs = self.evaluator.env_id, self.evaluator.env_kwargs
        samples = dict(self.before.get("samples", {})) if self.reused else {}
        return {
            "args": vars(self.args),
            "env": env_id,
            "task": env_kwargs.get("task", gym.spec(env_id).kwargs.get("task")),
            "split": self.args.eval_split,
            "finished": finished,  # False: written before training, for the rows before RL
            "resumed_from": self.args.resume,
            "train_seconds": seconds,  # this segment's (warm start included)
            "train_tokens": trainer.num_timesteps - self.start_tokens,  # RL tokens of this segment
            "total_train_tokens": trainer.num_timesteps,  # since the run began
            "rows": rows,
            "samples": samples | {e.label: e.samples() for e in self.evaluations},
            "before_rl": self.before,
            "history": trainer.history,
            "supervised_history": trainer.supervised_history,
            **({"selection": self.selection.summary()} if self.selection is not None else {}),
        }


def _previous_before_rl(folder: Path) -> dict[str, Any]:
    """The ``before_rl`` record of an earlier segment's ``results.json`` in ``folder``, or ``{}``."""
    try:
        return json.loads((folder / "results.json").read_text()).get("before_rl") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def _row_order(row: dict[str, Any]) -> int:
    """Untrained, then trivial, then warm-started, then trained rows (a stable sort keeps each group's order)."""
    label = row["agent"]
    groups = [label.startswith("untrained"), label in ("copy-prompt", "reference"), label == "supervised greedy"]
    return groups.index(True) if any(groups) else len(groups)


def _periodic(args: argparse.Namespace, out: Path, is_main: bool) -> PeriodicCheckpoints | None:
    if args.checkpoint_minutes > 0 and is_main:
        return PeriodicCheckpoints(
            out / "checkpoints", args.checkpoint_minutes, args.keep_checkpoints, prefix=args.algo
        )
    return None


def _warm_start(
    trainer: TrainerBase, args: argparse.Namespace, out: Path, selection: ValidationSelection | None
) -> None:
    """The warm start with RL's protection: periodic checkpoints; a signal saves, prints how to resume and exits."""
    budget = {"total_tokens": args.warm_start_tokens, "learning_rate": args.warm_start_lr}
    try:
        trainer.warm_start(
            **(budget if trainer.warm_start_progress is None else {}),  # a resumed one keeps its own
            progress_bar=not args.no_progress,
            checkpoint_on_interrupt=out / "interrupted.zip",
            checkpoints=_periodic(args, out, trainer._is_main),
            selection=selection,
        )
    except TrainingInterrupted as stop:
        if stop.checkpoint is not None:
            print(f"\n{stop}\nResume with:\n  {resume_command(args, stop.checkpoint, args.steps)}", flush=True)
        raise SystemExit(stop.exit_code) from None


def _learn(
    trainer: TrainerBase, args: argparse.Namespace, out: Path, selection: ValidationSelection | None = None
) -> None:
    """RL for ``--steps`` tokens with periodic checkpoints; a signal saves, prints how to resume and exits."""
    is_main, start_steps = trainer._is_main, trainer.num_timesteps
    checkpoints = _periodic(args, out, is_main)
    try:
        trainer.learn(
            args.steps,
            progress_bar=not args.no_progress,
            reset_num_timesteps=not args.resume,
            checkpoint_on_interrupt=out / "interrupted.zip" if is_main else None,
            checkpoints=checkpoints,
            callback=selection.callback() if selection is not None else None,
        )
    except TrainingInterrupted as stop:
        if is_main and stop.checkpoint is not None:
            remaining = max(args.steps - (trainer.num_timesteps - start_steps), 1)
            print(f"\n{stop}\nResume with:\n  {resume_command(args, stop.checkpoint, remaining)}", flush=True)
        raise SystemExit(stop.exit_code) from None
    finally:
        _end_distributed(trainer.accelerator)


def _print_summary(args: argparse.Namespace, results: dict[str, Any], run: _Run) -> None:
    """The results table and the first replies of the last greedy evaluation."""
    rows = results["rows"]
    if not rows:
        return
    tokens = f"{results['train_tokens']} tokens in {results['train_seconds']:.1f} s"
    if args.resume:
        tokens += f" (resumed at {run.start_tokens}: {results['total_train_tokens']} tokens since the start)"
    if any(row["agent"].startswith("untrained") for row in rows):
        margin = "margin = BLEU minus the best of untrained and copy-prompt"
        margin += " (untrained rows: measured before the first segment)" if run.reused else ""
    else:
        margin = f"margin = BLEU minus copy-prompt (no untrained rows: {run.missing})"
    print(
        f"\n{args.algo} on {results['env']}, task {_describe(results['task'])} ({args.model}), {tokens}; "
        f"held-out split {args.eval_split!r}, {rows[0]['episodes']} prompts; {margin}{_selected(results)}:\n"
    )
    print(results_table(rows))
    shown = next(e for e in reversed(run.evaluations) if e.label.endswith("greedy"))
    print(f"\n{shown.label}, first prompts:")
    for prompt, text, reward in shown.samples():
        print(f"  {prompt!r} -> {text!r} (reward {reward:.3f})")


def _selected(results: dict[str, Any]) -> str:
    """The table heading's note on the checkpoint the trained rows measure, when one was selected."""
    chosen = results.get("selection")
    if chosen is None:
        return ""
    return (
        f"; trained rows: the {chosen['phase']} step {chosen['step']} model, best {chosen['split']} "
        f"{chosen['metric']} {chosen['score']:.3f} of {len(chosen['history'])} evaluations"
    )


def _end_distributed(accelerator: Any) -> None:
    """End an ``accelerate`` run and its process group, so no rank aborts at interpreter exit."""
    if accelerator is None:
        return
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _describe(task: Any) -> str:
    if isinstance(task, Mapping):
        return ", ".join(f"{split}={path}" for split, path in task.items())
    return repr(task)


if __name__ == "__main__":
    run_command(main, "python -m agents.train")  # a user error: one line and exit 2 (text_gym.errors)
