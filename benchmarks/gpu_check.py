"""Run the CUDA paths end to end on one GPU, in about 8 minutes, and write what happened as JSON.

    python -m benchmarks.gpu_check              # or: make gpu-check
    python -m benchmarks.gpu_check --device cpu --model tiny --no-throughput   # the script itself, on a CPU

Checks, each timed and recorded (``ok`` or ``failed`` with the error), one after another:

1. ``lmpolicy-ppo``: stock SB3 PPO with ``LMPolicy`` on CUDA (bf16 weights): ``learn`` of two
   rollouts; the weights live on the GPU and change; the rollout KV cache gives the uncached outputs.
2. ``grpo-bf16``: GRPO with bf16 autocast (float32 master weights): two iterations, finite losses.
3. ``save-resume``: GRPO saved after one iteration and resumed equals an uninterrupted run
   bit for bit (the checkpoint holds the CUDA random states); deterministic kernels are requested.
4. ``warm-start``: teacher forcing on the training env's references lowers the loss.
5. ``evaluator``: :func:`agents.evaluation.evaluate` with a greedy agent on the GPU.
6. ``trainer-throughput``: :mod:`benchmarks.trainer_throughput` on the same GPU (against TRL's
   GRPOTrainer when it is installed), its tables written next to this report.

Without CUDA (and ``--device cuda``) nothing runs: the report says ``"skipped: no CUDA"`` and the
exit code is 2, so a skip is never read as a pass. Exit code 1: a check failed; 0: all passed.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import text_gym  # noqa: F401  (registers the environments)
from benchmarks.common import markdown_table, parse_args, write_report

SKIPPED = "skipped: no CUDA"
EXIT_SKIPPED = 2


@dataclass
class Args:
    """Arguments of the GPU check."""

    model: str = field(default="smollm2-135m", metadata={"help": "model preset (also the env's tokenizer)"})
    device: str = field(default="cuda", metadata={"help": "cuda, or cpu to test the script itself"})
    throughput: bool = field(default=True, metadata={"help": "run benchmarks.trainer_throughput too"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for gpu_check.json/.md"})

    def __post_init__(self) -> None:
        if self.device not in ("cuda", "cpu"):
            raise ValueError(f"device: expected 'cuda' or 'cpu', got {self.device!r}.")


def _env_kwargs(args: Args) -> dict[str, Any]:
    # chrF scores partial matches, so even a random model's replies differ in reward and GRPO's
    # group advantages are not all zero.
    return {"tokenizer": args.model, "max_new_tokens": 8, "reward": "chrf"}


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters() if p.requires_grad]


def _grpo(args: Args, **kwargs: Any) -> Any:
    from agents.trainers.grpo import GRPO

    settings: dict[str, Any] = dict(n_envs=8, group_size=4, learning_rate=1e-5, seed=0, verbose=0)
    settings.update(kwargs)
    return GRPO(args.model, "TextGen-Copy-v0", env_kwargs=_env_kwargs(args), device=args.device, **settings)


def check_lmpolicy_ppo(args: Args) -> dict[str, Any]:
    """SB3 PPO + LMPolicy: two rollouts and updates on the device; the KV cache agrees with no cache."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents.sb3.policy import LMPolicy

    kwargs = {**_env_kwargs(args), "render_mode": None}
    env = make_vec_env("TextGen-Copy-v0", n_envs=4, env_kwargs=kwargs, seed=0)
    policy_kwargs = {"model": args.model, "lora": {"r": 8}, "device": args.device}
    model = PPO(
        LMPolicy,
        env,
        n_steps=16,
        batch_size=64,
        n_epochs=1,
        learning_rate=1e-4,
        policy_kwargs=policy_kwargs,
        device=args.device,
    )
    before = _weights(model.policy)
    model.learn(128)
    assert model.policy.actor_critic.device.type == args.device, f"expected the LM on {args.device}"
    changed = sum(not torch.equal(a, b) for a, b in zip(before, _weights(model.policy), strict=True))
    assert changed, "expected PPO to change the trainable weights, none changed"
    obs = {k: torch.as_tensor(v, device=args.device).float() for k, v in env.reset().items()}
    with torch.no_grad():
        model.policy.set_training_mode(False)
        model.policy.get_distribution(obs)  # fills the cache; the next call is a cache hit
        cached = model.policy.get_distribution(obs).distribution.probs
        model.policy.use_kv_cache = False
        plain = model.policy.get_distribution(obs).distribution.probs
    gap = float((cached - plain).abs().max())
    assert gap < 0.05, f"expected the cached next-token probabilities to match the uncached ones, max gap {gap}"
    env.close()
    return {"dtype": str(next(model.policy.parameters()).dtype), "tensors changed": changed, "cache gap": gap}


