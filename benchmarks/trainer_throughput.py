"""Generated tokens per second of a full training iteration (rollout + update), trainer by trainer.

    python -m benchmarks.trainer_throughput            # SmolLM2-135M, batch 16 = 4 prompts x 4, 32 new tokens
    python -m benchmarks.trainer_throughput --quick    # tiny model, seconds

Every trainer runs in this one process, one after another, on the same model, env, reward, batch
and token budget, and the table reports each as a ratio to stock SB3 PPO with ``agents.sb3.policy.LMPolicy``
and to the TRL trainer that does the same work (:data:`TRL_BASELINE`, when ``trl`` is installed:
``pip install 'text_gym[trl]'``), so the figures survive a noisy machine:

- ``GRPO`` and ``SequencePPO`` (this package): one iteration is one rollout of ``n_envs`` episodes
  through the vector env with a KV cache, then one update epoch (one forward per episode).
- ``SB3 PPO + LMPolicy``: ``n_steps = max_new_tokens`` steps of ``n_envs`` envs, then one epoch
  in one minibatch (each step is its own sample; the README's recipe).
- ``warm start``: teacher forcing on the env's references (reply tokens trained, packed without
  padding, LM head on the reply positions only).
- TRL's ``GRPOTrainer`` (with ``beta=0.05`` for SequencePPO's KL) and ``SFTTrainer``: see
  :mod:`benchmarks.trl_baselines`.

Tokens are the ones actually generated (replies stop early at end-of-sequence), divided by the
wall-clock time of whole iterations after one warm-up iteration (none for SB3: it is slow). The
table also divides them by the process's CPU time, which other jobs on a shared machine disturb
far less than wall-clock time (with ``--threads 1``, CPU time is the time the trainer computed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

import text_gym  # noqa: F401  (registers the environments)
from benchmarks.common import check_positive_ints, markdown_table, parse_args, sb3_ppo, set_threads, write_report
from benchmarks.trl_baselines import time_trl_grpo, time_trl_sft

# The warm start and TRL's SFTTrainer each train one warm-up step, then 8 measured steps, of 8
# pairs each: the same 72 pairs, in the same order.
WARM_START_BATCH, SFT_STEPS = 8, 8


@dataclass
class Args:
    """Arguments of the trainer throughput benchmark."""

    model: str = field(default="smollm2-135m", metadata={"help": "model preset (also the env's tokenizer)"})
    env_id: str = field(default="TextGen-v0", metadata={"help": "registered environment id"})
    n_envs: int = field(default=16, metadata={"help": "episodes per iteration (the batch)"})
    group_size: int = field(default=4, metadata={"help": "GRPO replies per prompt"})
    max_new_tokens: int = field(default=32, metadata={"help": "reply budget"})
    iterations: int = field(default=2, metadata={"help": "measured iterations per trainer (after a warm-up)"})
    trainers: list = field(
        default_factory=lambda: ["grpo", "trl-grpo", "ppo", "trl-grpo-kl", "sb3-ppo", "warm-start", "trl-sft"],
        metadata={"help": "which to run"},
    )
    profile: bool = field(default=True, metadata={"help": "profile one more GRPO iteration (torch.profiler)"})
    threads: int = field(
        default=0,
        metadata={
            "help": "torch threads for every trainer (0: torch's default); 1 avoids OpenMP stalls on a shared machine"
        },
    )
    out: str = field(default="benchmarks/results", metadata={"help": "folder for trainer_throughput.json/.md/.png"})
    quick: bool = field(default=False, metadata={"help": "tiny model and tokenizer, 1 iteration"})

    def __post_init__(self) -> None:
        if self.quick:
            self.model, self.iterations, self.env_id = "tiny", 1, "TextGen-Copy-v0"
        check_positive_ints(self, "n_envs", "group_size", "max_new_tokens", "iterations")
        unknown = sorted(set(self.trainers) - set(LABELS))
        if unknown:
            raise ValueError(f"trainers: expected some of {list(LABELS)}, got unknown {unknown}.")
        if self.n_envs % self.group_size:
            raise ValueError(f"n_envs: expected a multiple of group_size, got {self.n_envs} and {self.group_size}.")


def env_kwargs(args: Args) -> dict[str, Any]:
    return {"tokenizer": args.model, "max_new_tokens": args.max_new_tokens}


def time_ours(args: Args, algo: str) -> dict[str, Any]:
    """Time whole ``learn`` iterations of GRPO or SequencePPO."""
    from agents.trainers.grpo import GRPO
    from agents.trainers.sequence_ppo import SequencePPO

    kwargs: dict[str, Any] = {"n_envs": args.n_envs, "n_epochs": 1, "verbose": 0, "seed": 0}
    if algo == "grpo":
        trainer = GRPO(args.model, args.env_id, env_kwargs=env_kwargs(args), group_size=args.group_size, **kwargs)
    else:
        trainer = SequencePPO(args.model, args.env_id, env_kwargs=env_kwargs(args), kl_coef=0.05, **kwargs)
    trainer.learn(1)  # warm-up: one iteration (and the reference copy for PPO's KL)
    if algo == "grpo" and args.profile:
        PROFILE["grpo"] = profile_iteration(trainer)
    tokens, seconds, cpu = 0, 0.0, 0.0
    for _ in range(args.iterations):
        before = trainer.num_timesteps
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.learn(1, reset_num_timesteps=False)  # exactly one rollout + update
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        tokens += trainer.num_timesteps - before
    row = trainer.history[-1]
    share = row["time/rollout_s"] / (row["time/rollout_s"] + row["time/update_s"])
    return {"tokens": tokens, "seconds": seconds, "cpu seconds": cpu, "rollout share": share}


def profile_iteration(trainer: Any, rows: int = 15) -> str:
    """One ``learn`` iteration under ``torch.profiler``: the operators that took the most CPU time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.learn(1, reset_num_timesteps=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40)


