"""Tokens per second of SB3 rollouts and updates with ``LMPolicy``, against ``model.generate``.

    python -m benchmarks.rollout_throughput            # SmolLM2-135M, 16 envs, 24 + 32 tokens
    python -m benchmarks.rollout_throughput --quick    # seconds: the tiny model

Rollouts: stock ``PPO.collect_rollouts`` with :class:`agents.sb3.policy.LMPolicy`, with its per-env KV cache
and without (one full forward pass per token), against ``model.generate`` with its KV cache on the
same prompts, batch and lengths. Every prompt is exactly ``prompt_tokens`` long (chat template,
then left truncation), and both sides suppress end-of-sequence (``min_new_tokens`` for generate,
a masked logit for the policy), so every episode and every sequence runs ``new_tokens`` tokens:
the rollout then does the same work as generate plus SB3's and the env's bookkeeping.

Updates: ``PPO.train()`` on one rollout buffer, with ``evaluate_actions`` sharing one forward pass
per episode prefix (``group_prefixes=True``) and with one sequence per step. Tokens per second
count env steps processed (``n_epochs * buffer size / seconds``).

Everything runs in one process, one after another, and the table reports ratios, which survive
a noisy shared machine better than absolute figures: generate and the cached rollout alternate
``rounds`` times and each ratio pairs neighbours in time (the tokens/s column holds the means).
On a machine shared with other jobs, ``--threads 1`` gives steadier figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.distributions import Distribution

import text_gym  # noqa: F401  (registers the environments)
from agents.sb3.policy import LMPolicy
from benchmarks.common import check_positive_ints, markdown_table, parse_args, set_threads, write_report


@dataclass
class Args:
    """Arguments of the rollout throughput benchmark."""

    model: str = field(default="smollm2-135m", metadata={"help": "model and tokenizer preset (or folder)"})
    env_id: str = field(default="TextGen-v0", metadata={"help": "env whose prompts are used"})
    num_envs: int = field(default=16, metadata={"help": "envs = generate batch size"})
    prompt_tokens: int = field(default=24, metadata={"help": "every prompt is cut to exactly this many tokens"})
    new_tokens: int = field(default=32, metadata={"help": "tokens per reply (max_new_tokens)"})
    episodes: int = field(default=2, metadata={"help": "episodes per env in each cached rollout (and generate calls)"})
    rounds: int = field(default=3, metadata={"help": "alternations of generate and the cached rollout"})
    uncached_episodes: int = field(default=1, metadata={"help": "episodes per env in the uncached rollout (slow)"})
    train_batch_size: int = field(default=64, metadata={"help": "PPO minibatch size in the update benchmark"})
    gradient_checkpointing: bool = field(
        default=True, metadata={"help": "in updates, to bound memory (rollouts are unaffected)"}
    )
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default)"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for rollout_throughput.json/.md"})
    quick: bool = field(default=False, metadata={"help": "tiny model, 4 envs, 8 new tokens: a smoke test"})

    def __post_init__(self) -> None:
        if self.quick:
            self.model, self.num_envs, self.new_tokens, self.train_batch_size = "tiny", 4, 8, 16
            self.threads = self.threads or 1
        check_positive_ints(self, "num_envs", "prompt_tokens", "new_tokens", "episodes")
        check_positive_ints(self, "rounds", "uncached_episodes", "train_batch_size")


class NoEOSPolicy(LMPolicy):
    """``LMPolicy`` that never chooses end-of-sequence, so that every episode has the same length."""

    eos_token_id: int = -1

    def _distribution(self, logits: torch.Tensor, action_masks: Any) -> Distribution:
        logits = logits.clone()
        logits[:, self.eos_token_id] = torch.finfo(logits.dtype).min
        return super()._distribution(logits, action_masks)


def make_env(args: Args):
    from stable_baselines3.common.vec_env import DummyVecEnv

    kwargs = dict(
        tokenizer=args.model,
        max_prompt_tokens=args.prompt_tokens,
        max_new_tokens=args.new_tokens,
        prompt_truncation="left",
    )
    env = DummyVecEnv([lambda: gym.make(args.env_id, **kwargs)] * args.num_envs)
    env.seed(0)
    return env


def make_ppo(args: Args, env, lm, n_steps: int, **policy_kwargs):
    from stable_baselines3 import PPO

    NoEOSPolicy.eos_token_id = int(env.get_attr("eos_token_id")[0])
    kwargs = {
        "model": lm,
        "tokenizer": args.model,
        "device": None,
        "gradient_checkpointing": args.gradient_checkpointing,
        **policy_kwargs,
    }
    batch = min(args.train_batch_size, n_steps * args.num_envs)
    return PPO(
        NoEOSPolicy,
        env,
        n_steps=n_steps,
        batch_size=batch,
        n_epochs=1,
        learning_rate=1e-6,
        policy_kwargs=kwargs,
        device=lm.device,
        seed=0,
    )


def rollout_tokens_per_second(model, steps: int) -> float:
    """Time one ``collect_rollouts`` of ``steps`` steps; return env steps (= new tokens) per second."""
    _, callback = model._setup_learn(steps * model.n_envs, None)
    start = time.perf_counter()
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=steps)
    return steps * model.n_envs / (time.perf_counter() - start)


def generate_tokens_per_second(args: Args, lm, prompts: torch.Tensor, eos: int, pad: int) -> float:
    """Time ``model.generate`` (sampling, KV cache) of ``new_tokens`` tokens for every prompt."""
    kwargs = dict(do_sample=True, top_k=0, top_p=1.0, temperature=1.0, pad_token_id=pad, eos_token_id=eos)
    mask = torch.ones_like(prompts)
    with torch.no_grad():
        lm.generate(prompts, attention_mask=mask, max_new_tokens=2, min_new_tokens=2, **kwargs)  # warm-up
        start = time.perf_counter()
        for _ in range(args.episodes):
            out = lm.generate(
                prompts, attention_mask=mask, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, **kwargs
            )
        elapsed = time.perf_counter() - start
    assert out.shape[1] == prompts.shape[1] + args.new_tokens
    return args.episodes * prompts.numel() // prompts.shape[1] * args.new_tokens / elapsed


def train_tokens_per_second(model, group_prefixes: bool) -> float:
    """Time one ``PPO.train()`` on the filled buffer; return env steps processed per second."""
    model.policy.group_prefixes = group_prefixes
    start = time.perf_counter()
    model.train()
    return model.n_epochs * model.rollout_buffer.buffer_size * model.n_envs / (time.perf_counter() - start)


def rollout_rates(args: Args, env, lm) -> tuple[dict[str, float], dict[str, float], Any]:
    """Tokens/s of generate and of the rollouts with and without the KV cache, and their ratios to generate.

    Also returns the uncached PPO model, whose filled buffer the update benchmark trains on.
    """
    obs = env.reset()
    lengths = obs["attention_mask"].sum(1)
    assert (lengths == args.prompt_tokens).all(), f"expected prompts of {args.prompt_tokens} tokens, got {lengths}"
    prompts = torch.as_tensor(obs["input_ids"][:, : args.prompt_tokens], device=lm.device)
    eos, pad = int(env.get_attr("eos_token_id")[0]), int(env.get_attr("pad_token_id")[0])
    steps = args.new_tokens  # one episode per env
    # generate and the cached rollout alternate, and each ratio pairs neighbours in time, so that
    # drift on a shared machine hits both sides alike.
    cached = make_ppo(args, env, lm, steps * args.episodes)
    generate, rollout = [], []
    for round_ in range(args.rounds):
        generate.append(generate_tokens_per_second(args, lm, prompts, eos, pad))
        rollout.append(rollout_tokens_per_second(cached, steps * args.episodes))
        print(f"round {round_}: generate {generate[-1]:.1f}, cached rollout {rollout[-1]:.1f} tokens/s", flush=True)
    print(f"cache use: {cached.policy.kv_cache.stats}", flush=True)
    rates = {"generate": float(np.mean(generate)), "cached": float(np.mean(rollout))}
    ratios = {"cached": float(np.mean(np.array(rollout) / np.array(generate)))}
    uncached = make_ppo(args, env, lm, steps * args.uncached_episodes, use_kv_cache=False)
    rates["uncached"] = rollout_tokens_per_second(uncached, steps * args.uncached_episodes)
    after = generate_tokens_per_second(args, lm, prompts, eos, pad)
    ratios["uncached"] = rates["uncached"] / float(np.mean([generate[-1], after]))
    print(f"rollout, no cache: {rates['uncached']:.1f} tokens/s (generate after it: {after:.1f})", flush=True)
    return rates, ratios, uncached


def result_rows(args: Args, rates: dict[str, float], ratios: dict[str, float], minibatch: int) -> list[dict[str, Any]]:
    """The table: one row per method, with its tokens/s and its ratio to its phase's baseline."""
    setting, train = f"{args.num_envs} envs, {args.prompt_tokens}+{args.new_tokens} tokens", f"minibatch {minibatch}"
    grouped = f"{rates['grouped'] / rates['naive']:.2f}x naive"
    methods = [  # (phase, method, setting, key of rates, ratio)
        ("rollout", "model.generate (KV cache)", setting, "generate", "1.00x generate"),
        ("rollout", "PPO + LMPolicy, KV cache", setting, "cached", f"{ratios['cached']:.2f}x generate"),
        ("rollout", "PPO + LMPolicy, no cache", setting, "uncached", f"{ratios['uncached']:.2f}x generate"),
        ("train", "PPO.train(), shared-prefix groups", train, "grouped", grouped),
        ("train", "PPO.train(), one sequence per step", train, "naive", "1.00x naive"),
    ]
    return [
        {"phase": phase, "method": method, "setting": where, "tokens/s": rates[key], "ratio": ratio}
        for phase, method, where, key, ratio in methods
    ]


def main(args: Args) -> list[dict]:
    from agents.modeling.loading import load_model

    set_threads(args.threads)
    env = make_env(args)
    lm = load_model(args.model, device="auto")
    rates, ratios, uncached = rollout_rates(args, env, lm)
    # Updates, on the uncached model's buffer (uncached_episodes episodes per env). Grouped runs
    # first, so it also pays any first-call costs.
    rates["grouped"] = train_tokens_per_second(uncached, group_prefixes=True)
    print(f"train, shared prefixes: {rates['grouped']:.1f} tokens/s", flush=True)
    rates["naive"] = train_tokens_per_second(uncached, group_prefixes=False)
    print(f"train, one sequence per step: {rates['naive']:.1f} tokens/s", flush=True)
    rows = result_rows(args, rates, ratios, uncached.batch_size)
    table = markdown_table(rows)
    path = write_report(args.out, "rollout_throughput" + ("_quick" if args.quick else ""), args, rows, table)
    print(f"\n{table}\n\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main(parse_args(Args))