def check_grpo_bf16(args: Args) -> dict[str, Any]:
    """GRPO under bf16 autocast (on CUDA; on a CPU as configured): finite losses, weights change."""
    trainer = _grpo(args, bf16=args.device == "cuda")
    before = _weights(trainer.policy)
    trainer.learn(2 * 8 * 8)
    losses = [row["train/policy_gradient_loss"] for row in trainer.history]
    assert all(torch.isfinite(torch.tensor(losses))), f"expected finite losses, got {losses}"
    assert any(not torch.equal(a, b) for a, b in zip(before, _weights(trainer.policy), strict=True))
    return {"autocast": str(trainer.autocast_dtype), "iterations": trainer.iteration, "losses": losses}


def check_save_resume(args: Args, folder: str) -> dict[str, Any]:
    """A GRPO run saved after one iteration and resumed equals an uninterrupted one, bit for bit."""
    torch.use_deterministic_algorithms(True, warn_only=True)  # only here: deterministic kernels are slower
    try:
        return _save_resume(args, folder)
    finally:
        torch.use_deterministic_algorithms(False)


def _save_resume(args: Args, folder: str) -> dict[str, Any]:
    straight = _grpo(args)
    straight.learn(64)
    straight.learn(64, reset_num_timesteps=False)
    first = _grpo(args)
    first.learn(64)
    path = first.save(os.path.join(folder, "gpu_check_resume.zip"))
    torch.rand(3, device=args.device)  # the resumed process's random states differ; the archive restores them
    resumed = type(first).load(path, device=args.device, verbose=0)
    resumed.learn(64, reset_num_timesteps=False)
    pairs = list(zip(_weights(straight.policy), _weights(resumed.policy), strict=True))
    gap = max(float((a.float() - b.float()).abs().max()) for a, b in pairs)
    assert gap == 0.0, f"expected a bit-identical resume, max weight difference {gap}"
    return {"max weight difference": gap, "iterations": resumed.iteration}


def check_warm_start(args: Args) -> dict[str, Any]:
    """Teacher forcing on the references lowers the loss."""
    trainer = _grpo(args)
    rows = trainer.warm_start(1_500, learning_rate=1e-4, batch_size=16)
    first, last = rows[0]["supervised/loss"], rows[-1]["supervised/loss"]
    assert last < first, f"expected the warm start to lower the loss, got {first} -> {last}"
    return {
        "steps": len(rows),
        "loss": [first, last],
        "tokens/CPU-s": rows[-1]["supervised/tokens"] / rows[-1]["supervised/cpu_seconds"],
    }


def check_evaluator(args: Args) -> dict[str, Any]:
    """The evaluator plays a greedy agent on the device."""
    from agents.baselines import GreedyLMAgent
    from agents.evaluation import evaluate

    trainer = _grpo(args)
    result = evaluate(GreedyLMAgent(trainer.policy), "TextGen-Copy-v0", _env_kwargs(args), n_episodes=16, verbose=False)
    return {"metrics": {k: float(v) for k, v in result.metrics.items()}}


def check_throughput(args: Args) -> dict[str, Any]:
    """benchmarks.trainer_throughput on this device (its own report goes next to this one)."""
    from benchmarks import trainer_throughput

    rows = trainer_throughput.main(trainer_throughput.Args(model=args.model, out=args.out, iterations=2))
    return {row["trainer"]: round(float(row["tokens/s"]), 1) for row in rows}


def run_checks(args: Args) -> list[dict[str, Any]]:
    """Run every check, each isolated: a failure is recorded and the next check still runs."""
    checks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("lmpolicy-ppo", lambda: check_lmpolicy_ppo(args)),
        ("grpo-bf16", lambda: check_grpo_bf16(args)),
        ("save-resume", lambda: check_save_resume(args, args.out)),
        ("warm-start", lambda: check_warm_start(args)),
        ("evaluator", lambda: check_evaluator(args)),
    ]
    if args.throughput:
        checks.append(("trainer-throughput", lambda: check_throughput(args)))
    rows = []
    for name, check in checks:
        print(f"--- {name}", flush=True)
        start = time.perf_counter()
        try:
            row = {"check": name, "status": "ok", "details": check()}
        except Exception as error:
            traceback.print_exc()
            row = {"check": name, "status": "failed", "details": f"{type(error).__name__}: {error}"}
        row["seconds"] = time.perf_counter() - start
        if args.device == "cuda":
            row["peak GPU MB"] = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
        rows.append(row)
        print(row, flush=True)
    return rows


def main(args: Args) -> int:
    """Run the checks (or record the skip); return the exit code: 0 passed, 1 a check failed, 2 skipped."""
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: {SKIPPED}. Run it on a machine with a GPU (or --device cpu to test the script).")
        write_report(args.out, "gpu_check", args, [{"check": "all", "status": SKIPPED}], SKIPPED)
        return EXIT_SKIPPED
    os.makedirs(args.out, exist_ok=True)
    # Bit-identical resumes need deterministic cuBLAS, which reads this before its first call.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    rows = run_checks(args)
    table = markdown_table([{k: v for k, v in row.items() if k != "details"} for row in rows])
    write_report(args.out, "gpu_check", args, rows, f"{args.model} on {args.device}\n\n{table}")
    print(f"\n{table}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(parse_args(Args)))
