"""Memory soak: the resident set size stays flat over long runs of the env, SB3 PPO and GRPO.

    python -m benchmarks.soak --threads 1      # 10,000 env episodes, 1,000 SB3 episodes, 100 GRPO iterations
    python -m benchmarks.soak --quick          # seconds: checks the script (writes soak_quick.*)

Three phases run one after another in this one process:

1. ``env``: a random agent plays ``TextGen-v0`` (SmolLM2 tokenizer, sparse BLEU reward), sampling
   real tokens through ``env.unwrapped.action_masks()``.
2. ``sb3-ppo``: stock ``stable_baselines3.PPO`` with ``agents.sb3.policy.LMPolicy`` (the tiny model, so its
   per-env KV cache is used on every rollout step) on ``TextGen-Copy-v0``, in repeated
   ``learn(n_steps * n_envs, reset_num_timesteps=False)`` chunks of one rollout and one update;
   episodes are counted from the ``dones`` that SB3 hands its callback.
3. ``grpo``: one ``agents.trainers.grpo.GRPO.learn`` call, whose callback samples at the start of every rollout
   (after the previous update) and stops the run after the last measured iteration.

Each phase samples the RSS (``/proc/self/statm``) at regular steps of progress, right after
``gc.collect()`` and glibc's ``malloc_trim(0)`` (so memory that the allocator holds but nothing
uses does not read as growth; ``--no-trim`` measures the RSS as it is). It leaves the first
``warmup`` fraction out of the fit (the allocator's arenas, the optimizer's state and the KV
cache's largest shape fill then) and fits a least-squares line to the rest. Its slope, in MB per
1,000 episodes (per 100 iterations for GRPO), is the growth rate. This is not a speed benchmark:
nothing here is timed.

A small positive slope is expected from caches that are bounded but fill slowly, one entry per
new text; the table counts the largest one:

- sacrebleu's 13a tokenizer keeps an ``lru_cache`` of 2**16 entries on each of its two steps,
  and every distinct reply that BLEU scores adds one (about 1.2 kB per entry with the SmolLM2
  tokenizer's 32-token random replies, so it levels off near 75 MB per env process);
- ``text_gym.rewards.bleu`` caches the n-gram counts of each reference tuple (2**14 at most),
  and each env's ``PromptEncoder`` the ids of each prompt it has seen (the task's size at most).

The agents' own state (the KV cache, SB3's buffers, the trainers) should add nothing but the
trainers' ``history``, one row of logged values per iteration (about 1 kB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import text_gym  # noqa: F401  (registers the environments)
from benchmarks.common import (
    check_positive_ints,
    markdown_table,
    parse_args,
    rss_bytes,
    sb3_ppo,
    set_threads,
    write_report,
)

PHASES: tuple[str, ...] = ("env", "sb3-ppo", "grpo")
COLUMNS = (
    "phase",
    "units",
    "samples",
    "before MB",
    "start MB",
    "end MB",
    "peak MB",
    "slope",
    "slope per",
    "fit growth MB",
    "BLEU cache entries",
)


@dataclass
class Args:
    """Arguments of the memory soak benchmark."""

    phases: list = field(default_factory=lambda: list(PHASES), metadata={"help": "phases to run: env, sb3-ppo, grpo"})
    env_id: str = field(default="TextGen-v0", metadata={"help": "env of the random-agent phase"})
    env_tokenizer: str = field(default="smollm2-135m", metadata={"help": "tokenizer of the random-agent phase"})
    env_episodes: int = field(default=10_000, metadata={"help": "episodes of the random-agent phase"})
    max_new_tokens: int = field(default=32, metadata={"help": "reply budget of every env (the env's default)"})
    model: str = field(
        default="tiny", metadata={"help": "model preset (also the tokenizer) of the SB3 and GRPO phases"}
    )
    train_env_id: str = field(default="TextGen-Copy-v0", metadata={"help": "env of the SB3 and GRPO phases"})
    sb3_episodes: int = field(default=1_000, metadata={"help": "finished episodes of the SB3 PPO phase"})
    sb3_envs: int = field(default=4, metadata={"help": "SB3 vector env size (n_steps is max_new_tokens)"})
    grpo_iterations: int = field(default=100, metadata={"help": "iterations (rollout + update) of the GRPO phase"})
    n_envs: int = field(default=8, metadata={"help": "GRPO episodes per iteration"})
    group_size: int = field(default=4, metadata={"help": "GRPO replies per prompt"})
    samples: int = field(
        default=100, metadata={"help": "RSS samples per phase after the first (GRPO: at most one per iteration)"}
    )
    warmup: float = field(default=0.1, metadata={"help": "fraction of each phase left out of the fit"})
    trim: bool = field(
        default=True,
        metadata={
            "help": "malloc_trim(0) before each sample (glibc), so free memory the allocator holds is not counted"
        },
    )
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default); 1 on a shared machine"})
    seed: int = field(default=0, metadata={"help": "seed of the agents, trainers and env resets"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for soak.json/.md/.png"})
    quick: bool = field(default=False, metadata={"help": "tiny tokenizer everywhere, a few dozen episodes: seconds"})

    def __post_init__(self) -> None:
        if self.quick:
            self.env_id, self.env_tokenizer, self.max_new_tokens = "TextGen-Copy-v0", "tiny", 8
            self.env_episodes, self.sb3_episodes, self.grpo_iterations, self.samples = 100, 16, 4, 4
        unknown = sorted(set(self.phases) - set(PHASES))
        if unknown:
            raise ValueError(f"phases: expected some of {list(PHASES)}, got unknown {unknown}.")
        check_positive_ints(
            self, "env_episodes", "sb3_episodes", "grpo_iterations", "samples", "sb3_envs", "max_new_tokens"
        )
        check_positive_ints(self, "n_envs", "group_size")
        if self.samples < 2:
            raise ValueError(f"samples: expected at least 2 (a line needs two points), got {self.samples}.")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup: expected a fraction in [0, 1), got {self.warmup}.")
        if self.n_envs % self.group_size:
            raise ValueError(f"n_envs: expected a multiple of group_size, got {self.n_envs} and {self.group_size}.")


def rss_mb() -> float:
    """The resident set size of this process, in MB (2**20 bytes): :func:`benchmarks.common.rss_bytes`."""
    return rss_bytes() / 2**20


def malloc_trim() -> bool:
    """Ask glibc to give the memory it holds but nothing uses back to the OS; False without glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    return True


