"""What a checkpoint's ``trainer.json`` may say: every stored setting checked before it is used.

A checkpoint is data, never code, and never a way to exhaust the machine. So the settings a
checkpoint stores pass the checks the constructor and the command line apply, plus bounds on size
that an honest run never reaches:

- the env id must be registered, without a ``module:`` part (Gymnasium imports that module to
  find the env: a stored id must not run code). A run on such an env is resumed by passing the
  env again, explicitly (``load(path, env="module:Env-v0")``);
- counts are ints in range (``n_envs`` at most :data:`MAX_STORED_ENVS`: each sub-env holds a
  tokenizer and a task), counters and seeds are non-negative ints, the learning rate is a number
  or a known schedule;
- the records the trainer restores (optimizer groups, random states, histories) have the types
  it reads.

Settings passed to ``load`` by the caller are theirs to choose and are checked only as the
constructor checks them.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.trainers.archive import CheckpointError, member_errors

__all__ = ["MAX_STORED_ENVS", "SCHEDULES", "check_env_id", "check_stored_state"]

MAX_STORED_ENVS = 4096
"""The most sub-envs a stored run may ask for (pass ``n_envs=`` to ``load`` for more)."""
_MAX_EPISODES = 1 << 20  # batch sizes, window sizes
_MAX_EPOCHS = 10_000
_MAX_COUNTER = 1 << 53  # exact in a float, as the logs write counters
SCHEDULES = ("LinearSchedule", "ConstantSchedule")
"""The learning-rate schedules a checkpoint may name (the SB3 classes :func:`schedule_to_json` stores)."""
_ENV_ID = re.compile(r"[A-Za-z0-9_\-./]+")
_MEMBER = "trainer.json"


def check_env_id(target: Path, env_id: Any) -> None:
    """Refuse a stored env id that would import a module, or is not registered; None (an env object) passes."""
    if env_id is None:
        return
    if not isinstance(env_id, str) or ":" in env_id or not _ENV_ID.fullmatch(env_id):
        raise CheckpointError(
            f"{target}: member {_MEMBER} names the env {env_id!r}; a checkpoint may only name a registered env id "
            "without a 'module:' part, since Gymnasium would import that module (run its code) to find the env. "
            "If you trust the module, pass the env yourself: load(path, env='module:Env-v0')."
        )
    if env_id not in gym.registry:
        raise CheckpointError(
            f"{target}: member {_MEMBER} names the env {env_id!r}, which is not registered here; import the module "
            "that registers it, then pass the env to load(path, env=...)."
        )


def check_stored_state(target: Path, state: Any, trainer_class: Any = None, *, env_given: bool = False) -> None:
    """Raise :class:`CheckpointError` naming ``target`` and the setting unless ``state`` is what a save writes.

    Args:
        target: The archive (for the message).
        state: Its parsed ``trainer.json``.
        trainer_class: The loading trainer class; when given, the checkpoint must be one of its
            runs, and the stored config must build its ``config_class``.
        env_given: The caller passes the env, so the stored id is not used (and not checked).
    """
    if not isinstance(state, dict) or not isinstance(state.get("class"), str):
        _refuse(target, "the file", "a JSON object with a 'class'", type(state).__name__)
    if trainer_class is not None and state["class"] != trainer_class.__name__:
        name, saved = trainer_class.__name__, state["class"]
        raise CheckpointError(f"{target}: expected a saved {name}, got a saved {saved}; use {saved}.load.")
    if not env_given:
        check_env_id(target, state.get("env_id"))
    config = _typed(target, state, "config", dict, {})
    _check_config(target, config, getattr(trainer_class, "config_class", None))
    for name, value in (state.get("counters") or {}).items():
        _int_in(target, f"counters.{name}", value, 0, _MAX_COUNTER)
    run_id = state.get("run_id")
    if run_id is not None and not (isinstance(run_id, str) and re.fullmatch(r"[0-9a-f]{1,64}", run_id)):
        _refuse(target, "run_id", "a hex string", run_id)
    if state.get("seed") is not None:
        _int_in(target, "seed", state["seed"], 0, 2**32 - 1)
    env_kwargs = _typed(target, state, "env_kwargs", dict, {})
    for name in ("max_new_tokens", "max_prompt_tokens"):
        if env_kwargs.get(name) is not None:
            _int_in(target, f"env_kwargs.{name}", env_kwargs[name], 1, _MAX_COUNTER)
    task = env_kwargs.get("task")
    if task is not None and not isinstance(task, str) and not _str_dict(task):
        _refuse(target, "env_kwargs.task", "a task name, a path or {split: path}", task)
    _check_records(target, state)


def _check_config(target: Path, config: dict[str, Any], config_class: Any) -> None:
    lr = config.get("learning_rate")
    if isinstance(lr, dict):
        fields = {k: v for k, v in lr.items() if k != "schedule"}
        if lr.get("schedule") not in SCHEDULES or not all(_is_number(v) for v in fields.values()):
            _refuse(target, "config.learning_rate", f"a number or a schedule in {list(SCHEDULES)}", lr)
    elif lr is not None and not _is_number(lr):
        _refuse(target, "config.learning_rate", "a number or a known schedule", lr)
    caps = {"n_envs": MAX_STORED_ENVS, "group_size": MAX_STORED_ENVS, "n_epochs": _MAX_EPOCHS}
    caps |= {"batch_size": _MAX_EPISODES, "micro_batch_size": _MAX_EPISODES, "stats_window_size": _MAX_EPISODES}
    for name, cap in caps.items():
        if config.get(name) is not None:
            _int_in(target, f"config.{name}", config[name], 1, cap)
    if config_class is None:
        return
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(config) - fields)
    if unknown:
        _refuse(target, "config", f"fields of {config_class.__name__}", f"unknown fields {unknown}")
    # A schedule was checked above; the config checks the rest (a stand-in rate keeps it from rebuilding one).
    stored = {k: 1.0 if k == "learning_rate" and isinstance(v, dict) else v for k, v in config.items() if v is not None}
    with member_errors(target, _MEMBER, "holds settings its trainer refuses"):
        config_class(**stored)


def _check_records(target: Path, state: dict[str, Any]) -> None:
    """The records restored as they are: their types, so that a damaged one is named, not a KeyError."""
    if "optimizer" in state:
        optimizer = _typed(target, state, "optimizer", dict, None)
        if not isinstance(optimizer.get("param_groups"), list) or not isinstance(optimizer.get("scalars"), dict):
            _refuse(target, "optimizer", "{'param_groups': [...], 'scalars': {...}}", optimizer)
        rng = _typed(target, state, "rng", dict, None)
        shapes = {"numpy": (list, 4), "python": (list, 3), "trainer": (dict, None)}
        for key, (kind, length) in shapes.items():
            value = rng.get(key)
            if not isinstance(value, kind) or length is not None and len(value) != length:
                _refuse(target, f"rng.{key}", f"a {kind.__name__}" + (f" of {length}" if length else ""), value)
        _typed(target, state, "env_rng", list, [])
        _typed(target, state, "extra", dict, {})
    for name in ("history", "supervised_history"):
        rows = _typed(target, state, name, list, [])
        if not all(isinstance(row, dict) and all(_is_number(v) for v in row.values()) for row in rows):
            _refuse(target, name, "a list of {name: number} rows", "other values")
    episodes = _typed(target, state, "episodes", dict, {"returns": [], "lengths": []})
    for key in ("returns", "lengths"):
        if not isinstance(episodes.get(key), list) or not all(_is_number(v) for v in episodes[key]):
            _refuse(target, f"episodes.{key}", "a list of numbers", episodes.get(key))
    warm = state.get("warm_start")
    if warm is not None:
        _check_warm_start(target, warm)
    unsaved = _typed(target, state, "unsaved", list, [])
    if not all(isinstance(item, str) for item in unsaved):
        _refuse(target, "unsaved", "a list of strings", unsaved)


def _check_warm_start(target: Path, warm: Any) -> None:
    """A warm start in progress: its budget and progress (the sample order is checked against the task on load)."""
    if not isinstance(warm, dict):
        _refuse(target, "warm_start", "a JSON object or null", warm)
    if warm.get("total_tokens") is not None:
        _int_in(target, "warm_start.total_tokens", warm["total_tokens"], 1, _MAX_COUNTER)
    for name in ("max_seconds", "learning_rate", "cpu_seconds"):
        if warm.get(name) is not None and not _is_number(warm[name]):
            _refuse(target, f"warm_start.{name}", "a number", warm[name])
    _int_in(target, "warm_start.batch_size", warm.get("batch_size"), 1, _MAX_EPISODES)
    for name in ("tokens", "steps"):
        _int_in(target, f"warm_start.{name}", warm.get(name), 0, _MAX_COUNTER)
    if not isinstance(warm.get("order"), list) or len(warm["order"]) > _MAX_COUNTER:
        _refuse(target, "warm_start.order", "a list of sample indices", warm.get("order"))
    for name in ("rng", "optimizer"):
        if not isinstance(warm.get(name), dict):
            _refuse(target, f"warm_start.{name}", "a JSON object", warm.get(name))


def _typed(target: Path, state: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    if key not in state and default is not None:
        return default
    value = state.get(key)
    if not isinstance(value, kind):
        _refuse(target, key, f"a {kind.__name__}", value)
    return value


def _int_in(target: Path, name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        _refuse(target, name, f"an int in [{low}, {high}]", value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _str_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _refuse(target: Path, name: str, expected: str, got: Any) -> None:
    shown = repr(got)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise CheckpointError(f"{target}: member {_MEMBER}: {name}: expected {expected}, got {shown}.")
