"""Environment steps per second of a random agent, 1 and 64 envs, sparse and delta shaping.

    python -m benchmarks.env_throughput                  # TextGen-v0 with the SmolLM2 tokenizer
    python -m benchmarks.env_throughput --quick          # a few seconds, tiny tokenizer

The random agent steps the envs itself rather than through :mod:`agents.evaluation`: this
measures the env alone, with no model in the loop. Every configuration runs in the same process, one after another, and the table reports each one's
cost relative to a step of the language model (``model.generate`` with its KV cache, same batch),
so the figures read as ratios that survive a noisy shared machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

import text_gym  # noqa: F401  (registers the environments)
from benchmarks.common import markdown_table, parse_args, write_report
from text_gym.errors import check_positive_int


@dataclass
class Args:
    """Arguments of the environment throughput benchmark."""

    env_id: str = field(default="TextGen-v0", metadata={"help": "registered environment id"})
    tokenizer: str = field(default="smollm2-135m", metadata={"help": "tokenizer preset of the env"})
    num_envs: list = field(default_factory=lambda: [1, 64], metadata={"help": "vector sizes to measure"})
    shapings: list = field(default_factory=lambda: ["sparse", "delta"], metadata={"help": "reward shapings"})
    seconds: float = field(default=5.0, metadata={"help": "wall time per configuration"})
    lm: str = field(
        default="smollm2-135m", metadata={"help": "model whose generate() step is the yardstick; '' to skip"}
    )
    out: str = field(default="benchmarks/results", metadata={"help": "folder for env_throughput.json/.md"})
    quick: bool = field(default=False, metadata={"help": "copy task, tiny tokenizer and model, 1 s per configuration"})

    def __post_init__(self) -> None:
        if self.quick:  # the copy task: qa prompts are too long for the byte-level tiny tokenizer
            self.env_id, self.tokenizer, self.lm, self.seconds = "TextGen-Copy-v0", "tiny", "tiny", 1.0
        for num_envs in self.num_envs:
            check_positive_int("num_envs", num_envs)
        if not self.seconds > 0:
            raise ValueError(f"seconds: expected a positive number, got {self.seconds!r}.")


def steps_per_second(args: Args, num_envs: int, shaping: str) -> float:
    """Run a random agent on a sync vector env for ``args.seconds``; return env steps per second."""
    envs = gym.make_vec(
        args.env_id, num_envs=num_envs, vectorization_mode="sync", tokenizer=args.tokenizer, reward_shaping=shaping
    )
    rng = np.random.default_rng(0)
    n = int(envs.single_action_space.n)
    envs.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < args.seconds:
        for _ in range(32):
            envs.step(rng.integers(n, size=num_envs))
        steps += 32 * num_envs
    envs.close()
    return steps / elapsed


def lm_step_seconds(model_name: str, batch: int) -> float:
    """Seconds per new token of ``model.generate`` (KV cache) at this batch size: the yardstick."""
    import torch

    from agents.modeling.loading import load_model

    model = load_model(model_name)
    # Random ids past the special tokens, within the vocabulary (the tiny model has 258 ids).
    prompt = torch.randint(10, min(1000, model.config.vocab_size), (batch, 48))
    kwargs = dict(do_sample=False, min_new_tokens=32, max_new_tokens=32, pad_token_id=0)
    with torch.no_grad():
        model.generate(prompt, **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
        start = time.perf_counter()
        model.generate(prompt, **kwargs)
    return (time.perf_counter() - start) / 32


def main(args: Args) -> list[dict]:
    rows = []
    for num_envs in args.num_envs:
        lm_step = lm_step_seconds(args.lm, num_envs) if args.lm else None
        for shaping in args.shapings:
            rate = steps_per_second(args, num_envs, shaping)
            row = {"env": args.env_id, "num_envs": num_envs, "shaping": shaping, "env steps/s": rate}
            if lm_step is not None:
                # One LM step produces num_envs tokens; the env needs num_envs / rate seconds for them.
                row["env cost vs LM step"] = f"{100 * (num_envs / rate) / lm_step:.2f}%"
            rows.append(row)
            print(row, flush=True)
    table = markdown_table(rows)
    path = write_report(args.out, "env_throughput", args, rows, table)
    print(f"\n{table}\n\nwritten to {path}")
    return rows


if __name__ == "__main__":
    main(parse_args(Args))