def bleu_cache_entries() -> int:
    """Entries in sacrebleu's 13a tokenizer cache (one per distinct text BLEU has tokenized)."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    info = getattr(Tokenizer13a.__call__, "cache_info", None)
    return int(info().currsize) if info else -1


class Sampler:
    """Collect ``(progress, RSS)`` pairs, one whenever progress reaches the next of ``samples`` steps."""

    def __init__(self, total: int, samples: int, trim: bool = True) -> None:
        self.total, self.trim = total, trim
        self.every = max(total / samples, 1.0)
        self.progress: list[int] = []
        self.rss: list[float] = []
        self.sample(0)

    @property
    def due(self) -> float:
        return len(self.progress) * self.every

    def maybe_sample(self, done: int) -> None:
        """Sample if ``done`` units reached the next step (or the end)."""
        if done >= min(self.due, self.total) and (not self.progress or done > self.progress[-1]):
            self.sample(done)

    def sample(self, done: int) -> None:
        gc.collect()  # what is left is what is still referenced
        if self.trim:
            malloc_trim()
        self.progress.append(int(done))
        self.rss.append(rss_mb())


# ---------------------------------------------------------------------- phases
def env_phase(args: Args) -> Sampler:
    """A random agent over real token ids, ``args.env_episodes`` episodes, sparse reward.

    It steps the env itself rather than through :mod:`agents.evaluation`: the phase measures the
    env alone, with random tokens and no model.
    """
    env = gym.make(
        args.env_id, tokenizer=args.env_tokenizer, max_new_tokens=args.max_new_tokens, reward_shaping="sparse"
    )
    rng = np.random.default_rng(args.seed)
    sampler = Sampler(args.env_episodes, args.samples, args.trim)
    env.reset(seed=args.seed)
    for episode in range(1, args.env_episodes + 1):
        done = False
        while not done:
            tokens = np.flatnonzero(env.unwrapped.action_masks())  # the ids that are real tokens
            _, _, terminated, truncated, _ = env.step(int(rng.choice(tokens)))
            done = terminated or truncated
        env.reset()
        sampler.maybe_sample(episode)
    env.close()
    return sampler


def sb3_phase(args: Args) -> Sampler:
    """Stock SB3 PPO with ``LMPolicy`` and its KV cache, in one-rollout ``learn`` chunks."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeCounter(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.episodes = 0

        def _on_step(self) -> bool:
            self.episodes += int(np.sum(self.locals["dones"]))
            return True

    model = sb3_ppo(args.model, args.train_env_id, args.sb3_envs, args.max_new_tokens, args.seed, device="cpu")
    steps = args.max_new_tokens * args.sb3_envs  # one rollout and one cheap update per learn call
    counter = EpisodeCounter()
    sampler = Sampler(args.sb3_episodes, args.samples, args.trim)
    first = True
    while counter.episodes < args.sb3_episodes:
        model.learn(steps, callback=counter, reset_num_timesteps=first)
        first = False
        sampler.maybe_sample(min(counter.episodes, args.sb3_episodes))
    if sampler.progress[-1] < args.sb3_episodes:
        sampler.sample(args.sb3_episodes)
    model.env.close()
    return sampler


