"""Peak resident memory of training, one fresh process per configuration.

    python -m benchmarks.memory --threads 1     # SmolLM2-135M: GRPO LoRA, GRPO full, the README's SB3 recipe
    python -m benchmarks.memory --quick         # the tiny model, seconds: checks the script

Each configuration runs in its own ``python -m benchmarks.memory --child NAME`` process, so one
cannot inherit another's allocator arenas or loaded weights, and reports its peak RSS (the
kernel's high-water mark, ``ru_maxrss``), its RSS once the model is loaded, and the CPU time of
its ``learn`` call. Configurations:

- ``grpo-lora``: GRPO, LoRA r=16, batch 16 (4 prompts x 4 replies), 32 new tokens, one iteration.
- ``grpo-full``: the same, training every weight (the KL reference is a frozen copy when
  ``kl_coef > 0``; here ``kl_coef=0`` as in GRPO's default, so there is none).
- ``sb3-readme``: the README's Stable-Baselines3 recipe as written (PPO + ``LMPolicy`` with LoRA on
  ``TextGen-Copy-v0``, 8 envs), ``learn`` of one rollout.
- ``-lowmem`` variants: the same with gradient checkpointing and ``MALLOC_MMAP_THRESHOLD_=262144``
  in the child's environment: glibc then returns freed buffers above 256 kB to the system at once,
  instead of keeping them in a heap that fragments (more page faults, so more CPU time).

Peak RSS includes the Python interpreter and the imported libraries (about 0.5 GB for torch,
transformers and SB3), which the ``loaded`` column shows before training starts.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import text_gym  # noqa: F401  (registers the environments)
from benchmarks.common import markdown_table, parse_args, rss_bytes, set_threads, write_report

# The README's SB3 recipe (README.md, "Agents"); kept equal to it by tests/benchmarks/test_memory.py.
SB3_README = {
    "env_id": "TextGen-Copy-v0",
    "n_envs": 8,
    "n_steps": 64,
    "batch_size": 512,
    "n_epochs": 1,
    "learning_rate": 1e-4,
    "lora": {"r": 16},
    "gradient_checkpointing": True,
}
CONFIGS = ("grpo-lora", "grpo-lora-lowmem", "grpo-full", "sb3-readme", "sb3-readme-lowmem")
# "-lowmem": gradient checkpointing, and glibc told to return freed buffers above 256 kB to the
# system (its dynamic mmap threshold otherwise keeps freed activations in a fragmented heap).
LOWMEM_ENV = {"MALLOC_MMAP_THRESHOLD_": "262144"}


@dataclass
class Args:
    """Arguments of the memory benchmark."""

    model: str = field(default="smollm2-135m", metadata={"help": "model preset (also the env's tokenizer)"})
    configs: list = field(default_factory=lambda: list(CONFIGS), metadata={"help": "which configurations to run"})
    n_envs: int = field(default=16, metadata={"help": "GRPO episodes per iteration"})
    max_new_tokens: int = field(default=32, metadata={"help": "GRPO reply budget"})
    threads: int = field(default=0, metadata={"help": "torch threads in each child (0: torch's default)"})
    child: str = field(default="", metadata={"help": "internal: run this one configuration and print JSON"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for memory.json/.md"})
    quick: bool = field(default=False, metadata={"help": "tiny model: a smoke test of the script"})

    def __post_init__(self) -> None:
        if self.quick:
            self.model, self.n_envs, self.max_new_tokens = "tiny", 4, 8
        unknown = sorted(set(self.configs) - set(CONFIGS) | ({self.child} - {""} - set(CONFIGS)))
        if unknown:
            raise ValueError(f"configs: expected some of {list(CONFIGS)}, got unknown {unknown}.")


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far, in bytes (``ru_maxrss`` is in kB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def _grpo(args: Args, lora: bool, checkpointing: bool) -> Any:
    from agents.trainers.grpo import GRPO

    return GRPO(
        args.model,
        "TextGen-v0",
        env_kwargs={"tokenizer": args.model, "max_new_tokens": args.max_new_tokens},
        policy_kwargs={"lora": {"r": 16} if lora else None, "gradient_checkpointing": checkpointing},
        n_envs=args.n_envs,
        group_size=4,
        n_epochs=1,
        verbose=0,
        seed=0,
    )


def _sb3_readme(args: Args) -> tuple[Any, int]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents.sb3.policy import LMPolicy

    cfg = SB3_README
    env_kwargs = {"render_mode": None, **({"tokenizer": args.model} if args.quick else {})}
    env = make_vec_env(cfg["env_id"], n_envs=cfg["n_envs"], env_kwargs=env_kwargs, seed=0)
    model = PPO(
        LMPolicy,
        env,
        policy_kwargs={
            "model": args.model,
            "lora": cfg["lora"],
            "gradient_checkpointing": cfg["gradient_checkpointing"],
        },
        n_steps=cfg["n_steps"],
        batch_size=cfg["batch_size"],
        n_epochs=cfg["n_epochs"],
        learning_rate=cfg["learning_rate"],
        seed=0,
        verbose=0,
    )
    return model, cfg["n_envs"] * cfg["n_steps"]


def run_child(args: Args) -> dict[str, Any]:
    """Build configuration ``args.child``, train it for one iteration; return its memory and CPU time."""
    set_threads(args.threads)
    if args.child.startswith("sb3-readme"):
        model, steps = _sb3_readme(args)
    else:
        lora, checkpointing = args.child.startswith("grpo-lora"), args.child.endswith("-lowmem")
        model, steps = _grpo(args, lora, checkpointing), 1
    loaded = rss_bytes()
    start = time.process_time()
    model.learn(steps)
    return {
        "config": args.child,
        "loaded MB": loaded / 2**20,
        "peak MB": peak_rss_bytes() / 2**20,
        "learn CPU-s": time.process_time() - start,
        "timesteps": int(model.num_timesteps),
    }


def main(args: Args) -> list[dict[str, Any]]:
    if args.child:
        print(json.dumps(run_child(args)), flush=True)
        return []
    rows = []
    for name in args.configs:
        print(f"--- {name}", flush=True)
        command = [sys.executable, "-m", "benchmarks.memory", "--child", name, "--model", args.model]
        command += ["--n-envs", str(args.n_envs), "--max-new-tokens", str(args.max_new_tokens)]
        command += ["--threads", str(args.threads), "--quick" if args.quick else "--no-quick"]
        env = {**os.environ, **(LOWMEM_ENV if name.endswith("-lowmem") else {})}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"configuration {name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    table = markdown_table(rows)
    header = (
        f"{args.model}: peak RSS of one fresh process per configuration; GRPO batch {args.n_envs}, "
        f"{args.max_new_tokens} new tokens; threads {args.threads or 'default'}\n\n"
    )
    name = "memory_quick" if args.quick else "memory"
    path = write_report(args.out, name, args, rows, header + table)
    print(f"\n{header}{table}\n\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main(parse_args(Args))
