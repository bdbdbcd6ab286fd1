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
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import text_gym  # noqa: F401  (registers the environments)
from agents.atomic import atomic_write_text
from agents.evaluation import Evaluation, add_margins, lm_evaluations, trivial_evaluations
from agents.trainers.base import TrainerBase
from agents.trainers.checkpoint import PeriodicCheckpoints
from agents.trainers.grpo import GRPO
from agents.trainers.interrupts import TrainingInterrupted
from agents.trainers.sequence_ppo import SequencePPO
from text_gym.errors import check_positive_int

__all__ = ["main", "parse_args", "parse_reward", "parse_task"]

ALGOS: dict[str, type[TrainerBase]] = {"grpo": GRPO, "ppo": SequencePPO}

# The demo preset: SmolLM2 learns to follow "Repeat exactly: apple river stone" with GRPO. The
# untrained model mostly chats instead of copying; some of its samples do copy, which gives each
# group of four a signal. copy-prompt shows what copying the source would score (1.0: the task
# is copying), so the table says how far from free the model got in a few CPU minutes.
QUICK = {
    "env": "TextGen-Copy-v0",
    "model": "smollm2-135m",
    "algo": "grpo",
    "reward": "bleu",
    "steps": 1500,
    "n_envs": 16,
    "group_size": 4,
    "batch_size": 8,
    "max_new_tokens": 12,
    "learning_rate": 2e-5,
    "eval_episodes": 32,
}


def parse_task(text: str) -> str | dict[str, str]:
    """A ``--task`` value: a task name or ``.jsonl`` path, or ``split=path,...`` for one file per split.

    >>> parse_task("qa")
    'qa'
    >>> parse_task("train=a.jsonl,test=b.jsonl")
    {'train': 'a.jsonl', 'test': 'b.jsonl'}
    """
    if "=" not in text:
        return text
    pairs = [part.partition("=") for part in text.split(",")]
    if any(not key or not value for key, _, value in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME, PATH or split=PATH,split=PATH..., got {text!r}")
    return {key: value for key, _, value in pairs}


def parse_reward(text: str) -> str | dict[str, float]:
    """A ``--reward`` value: a reward name, or ``name=weight,...`` for a weighted sum.

    >>> parse_reward("bleu=1,source-bleu=-0.5")
    {'bleu': 1.0, 'source-bleu': -0.5}
    """
    if "=" not in text:
        return text
    weights = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            weights[name] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected name=weight pairs such as bleu=1,source-bleu=-0.5, got {part!r}"
            ) from None
    return weights