def grpo_phase(args: Args) -> Sampler:
    """One ``GRPO.learn`` call; its callback samples at the start of each rollout."""
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.trainers.grpo import GRPO

    sampler_box: list[Sampler] = []

    class IterationSampler(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.iterations, self.stop = 0, False

        def _on_rollout_start(self) -> None:
            # The previous iteration's update is over: sample, and stop once the last one is in.
            if self.iterations:
                sampler_box[0].maybe_sample(self.iterations)
            self.stop = self.iterations >= args.grpo_iterations

        def _on_rollout_end(self) -> None:
            self.iterations += 1

        def _on_step(self) -> bool:
            return not self.stop

    trainer = GRPO(
        args.model,
        args.train_env_id,
        env_kwargs={"tokenizer": args.model, "max_new_tokens": args.max_new_tokens},
        n_envs=args.n_envs,
        group_size=args.group_size,
        seed=args.seed,
        verbose=0,
    )
    sampler_box.append(Sampler(args.grpo_iterations, min(args.samples, args.grpo_iterations), args.trim))
    trainer.learn(10**12, callback=IterationSampler())  # ends through the callback
    trainer.env.close()
    return sampler_box[0]


RUNNERS: dict[str, tuple[Callable[[Args], Sampler], int, str]] = {
    # phase: (runner, units the slope is per, their name)
    "env": (env_phase, 1_000, "episodes"),
    "sb3-ppo": (sb3_phase, 1_000, "episodes"),
    "grpo": (grpo_phase, 100, "iterations"),
}


# ---------------------------------------------------------------------- analysis
def fit(progress: list[int], rss: list[float], warmup: float) -> tuple[float, float, int]:
    """Least-squares line through the samples at or after ``warmup`` of the run.

    Returns ``(slope in MB per unit, intercept in MB, index of the first fitted sample)``.

    >>> fit([0, 10, 20, 30, 40], [50.0, 70.0, 81.0, 82.0, 83.0], warmup=0.5)
    (0.1, 79.0, 2)
    """
    start = next(i for i, p in enumerate(progress) if p >= warmup * progress[-1] and p > 0)
    x, y = np.asarray(progress[start:], dtype=float), np.asarray(rss[start:], dtype=float)
    if len(x) < 2:
        return 0.0, float(y[0]), start
    slope, intercept = np.polyfit(x, y, 1)
    return round(float(slope), 12), round(float(intercept), 9), start


def summarize(phase: str, sampler: Sampler, warmup: float) -> dict[str, Any]:
    """One result row: RSS before, after warm-up, at the end and at its peak; the fitted slope."""
    _, per, unit = RUNNERS[phase]
    slope, intercept, start = fit(sampler.progress, sampler.rss, warmup)
    first, last = sampler.progress[start], sampler.progress[-1]
    return {
        "phase": phase,
        "units": f"{last:,} {unit}",
        "samples": len(sampler.progress),
        "before MB": sampler.rss[0],
        "start MB": sampler.rss[start],
        "end MB": sampler.rss[-1],
        "peak MB": max(sampler.rss),
        "slope": slope * per,
        "slope per": f"MB per {per:,} {unit}",
        "MB per unit": slope,
        "fit growth MB": slope * (last - first),
        "BLEU cache entries": bleu_cache_entries(),
        "warmup samples": start,
        "intercept MB": intercept,
        "progress": sampler.progress,
        "rss MB": [round(r, 3) for r in sampler.rss],
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """RSS against progress, one panel per phase, with the warm-up shaded and the fitted line."""
    from benchmarks.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.2), squeeze=False)
    for ax, row in zip(axes[0], rows):
        x, y, start = np.asarray(row["progress"]), np.asarray(row["rss MB"]), row["warmup samples"]
        ax.axvspan(0, x[start], color="0.9", label="warm-up (not fitted)")
        ax.plot(x, y, ".-", color="tab:blue", lw=1, ms=3, label="RSS")
        fitted = x[start:]
        ax.plot(
            fitted,
            row["intercept MB"] + row["MB per unit"] * fitted,
            color="tab:red",
            label=f"fit: {row['slope']:+.3g} {row['slope per']}",
        )
        ax.set_title(row["phase"])
        ax.set_xlabel(row["units"].split(" ", 1)[1])
        ax.set_ylabel("RSS (MB)")
        ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path, dpi=120)


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    # markdown_table prints floats over 100 without decimals; RSS wants 0.1 MB, slopes a sign.
    out = {k: f"{row[k]:.1f}" if k.endswith(" MB") else row[k] for k in COLUMNS}
    return {**out, "slope": f"{row['slope']:+.3f}"}


def main(args: Args) -> list[dict[str, Any]]:
    torch.manual_seed(args.seed)
    set_threads(args.threads)
    rows = []
    for phase in args.phases:
        print(f"--- {phase} (RSS {rss_mb():.1f} MB)", flush=True)
        rows.append(summarize(phase, RUNNERS[phase][0](args), args.warmup))
        print({k: rows[-1][k] for k in COLUMNS}, flush=True)
    name = "soak" + ("_quick" if args.quick else "")
    trimmed = " and malloc_trim(0)" if args.trim else ""
    header = (
        f"RSS (MB) after gc.collect(){trimmed}; slope of a least-squares line over the samples after the first "
        f"{args.warmup:.0%} of each phase; {torch.get_num_threads()} torch threads. BLEU cache entries: sacrebleu's "
        "tokenizer cache at the end of the phase (process-wide, so cumulative; it stops at 65,536).\n\n"
    )
    table = markdown_table([_rounded(row) for row in rows], COLUMNS)
    path = write_report(args.out, name, args, rows, header + table)
    plot(rows, Path(args.out) / f"{name}.png")
    print(f"\n{header}{table}\n\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main(parse_args(Args))
