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
A resumed run is the saved run (:mod:`agents.resume` says what the checkpoint determines):
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
from pathlib import Path
from typing import Any

import torch

import text_gym  # noqa: F401  (registers the environments)
from agents.atomic import atomic_write_text
from agents.run_folder import claimed_folder
from agents.train_args import ALGOS, parse_args, parse_reward, parse_task, resume_command
from agents.train_checks import splits_line, start_line
from agents.train_results import Evaluator, Run
from agents.trainers.base import TrainerBase
from agents.trainers.checkpoint import read_settings
from agents.trainers.interrupts import TrainingInterrupted
from agents.trainers.loggers import make_logger
from agents.trainers.periodic import PeriodicCheckpoints
from agents.trainers.selection import ValidationSelection
from text_gym.errors import run_command

__all__ = ["main", "parse_args", "parse_reward", "parse_task"]

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
        kwargs["sft_coef"] = args.sft_coef
        kwargs["risk_alpha"] = args.risk_alpha
        kwargs["candidates"] = args.candidates
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
    resume = Path(args.resume) if args.resume else None
    with claimed_folder(Path(args.out), resume=resume, overwrite=args.overwrite):
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
    run = Run(args, out, Evaluator(args, env_id, env_kwargs, bool(args.eval_episodes) and trainer._is_main))
    run.start_tokens = trainer.num_timesteps
    if trainer._is_main:
        formats, resume_at = ["stdout", "csv", "tensorboard"], trainer.num_timesteps if args.resume else None
        trainer.set_logger(make_logger(out, formats, resume_at=resume_at))  # a resumed run extends progress.csv
    # Before the evaluations of the untrained model: a bad selection.json fails at once.
    selection = _selection(args, env_id, env_kwargs, out) if trainer._is_main else None
    if args.resume and selection is not None and selection.resume(trainer):
        print(f"Selection goes on from {out / 'selection.json'}: best {selection.split} {selection.metric} "
              f"{selection.best_score:.4f} at {selection.best_phase} step {selection.best_step}, "
              f"kept in {selection.best_model_path} until a later model beats it.", flush=True)  # fmt: skip
    run.before_rl(trainer)
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


def _print_summary(args: argparse.Namespace, results: dict[str, Any], run: Run) -> None:
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
