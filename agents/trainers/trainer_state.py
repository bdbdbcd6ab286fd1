"""A trainer's state as JSON and tensors, and back: what a checkpoint must hold to resume a run exactly.

:func:`trainer_state` gathers the settings, counters, histories, optimizer moments, every random
state, the KL reference and a warm start in progress; :func:`restore_trainer_state` puts them back
into a freshly built trainer. Where they are written is :mod:`agents.trainers.checkpoint`'s job.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import numpy as np
import torch

from agents.trainers.archive import CheckpointError
from agents.trainers.reference import make_reference

__all__ = [
    "optimizer_to_tensors",
    "restore_rng",
    "restore_trainer_state",
    "rng_state",
    "schedule_from_json",
    "schedule_to_json",
    "tensors_to_optimizer",
    "trainer_state",
]


# ---------------------------------------------------------------------------------- optimizer
def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's ``state_dict`` into tensors (``optimizer.<param>.<key>``) and a JSON-able rest."""
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()} for group in state_dict["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def tensors_to_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Load what :func:`optimizer_to_tensors` split back into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------------------------- random state
def rng_state(
    trainer_rng: np.random.Generator, generator: torch.Generator
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every random state a training step reads: torch (CPU, CUDA), numpy, python, the trainer's own."""
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.generator": generator.get_state(),
        "rng.numpy": torch.as_tensor(np_keys.astype(np.int64)),
    }
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = cuda_state
    version, internal, gauss = random.getstate()
    meta = {
        "numpy": [np_name, int(np_pos), int(np_gauss), float(np_cached)],
        "python": [version, list(internal), gauss],
        "trainer": trainer_rng.bit_generator.state,
    }
    return tensors, meta


def restore_rng(
    trainer_rng: np.random.Generator, generator: torch.Generator, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Set every random state that :func:`rng_state` captured."""
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    trainer_rng.bit_generator.state = meta["trainer"]


# ---------------------------------------------------------------------------------- schedules
def schedule_to_json(value: Any) -> Any:
    """A learning rate as JSON: a float, an SB3 schedule object as ``{"schedule": name, ...}``, else None.

    >>> from stable_baselines3.common.utils import LinearSchedule
    >>> schedule_to_json(LinearSchedule(1e-3, 1e-5, 0.5))
    {'schedule': 'LinearSchedule', 'start': 0.001, 'end': 1e-05, 'end_fraction': 0.5}
    >>> schedule_to_json(lambda progress: 1e-3 * progress) is None
    True
    """
    from stable_baselines3.common import utils

    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, utils.FloatSchedule):
        return schedule_to_json(value.value_schedule)
    if isinstance(value, (utils.LinearSchedule, utils.ConstantSchedule)):
        return {"schedule": type(value).__name__, **vars(value)}
    return None


def schedule_from_json(value: Any) -> Any:
    """Rebuild what :func:`schedule_to_json` wrote."""
    from stable_baselines3.common import utils

    if isinstance(value, dict):
        kind = {"LinearSchedule": utils.LinearSchedule, "ConstantSchedule": utils.ConstantSchedule}[value["schedule"]]
        return kind(**{k: v for k, v in value.items() if k != "schedule"})
    return value


# ---------------------------------------------------------------------------------- a trainer's state
def trainer_state(trainer: Any, *, resumable: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor], list[str]]:
    """Everything :meth:`TrainerBase.load` needs to continue ``trainer`` exactly: ``(json, tensors, unsaved)``.

    ``unsaved`` names the settings that could not be stored (a reward function, a custom
    learning-rate schedule): they are recorded by ``repr`` and must be passed again to ``load``.
    With ``resumable=False``, only the settings, counters and logs: no optimizer moments, random
    states, KL reference or warm start in progress (a final model, a third of a checkpoint's size).
    """
    config, env_kwargs, unsaved = _settings(trainer)
    state = {
        "format": 2,
        "class": type(trainer).__name__,
        "run_id": trainer.run_id,
        "config": config,
        "env_id": trainer.env_id and trainer.env_id.rsplit(":", 1)[-1],  # registered by now: no module to import
        "env_kwargs": env_kwargs,
        "unsaved": unsaved,
        "seed": trainer.seed,
        "counters": {
            "num_timesteps": trainer.num_timesteps,
            "iteration": trainer.iteration,
            "n_updates": trainer._n_updates,
        },
        "episodes": {"returns": list(trainer.ep_info_buffer), "lengths": list(trainer.ep_len_buffer)},
        "history": trainer.history,
        "supervised_history": trainer.supervised_history,
    }
    if not resumable:
        return state, {}, unsaved
    optimizer_tensors, optimizer_meta = optimizer_to_tensors(trainer.optimizer)
    rng_tensors, rng_meta = rng_state(trainer._np_random, trainer._generator)
    warm_start, warm_tensors = trainer._warm_start_run.state() if trainer._warm_start_run else (None, {})
    tensors = {**optimizer_tensors, **rng_tensors, **warm_tensors}
    if trainer._reference is not None:  # a frozen copy of the start: resuming must not re-copy the trained policy
        unique: dict[int, str] = {}  # tied weights (embeddings and LM head) share memory: store them once
        for name, value in trainer._reference.state_dict().items():
            if unique.setdefault(value.data_ptr(), name) == name:
                tensors[f"reference.{name}"] = value
    sub_envs = getattr(trainer.env, "envs", None) or []
    state |= {
        "optimizer": optimizer_meta,
        "rng": rng_meta,
        "env_rng": [env.unwrapped.np_random.bit_generator.state for env in sub_envs],
        "extra": trainer._extra_state(),
        "warm_start": warm_start,  # a warm start in progress, or None
    }
    return state, tensors, unsaved


def _settings(trainer: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The config and env kwargs as JSON, and what of them cannot be stored: ``(config, env_kwargs, unsaved)``."""
    import dataclasses

    from text_gym.rewards import reward_spec

    config, unsaved = {}, []
    for field in dataclasses.fields(trainer.config):
        value = getattr(trainer.config, field.name)
        stored = schedule_to_json(value) if field.name == "learning_rate" else value
        if stored is None and value is not None or not _is_json(stored):
            unsaved.append(f"{field.name}={value!r}")
            stored = None
        config[field.name] = stored
    env_kwargs = {}
    for key, value in trainer.env_kwargs.items():
        stored = reward_spec(value) if key == "reward" and not _is_json(value) else value
        if stored is None or not _is_json(stored):
            unsaved.append(f"env_kwargs[{key!r}]={value!r}")
            continue
        env_kwargs[key] = _absolute(key, stored)
    return config, env_kwargs, unsaved


def _absolute(key: str, value: Any) -> Any:
    """Task files as absolute paths, so that a resume works from any directory."""
    if key == "task" and isinstance(value, dict):
        return {split: _absolute(key, path) for split, path in value.items()}
    if key == "task" and isinstance(value, str) and value.endswith(".jsonl"):
        return os.path.abspath(value)
    return value


def restore_trainer_state(trainer: Any, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Put the counters, optimizer, random states, reference and histories of ``state`` into ``trainer``.

    A weights-only archive (``save(..., resumable=False)``, or one from before resume support)
    restores the counters and logs; the optimizer and random states stay fresh.
    """
    counters = state.get("counters") or {
        "num_timesteps": state.get("num_timesteps", 0),
        "iteration": state.get("iteration", 0),
    }
    trainer.num_timesteps, trainer.iteration = counters["num_timesteps"], counters["iteration"]
    trainer._n_updates = counters.get("n_updates", 0)
    trainer.run_id = state.get("run_id") or trainer.run_id  # the same run, so its pruning finds its files
    trainer.history = state.get("history", [])
    trainer.supervised_history = state.get("supervised_history", [])
    trainer.ep_info_buffer.extend(state.get("episodes", {}).get("returns", []))
    trainer.ep_len_buffer.extend(state.get("episodes", {}).get("lengths", []))
    if "optimizer" not in state:  # weights and settings only
        return
    tensors_to_optimizer(trainer.optimizer, tensors, state["optimizer"])
    restore_rng(trainer._np_random, trainer._generator, tensors, state["rng"])
    for env, env_state in zip(getattr(trainer.env, "envs", None) or [], state["env_rng"], strict=False):
        env.unwrapped.np_random.bit_generator.state = env_state
    reference = {k.removeprefix("reference."): v for k, v in tensors.items() if k.startswith("reference.")}
    if reference:
        trainer._reference = make_reference(trainer.policy)  # the structure; the saved weights are loaded next
        missing, unexpected = trainer._reference.load_state_dict(reference, strict=False)
        loaded = {value.data_ptr() for name, value in trainer._reference.state_dict().items() if name in reference}
        untied = [name for name in missing if trainer._reference.state_dict()[name].data_ptr() not in loaded]
        if unexpected or untied:
            raise CheckpointError(
                f"The saved reference policy does not fit the model: missing {missing}, unexpected {unexpected}."
            )
    trainer._load_extra_state(state["extra"])
    if state.get("warm_start"):
        trainer._resume_warm_start(state["warm_start"], tensors)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
