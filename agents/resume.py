"""What ``python -m agents.train --resume`` takes from a checkpoint, and which given flags contradict it.

A resumed run is the run that was saved: its algorithm, model, env, task, reward, trainer
settings and seed come from the checkpoint (:data:`CHECKPOINT_FLAGS`). Repeating one of those
flags with the saved value is fine (re-running the first command with ``--resume`` added
works); giving another value is an error that names each contradiction, since silently training
something else than the user asked for, or than the log says, is worse than stopping.
``--micro-batch-size`` may change (it trades memory for time, not results), as may everything
about evaluation, checkpoints and output. Parsing the flags is :mod:`agents.train_args`'s job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.trainers.base import TrainerBase
from agents.trainers.checkpoint import CheckpointError, read_settings
from agents.trainers.grpo import GRPO
from agents.trainers.sequence_ppo import SequencePPO

__all__ = ["ALGOS", "CHECKPOINT_FLAGS", "ENV_FLAGS", "checkpoint_settings", "contradictions"]

ALGOS: dict[str, type[TrainerBase]] = {"grpo": GRPO, "ppo": SequencePPO}

CHECKPOINT_FLAGS = (
    "algo", "model", "lora", "env", "task", "reward", "max_new_tokens", "max_prompt_tokens", "prompt_truncation",
    "n_envs", "group_size", "learning_rate", "n_epochs", "batch_size", "kl", "temperature", "seed",
    "warm_start_tokens", "warm_start_lr", "baseline", "sft_coef", "risk_alpha", "candidates",
)  # fmt: skip
"""The settings ``--resume`` takes from the checkpoint (``warm_start_*``: the warm start is over)."""

ENV_FLAGS = ("task", "reward", "max_new_tokens", "max_prompt_tokens", "prompt_truncation")


def checkpoint_settings(path: str | Path) -> dict[str, Any]:
    """The command line's settings that a checkpoint determines, by ``dest`` name (a setting it lacks is absent).

    An env keyword argument the run left to the env is None, as when its flag is not given.

    Raises:
        FileNotFoundError: No checkpoint at ``path``.
        CheckpointError: It is not one, or not one that this command line can continue.
    """
    state, model = read_settings(path)
    algo = next((name for name, cls in ALGOS.items() if cls.__name__ == state["class"]), None)
    if algo is None or not state.get("env_id"):
        what = f"a saved {state['class']}" if algo is None else "a run on an env object, not a registered env id"
        raise CheckpointError(f"{path} holds {what}; continue it in Python with its class's load(path, env=...).")
    config, env_kwargs = state["config"], state.get("env_kwargs", {})
    history = state.get("supervised_history") or []
    saved = {
        "algo": algo,
        "model": model.get("model") or env_kwargs.get("tokenizer"),
        "lora": int((model.get("lora") or {}).get("r", 0)),
        "env": state["env_id"],
        **{name: env_kwargs.get(name) for name in ENV_FLAGS},
        "kl": config.get("beta" if algo == "grpo" else "kl_coef"),
        "seed": state.get("seed"),
        "warm_start_tokens": int(history[-1].get("supervised/tokens", 0)) if history else 0,
    }
    if algo == "grpo":
        saved["baseline"] = config.get("baseline", "group")
        saved["sft_coef"] = config.get("sft_coef", 0.0)
        saved["risk_alpha"] = config.get("risk_alpha", 1.0)
        saved["candidates"] = config.get("candidates", "sample")
    for name in ("n_envs", "group_size", "learning_rate", "n_epochs", "batch_size", "temperature"):
        if name in config and (name != "group_size" or algo == "grpo"):
            saved[name] = config[name]
    return saved


def _agrees(name: str, given: Any, saved: dict[str, Any]) -> bool:
    """Whether a flag given with ``--resume`` says what the checkpoint says."""
    value = saved[name]
    if name == "warm_start_tokens":  # the warm start runs to the first batch past the count: compare whether
        return (given > 0) == (value > 0)
    if name == "env":  # stored without the module that registered it
        given = given.rsplit(":", 1)[-1]
    if name == "task" and given is not None:  # stored as absolute paths: compare the files, not their spelling
        given = {k: _abspath(v) for k, v in given.items()} if isinstance(given, dict) else _abspath(given)
    if value is None and name in ENV_FLAGS:  # the run left it to the env: compare with the registered default
        value = gym.spec(saved["env"]).kwargs.get(name) if saved["env"] in gym.registry else None
    return given == value


def _abspath(task: str) -> str:
    return os.path.abspath(task) if task.endswith(".jsonl") else task


def _shown(saved: dict[str, Any], name: str) -> str:
    if saved[name] is None and name in ENV_FLAGS:
        return "the env's default"
    if name == "warm_start_tokens":
        return f"a warm start on {saved[name]} tokens" if saved[name] else "no warm start"
    return repr(saved[name])


def contradictions(given: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """The given flags (by ``dest`` name) that say otherwise than the checkpoint's ``saved`` settings, described."""
    return [
        f"--{name.replace('_', '-')} {given[name]!r} (the checkpoint's: {_shown(saved, name)})"
        for name in CHECKPOINT_FLAGS
        if name in given and name in saved and not _agrees(name, given[name], saved)
    ]
