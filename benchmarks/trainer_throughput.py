"""Generated tokens per second of a full training iteration (rollout + update), trainer by trainer.

    python -m benchmarks.trainer_throughput            # SmolLM2-135M, batch 16 = 4 prompts x 4, 32 new tokens
    python -m benchmarks.trainer_throughput --quick    # tiny model, seconds

Every trainer runs in this one process, one after another, on the same model, env, reward, batch
and token budget, and the table reports each as a ratio to stock SB3 PPO with ``agents.sb3.policy.LMPolicy``
(and to TRL's ``GRPOTrainer`` when ``trl`` is installed), so the figures survive a noisy machine:

- ``GRPO`` and ``SequencePPO`` (this package): one iteration is one rollout of ``n_envs`` episodes
  through the vector env with a KV cache, then one update epoch (one forward per episode).
- ``SB3 PPO + LMPolicy``: ``n_steps = max_new_tokens`` steps of ``n_envs`` envs, then one epoch
  in one minibatch (each step is its own sample; the README's recipe).
- ``TRL GRPOTrainer``: ``per_device_train_batch_size = n_envs``, ``num_generations = group_size``,
  ``max_completion_length = max_new_tokens``, the env's reward as a reward function; tokens are
  counted from the completions it scores.

Tokens are the ones actually generated (replies stop early at end-of-sequence), divided by the
wall-clock time of whole iterations after one warm-up iteration (none for SB3: it is slow). The
table also divides them by the process's CPU time, which other jobs on a shared machine disturb
far less than wall-clock time (with ``--threads 1``, CPU time is the time the trainer computed).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

import text_gym  # noqa: F401  (registers the environments)
from benchmarks.common import check_positive_ints, markdown_table, parse_args, sb3_ppo, set_threads, write_report


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
        default_factory=lambda: ["grpo", "ppo", "sb3-ppo", "trl-grpo", "warm-start"], metadata={"help": "which to run"}
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


def time_warm_start(args: Args, total_tokens: int = 512) -> dict[str, Any]:
    """Time the supervised warm start (teacher forcing); tokens are the reply tokens trained on."""
    from agents.trainers.grpo import GRPO

    trainer = GRPO(args.model, args.env_id, env_kwargs=env_kwargs(args), n_envs=args.n_envs, verbose=0, seed=0)
    trainer.warm_start(64, batch_size=8)  # warm-up step
    start, start_cpu = time.perf_counter(), time.process_time()
    rows = trainer.warm_start(total_tokens, batch_size=8)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"tokens": int(rows[-1]["supervised/tokens"]), "seconds": seconds, "cpu seconds": cpu, "rollout share": None}


def time_sb3_ppo(args: Args) -> dict[str, Any]:
    """Time one iteration of stock SB3 PPO with ``LMPolicy`` (every token its own sample)."""
    # One minibatch per rollout, as the README recommends: each episode's forward pass serves all its steps.
    model = sb3_ppo(args.model, args.env_id, args.n_envs, args.max_new_tokens, seed=0, batch_size=1 << 30)
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(args.n_envs * args.max_new_tokens)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    model.env.close()
    return {"tokens": model.num_timesteps, "seconds": seconds, "cpu seconds": cpu, "rollout share": None}


def time_trl_grpo(args: Args) -> dict[str, Any] | None:
    """Time TRL's GRPOTrainer on the same prompts, reward, batch, group size and budget."""
    if importlib.util.find_spec("trl") is None:
        print("trl is not installed: skipping TRL's GRPOTrainer (pip install trl)")
        return None
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from agents.modeling.loading import load_model

    env = gym.make(args.env_id, **env_kwargs(args)).unwrapped
    data, env_reward, counted = _trl_data_and_reward(env)

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, float, int]] = []

        def on_step_end(self, *_: Any, **__: Any) -> None:
            self.marks.append((time.perf_counter(), time.process_time(), counted["tokens"]))

    config = GRPOConfig(
        output_dir="runs/trl_bench",
        per_device_train_batch_size=args.n_envs,
        num_generations=args.group_size,
        max_completion_length=args.max_new_tokens,
        max_steps=args.iterations + 1,
        learning_rate=1e-5,
        beta=0.0,
        num_iterations=1,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    clock = Clock()
    trainer = GRPOTrainer(
        model=load_model(args.model),
        reward_funcs=env_reward,
        args=config,
        train_dataset=data,
        processing_class=env.tokenizer,
        callbacks=[clock],
    )
    trainer.train()
    (t0, c0, n0), (t1, c1, n1) = clock.marks[0], clock.marks[-1]  # from the end of the first (warm-up) step
    return {"tokens": n1 - n0, "seconds": t1 - t0, "cpu seconds": c1 - c0, "rollout share": None}


def _trl_data_and_reward(env: Any) -> tuple[Any, Any, dict[str, int]]:
    """TRL's dataset of the env's first 64 prompts, the env's reward as a TRL reward function, and its token count."""
    import datasets

    samples = [env.task[i] for i in range(min(len(env.task), 64))]
    references = {s.prompt: list(s.references) for s in samples}
    data = datasets.Dataset.from_list(
        [{"prompt": [{"role": "user", "content": s.prompt}], "text": s.prompt} for s in samples]
    )
    counted = {"tokens": 0}

    def env_reward(prompts: list, completions: list, completion_ids: list, text: list, **_: Any) -> list[float]:
        counted["tokens"] += sum(len(ids) for ids in completion_ids)
        outputs = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return [float(x) for x in env.reward.score(text, outputs, [references[t] for t in text])["reward"]]

    return data, env_reward, counted


LABELS = {
    "grpo": "GRPO (agents)",
    "ppo": "SequencePPO (agents)",
    "sb3-ppo": "SB3 PPO + LMPolicy",
    "trl-grpo": "TRL GRPOTrainer",
    "warm-start": "warm start (agents), reply tokens trained",
}
PROFILE: dict[str, str] = {}  # filled by time_ours: the profile of one GRPO iteration


def main(args: Args) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    set_threads(args.threads)
    rows = []
    for name in args.trainers:
        print(f"--- {LABELS[name]}", flush=True)
        if name in ("grpo", "ppo"):
            result = time_ours(args, name)
        elif name == "warm-start":
            result = time_warm_start(args)
        else:
            result = time_sb3_ppo(args) if name == "sb3-ppo" else time_trl_grpo(args)
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
    for base_name, short in (("SB3 PPO + LMPolicy", "SB3 PPO"), ("TRL GRPOTrainer", "TRL")):
        base = next((r for r in rows if r["trainer"] == base_name), None)
        for row in rows:
            if row["trainer"] == LABELS["warm-start"]:  # another kind of token: no ratio
                row[f"x {short} (wall)"] = row[f"x {short} (CPU)"] = "-"
                continue
            row[f"x {short} (wall)"] = row["tokens/s"] / base["tokens/s"] if base else "-"
            row[f"x {short} (CPU)"] = row["tokens per CPU-s"] / base["tokens per CPU-s"] if base else "-"
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