def time_warm_start(args: Args) -> dict[str, Any]:
    """Time the supervised warm start (teacher forcing); tokens are the reply tokens trained on.

    The pairs are TRL's (:func:`benchmarks.trl_baselines.sft_pairs` with the same seed draws them
    in the warm start's order), one warm-up step, then ``SFT_STEPS`` measured steps, as TRL's.
    """
    import gymnasium as gym

    from agents.modeling.lm import LMActorCritic
    from agents.modeling.prepare import autocast, autocast_dtype
    from agents.trainers.supervised import TeacherForcing

    env = gym.make(args.env_id, **env_kwargs(args)).unwrapped
    policy = LMActorCritic(args.model)
    run = TeacherForcing(policy, total_tokens=1 << 40, batch_size=WARM_START_BATCH, seed=0)  # steps counted here
    fit = {"temperature": 1.0, "max_grad_norm": 1.0, "device": policy.device}
    fit["autocast"] = lambda: autocast(policy.device, autocast_dtype(policy.device))
    run.step(policy, env, **fit)  # warm-up step
    first = run.tokens
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(SFT_STEPS):
        run.step(policy, env, **fit)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"tokens": run.tokens - first, "seconds": seconds, "cpu seconds": cpu, "rollout share": None}


def time_sb3_ppo(args: Args) -> dict[str, Any]:
    """Time one iteration of stock SB3 PPO with ``LMPolicy`` (every token its own sample)."""
    # One minibatch per rollout, as the README recommends: each episode's forward pass serves all its steps.
    model = sb3_ppo(args.model, args.env_id, args.n_envs, args.max_new_tokens, seed=0, batch_size=1 << 30)
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(args.n_envs * args.max_new_tokens)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    model.env.close()
    return {"tokens": model.num_timesteps, "seconds": seconds, "cpu seconds": cpu, "rollout share": None}


LABELS = {
    "grpo": "GRPO (agents)",
    "trl-grpo": "TRL GRPOTrainer",
    "ppo": "SequencePPO (agents)",
    "trl-grpo-kl": "TRL GRPOTrainer, beta=0.05",
    "sb3-ppo": "SB3 PPO + LMPolicy",
    "warm-start": "warm start (agents), reply tokens trained",
    "trl-sft": "TRL SFTTrainer, reply tokens trained",
}
# Each of ours against the TRL trainer that does the same work: GRPO and SB3 PPO against
# GRPOTrainer; SequencePPO, which pays a KL to a reference model, against GRPOTrainer with that KL
# (TRL 1.x has no PPOTrainer); the warm start against SFTTrainer on the same pairs.
TRL_BASELINE = {"grpo": "trl-grpo", "ppo": "trl-grpo-kl", "sb3-ppo": "trl-grpo", "warm-start": "trl-sft"}
PROFILE: dict[str, str] = {}  # filled by time_ours: the profile of one GRPO iteration


