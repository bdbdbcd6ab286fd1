"""Train an LM agent on a TextGen env, then compare it with the untrained LM on held-out prompts.

    python -m agents.train --env TextGen-EchoLetter-v0 --model tiny --algo grpo --steps 20000
    python -m agents.train --quick            # the README demo: SmolLM2-135M, a few CPU minutes
    accelerate launch --multi_gpu --num_processes 2 -m agents.train --algo grpo ...   # 2 GPUs (or 2 CPU processes)

It evaluates the untrained model (greedy and sampling) on the held-out split, trains with a
progress bar, checkpoints and SB3 logs (stdout, CSV, TensorBoard under ``--out``), evaluates the
trained model the same way, and prints the before/after table (also in ``--out/results.json``).
Evaluation plays every held-out prompt once through the env, batched with the KV cache.
Under ``accelerate launch`` each process rolls out its own envs and gradients are averaged;
evaluation and saving happen on the main process.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import text_gym  # noqa: F401  (registers the environments)
from agents.grpo import GRPO
from agents.rollout import collect_rollout, env_attributes
from agents.sequence_ppo import SequencePPO
from agents.trainer_base import TrainerBase

__all__ = ["PromptSchedule", "evaluate", "main"]

ALGOS: dict[str, type[TrainerBase]] = {"grpo": GRPO, "ppo": SequencePPO}

# The demo preset: SmolLM2 learns to follow "Repeat exactly: apple river stone" with GRPO. The
# untrained model mostly chats instead of copying (held-out BLEU about 0.15 greedy, 0.01
# sampling); some of its samples do copy, which gives each group of four a signal. A few
# minutes of CPU move held-out BLEU up clearly (see benchmarks/results/learning*.md).
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


class PromptSchedule(gym.Wrapper):
    """Reset to the task samples ``indices[0], indices[1], ...`` in turn, cycling.

    Gymnasium vector envs pass one ``options`` dict to every sub-env, so giving each sub-env its
    own list of prompts is how an evaluation covers a split exactly once. Only resets with
    ``options={"advance": True}`` move to the next index: the vector env's own autoresets (of
    envs whose episode ended before the others') replay the current one, and are discarded.
    """

    def __init__(self, env: gym.Env, indices: Sequence[int]) -> None:
        super().__init__(env)
        if not indices:
            raise ValueError("PromptSchedule: expected at least one index, got none.")
        self._indices, self._next = list(indices), -1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        options = dict(options or {})
        if options.pop("advance", False):
            self._next += 1
        if "index" not in options:
            options["index"] = self._indices[max(self._next, 0) % len(self._indices)]
        return self.env.reset(seed=seed, options=options)


@torch.no_grad()
def evaluate(
    trainer: TrainerBase,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    split: str = "test",
    n_episodes: int | None = None,
    deterministic: bool = True,
    n_envs: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """Play the first ``n_episodes`` prompts of ``split`` (all when None) once each; return mean scores.

    Returns:
        ``{"reward": mean, "<score>": mean for each score the env reports, "episodes": n,
        "samples": [first few (prompt, reply, reward)]}``.
    """
    kwargs = {**(env_kwargs or {}), "split": split}
    size = len(gym.make(env_id, **kwargs).unwrapped.task)
    total = size if n_episodes is None else min(n_episodes, size)
    n_envs = max(1, min(n_envs, total))
    fns = [lambda r=r: PromptSchedule(gym.make(env_id, **kwargs), list(range(r, total, n_envs))) for r in range(n_envs)]
    envs = gym.vector.SyncVectorEnv(fns)
    spec = env_attributes(envs)
    generator = torch.Generator(device=trainer.device).manual_seed(seed)
    trainer.policy.eval()
    episodes: dict[int, dict[str, Any]] = {}
    for _ in range(-(-total // n_envs)):
        batch = collect_rollout(
            trainer.policy, envs, spec, temperature=trainer.config.temperature, deterministic=deterministic,
            generator=generator, device=trainer.device, autocast_dtype=trainer.autocast_dtype, reset_options={"advance": True},
        )
        for index, info in zip(batch.indices, batch.infos, strict=True):
            episodes.setdefault(int(index), info)
    envs.close()
    infos = [episodes[i] for i in sorted(episodes)][:total]
    names = sorted({name for info in infos for name in info.get("scores", {})})
    result: dict[str, Any] = {name: float(np.mean([info["scores"][name] for info in infos])) for name in names}
    result["episodes"] = len(infos)
    result["samples"] = [(info.get("prompt"), info.get("text"), info.get("scores", {}).get("reward")) for info in infos[:3]]
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="TextGen-v0", help="registered env id")
    parser.add_argument("--model", default="smollm2-135m", help="model preset or folder (also the env's tokenizer)")
    parser.add_argument("--algo", choices=sorted(ALGOS), default="grpo")
    parser.add_argument("--steps", type=int, default=20_000, help="generated tokens to train for")
    parser.add_argument("--reward", default="bleu", help="env reward: bleu, chrf, coherence...")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--n-envs", type=int, default=16, help="episodes per rollout")
    parser.add_argument("--group-size", type=int, default=4, help="GRPO replies per prompt")
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--n-epochs", type=int, default=None, help="default: the trainer's")
    parser.add_argument("--batch-size", type=int, default=None, help="episodes per optimizer step")
    parser.add_argument("--micro-batch-size", type=int, default=None, help="episodes per forward (gradient accumulation)")
    parser.add_argument("--kl", type=float, default=None, help="KL coefficient (GRPO beta / PPO kl_coef)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--lora", type=int, default=0, help="LoRA rank; 0 trains all weights")
    parser.add_argument("--eval-episodes", type=int, default=64, help="held-out prompts to evaluate (0: skip)")
    parser.add_argument("--eval-split", default="test")
    parser.add_argument("--checkpoint-freq", type=int, default=0, help="save every this many env steps per env (0: off)")
    parser.add_argument("--out", default="runs/train", help="folder for logs, checkpoints, model and results.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--quick", action="store_true", help=f"the demo preset: {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:  # the preset fills what the user did not set on the command line
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv if argv is not None else __import__("sys").argv[1:])}
        for key, value in QUICK.items():
            if key not in given:
                setattr(args, key, value)
    return args


def build_trainer(args: argparse.Namespace, accelerator: Any = None) -> TrainerBase:
    """The trainer the command line describes."""
    policy_kwargs: dict[str, Any] = {"model": args.model}
    if args.lora:
        policy_kwargs["lora"] = {"r": args.lora, "lora_alpha": 2 * args.lora}
    kwargs: dict[str, Any] = {"learning_rate": args.learning_rate, "n_envs": args.n_envs, "temperature": args.temperature}
    for name in ("n_epochs", "batch_size", "micro_batch_size"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.algo == "grpo":
        kwargs["group_size"] = args.group_size
        if args.kl is not None:
            kwargs["beta"] = args.kl
    elif args.kl is not None:
        kwargs["kl_coef"] = args.kl
    env_kwargs = {"tokenizer": args.model, "reward": args.reward, "max_new_tokens": args.max_new_tokens}
    return ALGOS[args.algo](
        args.model, args.env, policy_kwargs=policy_kwargs, env_kwargs=env_kwargs, seed=args.seed,
        device=args.device, accelerator=accelerator, **kwargs,
    )


def results_table(before: dict[str, dict], after: dict[str, dict]) -> str:
    """Markdown table: one row per agent, columns reward and each score."""
    names = [n for n in next(iter(before.values())) if n not in ("episodes", "samples")]
    lines = ["| agent | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, results in [(f"untrained {k}", v) for k, v in before.items()] + [(f"trained {k}", v) for k, v in after.items()]:
        lines.append(f"| {label} | " + " | ".join(f"{results[n]:.3f}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    accelerator = None
    if int(__import__("os").environ.get("WORLD_SIZE", "1")) > 1:  # started by `accelerate launch`
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=args.device == "cpu")
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure

    out = Path(args.out)
    trainer = build_trainer(args, accelerator)
    is_main = trainer._is_main
    if is_main:
        trainer.set_logger(configure(str(out), ["stdout", "csv", "tensorboard"]))
    env_kwargs = {"tokenizer": args.model, "reward": args.reward, "max_new_tokens": args.max_new_tokens}

    def evaluate_both() -> dict[str, dict]:
        if not args.eval_episodes or not is_main:
            return {}
        return {
            mode: evaluate(trainer, args.env, env_kwargs, args.eval_split, args.eval_episodes, deterministic=mode == "greedy", seed=args.seed)
            for mode in ("greedy", "sampling")
        }

    before = evaluate_both()
    callbacks = []
    if args.checkpoint_freq and is_main:
        callbacks.append(CheckpointCallback(args.checkpoint_freq, str(out / "checkpoints"), name_prefix=args.algo))
    start = time.perf_counter()
    trainer.learn(args.steps, callback=callbacks, progress_bar=not args.no_progress)
    train_seconds = time.perf_counter() - start
    trainer.save(out / "model.zip")
    after = evaluate_both()
    results = {"args": vars(args), "train_seconds": train_seconds, "before": before, "after": after, "history": trainer.history}
    if is_main:
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
        if before:
            print(f"\n{args.algo} on {args.env} ({args.model}), {trainer.num_timesteps} tokens in {train_seconds:.0f} s; "
                  f"held-out split {args.eval_split!r}, {before['greedy']['episodes']} prompts:\n")
            print(results_table(before, after))
            for prompt, text, reward in after["greedy"]["samples"]:
                print(f"  {prompt!r} -> {text!r} (reward {reward:.3f})")
    return results


if __name__ == "__main__":
    main()