def _positive_int(text: str) -> int:
    """An argparse ``type``: a positive int, checked as the Python API checks one."""
    try:
        return check_positive_int("value", int(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as a namespace; ``--quick`` fills in what the command line did not set."""
    parser = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.splitlines()[0])
    _add_task_arguments(parser.add_argument_group("task and env"))
    _add_training_arguments(parser.add_argument_group("training"))
    _add_run_arguments(parser.add_argument_group("evaluation, checkpoints and output"))
    args = parser.parse_args(argv)
    if args.quick:  # the preset fills what the user did not set on the command line
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv if argv is not None else sys.argv[1:])}
        for key, value in QUICK.items():
            if key not in given:
                setattr(args, key, value)
    return args


def _add_task_arguments(group: Any) -> None:
    group.add_argument("--env", default="TextGen-v0", help="registered env id")
    group.add_argument("--task", type=parse_task, help="task name, .jsonl file, or split=file,... (default: the env's)")
    group.add_argument("--model", default="smollm2-135m", help="model preset or folder (also the env's tokenizer)")
    group.add_argument(
        "--reward",
        type=parse_reward,
        default="bleu",
        help="env reward: bleu, chrf, sari, coherence, source-bleu..., or name=weight,name=weight",
    )
    group.add_argument("--max-new-tokens", type=_positive_int, default=None, help="reply budget (default: the env's)")
    group.add_argument("--max-prompt-tokens", type=_positive_int, default=None, help="prompt room (default: the env's)")
    group.add_argument("--prompt-truncation", choices=["error", "left"], help="default: the env's (error)")


def _add_training_arguments(group: Any) -> None:
    group.add_argument("--algo", choices=sorted(ALGOS), default="grpo")
    group.add_argument("--steps", type=_positive_int, default=20_000, help="generated tokens to train for")
    group.add_argument(
        "--warm-start-tokens",
        type=int,
        default=0,
        help="teacher forcing on this many train-split reference tokens before RL (0: none)",
    )
    group.add_argument("--warm-start-lr", type=float, default=5e-5, help="learning rate of the warm start")
    group.add_argument("--n-envs", type=int, default=16, help="episodes per rollout")
    group.add_argument("--group-size", type=int, default=4, help="GRPO replies per prompt")
    group.add_argument("--learning-rate", type=float, default=1e-5)
    group.add_argument("--n-epochs", type=int, default=None, help="default: the trainer's")
    group.add_argument("--batch-size", type=int, default=None, help="episodes per optimizer step")
    group.add_argument("--micro-batch-size", type=int, help="episodes per forward (gradient accumulation)")
    group.add_argument("--kl", type=float, default=None, help="KL coefficient (GRPO beta / PPO kl_coef)")
    group.add_argument("--temperature", type=float, default=1.0)
    group.add_argument("--lora", type=int, default=0, help="LoRA rank; 0 trains all weights")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto")
    group.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _add_run_arguments(group: Any) -> None:
    group.add_argument("--eval-episodes", type=int, default=64, help="held-out prompts (0: skip; -1: the whole split)")
    group.add_argument("--eval-split", default="test")
    group.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        help="save a resumable checkpoint under --out/checkpoints every this many minutes (0: off)",
    )
    group.add_argument("--keep-checkpoints", type=_positive_int, default=3, help="periodic checkpoints to keep")
    group.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="continue the run saved at PATH (a checkpoint or interrupted.zip) for --steps more tokens",
    )
    group.add_argument("--out", default="runs/train", help="folder for logs, checkpoints, model and results.json")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    group.add_argument("--quick", action="store_true", help=f"the demo preset: {QUICK}")


def build_trainer(args: argparse.Namespace, accelerator: Any = None) -> TrainerBase:
    """The trainer the command line describes, or the one ``--resume`` saved (its settings rule)."""
    if args.resume:
        return ALGOS[args.algo].load(args.resume, device=args.device, accelerator=accelerator)
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
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    trainer = build_trainer(args, _accelerator(args))  # builds the env: bad task, reward or budget fail here
    # A resumed run plays the env it was saved with; its untrained rows are in the first run's results.
    env_id = (trainer.env_id or args.env) if args.resume else args.env
    env_kwargs = dict(trainer.env_kwargs) if args.resume else env_kwargs_of(args)
    if trainer._is_main:
        from stable_baselines3.common.logger import configure

        trainer.set_logger(configure(str(out), ["stdout", "csv", "tensorboard"]))
    evaluator = _Evaluator(args, env_id, env_kwargs, enabled=bool(args.eval_episodes) and trainer._is_main)
    evaluations = ([] if args.resume else evaluator.policy(trainer, "untrained")) + evaluator.trivial()
    warm = args.warm_start_tokens > 0 and not args.resume
    start = time.perf_counter()
    if warm:
        trainer.warm_start(args.warm_start_tokens, learning_rate=args.warm_start_lr)
        evaluations += evaluator.policy(trainer, "supervised")[:1]
    _learn(trainer, args, out)
    train_seconds = time.perf_counter() - start
    trainer.save(out / "model.zip")
    evaluations += evaluator.policy(trainer, "supervised+RL" if warm else "trained")
    results = _results(args, env_id, env_kwargs, trainer, evaluations, train_seconds)
    if trainer._is_main:
        atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str))
        _print_summary(args, results, evaluations)
    return results


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

    def policy(self, trainer: TrainerBase, prefix: str) -> list[Evaluation]:
        """The trainer's policy, labelled ``"<prefix> greedy"`` and ``"<prefix> sampling"``."""
        if not self.enabled:
            return []
        temperature = self.args.temperature
        return lm_evaluations(
            trainer.policy, prefix, self.env_id, self.env_kwargs, temperature=temperature, **self._common()
        )

    def trivial(self) -> list[Evaluation]:
        """``copy-prompt`` and ``reference``: the floor to beat and the ceiling."""
        return trivial_evaluations(self.env_id, self.env_kwargs, **self._common()) if self.enabled else []

    def _common(self) -> dict[str, Any]:
        args, n = self.args, (None if self.args.eval_episodes < 0 else self.args.eval_episodes)
        return {"split": args.eval_split, "n_episodes": n, "seeds": [args.seed], "batch_size": args.n_envs}


def _learn(trainer: TrainerBase, args: argparse.Namespace, out: Path) -> None:
    """RL for ``--steps`` tokens with periodic checkpoints; a signal saves, prints how to resume and exits."""
    is_main, start_steps = trainer._is_main, trainer.num_timesteps
    checkpoints = None
    if args.checkpoint_minutes > 0 and is_main:
        checkpoints = PeriodicCheckpoints(
            out / "checkpoints", args.checkpoint_minutes, args.keep_checkpoints, prefix=args.algo
        )
    try:
        trainer.learn(
            args.steps,
            progress_bar=not args.no_progress,
            reset_num_timesteps=not args.resume,
            checkpoint_on_interrupt=out / "interrupted.zip" if is_main else None,
            checkpoints=checkpoints,
        )
    except TrainingInterrupted as stop:
        if is_main and stop.checkpoint is not None:
            remaining = max(args.steps - (trainer.num_timesteps - start_steps), 1)
            print(
                f"\n{stop}\nResume with:\n  python -m agents.train --resume {stop.checkpoint} --algo {args.algo} "
                f"--steps {remaining} --out {out}",
                flush=True,
            )
        raise SystemExit(stop.exit_code) from None
    finally:
        _end_distributed(trainer.accelerator)


def _results(
    args: argparse.Namespace,
    env_id: str,
    env_kwargs: dict[str, Any],
    trainer: TrainerBase,
    evaluations: list[Evaluation],
    train_seconds: float,
) -> dict[str, Any]:
    """What ``results.json`` holds: the arguments, the table's rows with margins, samples and the logs."""
    rows = [e.row() for e in evaluations]
    if rows:
        add_margins(rows)
    return {
        "args": vars(args),
        "env": env_id,
        "task": env_kwargs.get("task", gym.spec(env_id).kwargs.get("task")),
        "split": args.eval_split,
        "train_seconds": train_seconds,
        "train_tokens": trainer.num_timesteps,
        "rows": rows,
        "samples": {e.label: e.samples() for e in evaluations},
        "history": trainer.history,
        "supervised_history": trainer.supervised_history,
    }


def _print_summary(args: argparse.Namespace, results: dict[str, Any], evaluations: list[Evaluation]) -> None:
    """The results table and the first replies of the last greedy evaluation."""
    rows = results["rows"]
    if not rows:
        return
    print(
        f"\n{args.algo} on {results['env']}, task {_describe(results['task'])} ({args.model}), "
        f"{results['train_tokens']} tokens in {results['train_seconds']:.0f} s; held-out split {args.eval_split!r}, "
        f"{rows[0]['episodes']} prompts; margin = BLEU minus the best of untrained and copy-prompt:\n"
    )
    print(results_table(rows))
    shown = next(e for e in reversed(evaluations) if e.label.endswith("greedy"))
    print(f"\n{shown.label}, first prompts:")
    for prompt, text, reward in shown.samples():
        print(f"  {prompt!r} -> {text!r} (reward {reward:.3f})")


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
    main()