def run_one(args: Args, name: str) -> dict[str, Any] | None:
    """Time one trainer of :data:`LABELS`; None when it cannot run here (TRL not installed)."""
    env = (args.model, args.env_id, env_kwargs(args))
    if name in ("grpo", "ppo"):
        return time_ours(args, name)
    if name == "warm-start":
        return time_warm_start(args)
    if name == "sb3-ppo":
        return time_sb3_ppo(args)
    if name == "trl-sft":
        return time_trl_sft(*env, batch_size=WARM_START_BATCH, steps=SFT_STEPS)
    beta = 0.05 if name == "trl-grpo-kl" else 0.0
    return time_trl_grpo(*env, args.n_envs, args.group_size, args.iterations, beta=beta)


def add_ratios(rows: list[dict[str, Any]], names: list[str]) -> None:
    """Give every row its ratio to SB3 PPO + LMPolicy (generated tokens only) and to its TRL counterpart."""
    by_label = {row["trainer"]: row for row in rows}
    sb3 = by_label.get(LABELS["sb3-ppo"])
    for name in names:
        row = by_label.get(LABELS[name])
        if row is None:
            continue
        generated = name not in ("warm-start", "trl-sft")  # reply tokens trained are another kind of token
        for key, base in (
            ("SB3 PPO", sb3 if generated else None),
            ("TRL", by_label.get(LABELS.get(TRL_BASELINE.get(name, ""), ""))),
        ):
            row[f"x {key} (wall)"] = row["tokens/s"] / base["tokens/s"] if base else "-"
            row[f"x {key} (CPU)"] = row["tokens per CPU-s"] / base["tokens per CPU-s"] if base else "-"


def main(args: Args) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    set_threads(args.threads)
    rows = []
    for name in args.trainers:
        print(f"--- {LABELS[name]}", flush=True)
        result = run_one(args, name)
        if result is None:
            continue
        rate = result["tokens"] / max(result["seconds"], 1e-9)
        rows.append(
            {
                "trainer": LABELS[name],
                "tokens": result["tokens"],
                "seconds": result["seconds"],
                "tokens/s": rate,
                "tokens per CPU-s": result["tokens"] / max(result["cpu seconds"], 1e-9),
                "rollout share": result["rollout share"] if result["rollout share"] is not None else "-",
            }
        )
        print(rows[-1], flush=True)
    add_ratios(rows, args.trainers)
    table = markdown_table(rows)
    header = (
        f"{args.model}, {args.env_id}, batch {args.n_envs} ({args.n_envs // args.group_size} prompts x {args.group_size}), "
        f"{args.max_new_tokens} new tokens, {torch.get_num_threads()} torch threads\n\n"
    )
    if PROFILE:
        table += "\n\nOne GRPO iteration under torch.profiler, by self CPU time:\n\n```\n" + PROFILE["grpo"] + "\n```"
    path = write_report(args.out, "trainer_throughput", args, rows, header + table)
    plot(rows, args)
    print(f"\n{header}{table}\n\nwritten to {path}")
    return rows


def plot(rows: list[dict[str, Any]], args: Args) -> None:
    """Bar chart of tokens/s, next to the markdown table."""
    from benchmarks.plots import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(6, 3))
    ax.barh([r["trainer"] for r in rows], [r["tokens/s"] for r in rows], color="tab:blue")
    ax.set_xlabel("generated tokens / s (rollout + update)")
    ax.set_title(f"{args.model}: batch {args.n_envs}, {args.max_new_tokens} new tokens")
    save_figure(fig, f"{args.out}/trainer_throughput.png", dpi=120)


if __name__ == "__main__":
    main(parse_args(Args))
