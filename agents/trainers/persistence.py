"""Saving, loading and rewinding a trainer: exact resume, and a clean stop on a signal.

Plain functions that take the trainer: :func:`save` and :func:`load` (SB3's ``save``/``load``,
which :class:`~agents.trainers.base.TrainerBase` delegates to; the archive itself is
:mod:`agents.trainers.checkpoint`'s job), and the three things ``learn`` needs to stop on Ctrl-C
without losing or half-counting work (see :mod:`agents.trainers.interrupts`): a
:func:`snapshot` of what a rollout changes before it is complete, a :func:`rewind` to it, and
the final checkpoint with the command that resumes it (:func:`interrupted`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from agents.modeling.loading import resolve_device
from agents.trainers.archive import member_errors
from agents.trainers.checkpoint import CheckpointError, archive_path, read_archive, write_archive
from agents.trainers.interrupts import TrainingInterrupted
from agents.trainers.trainer_state import (
    restore_rng,
    restore_trainer_state,
    rng_state,
    schedule_from_json,
    trainer_state,
)

__all__ = ["AUTO", "check_resumable", "interrupted", "load", "rewind", "save", "save_or_rescue", "snapshot"]

AUTO = "auto"
"""``learn(checkpoint_on_interrupt=AUTO)``: save to ``<ClassName>_interrupted.zip`` in the working folder."""

Snapshot = tuple[int, dict[str, torch.Tensor], dict[str, Any]]


# ---------------------------------------------------------------------------------- save / load
def save(trainer: Any, path: str | os.PathLike[str], *, resumable: bool = True) -> Path:
    """Write ``trainer`` to ``path`` (see :meth:`TrainerBase.save`); only the main process writes."""
    target = archive_path(path)
    if not trainer._is_main:
        return target
    state, tensors, unsaved = trainer_state(trainer, resumable=resumable)
    if unsaved:
        warnings.warn(
            f"{type(trainer).__name__}.save({str(target)!r}) cannot store {', '.join(unsaved)}; "
            "pass them again to load().",
            stacklevel=3,
        )
    return write_archive(target, trainer.policy, state, tensors)


def save_or_rescue(trainer: Any, path: str | os.PathLike[str], *, resumable: bool = True) -> Path:
    """:func:`save` to ``path``; if that fails (a full disk, a folder gone), to a fallback path, printed.

    The weights are in memory until a save succeeds: a failed final save must not lose a
    trained model. The fallbacks are ``~/.cache/text_gym/rescued/`` and the system's
    temporary folder, under ``<run_id>-<name>``.

    Raises:
        OSError: Every save failed; the message lists the paths tried.
    """
    target = archive_path(path)
    try:
        return trainer.save(target, resumable=resumable)
    except OSError as error:
        errors = [f"{target}: {error}"]
    name = f"{trainer.run_id}-{target.name}"
    for fallback in (Path.home() / ".cache" / "text_gym" / "rescued" / name, Path(tempfile.gettempdir()) / name):
        print(f"Saving {target} failed ({errors[-1]}); saving to {fallback} instead.", file=sys.stderr, flush=True)
        try:
            saved = trainer.save(fallback, resumable=resumable)
        except OSError as error:
            errors.append(f"{fallback}: {error}")
            continue
        print(f"Saved to {saved} (not {target}): move it where you want it.", file=sys.stderr, flush=True)
        return saved
    raise OSError(f"Could not save {type(trainer).__name__} anywhere: {'; '.join(errors)}.")


def load(cls: Any, path: str | os.PathLike[str], env: Any, device: str | torch.device, **kwargs: Any) -> Any:
    """Rebuild a trainer of class ``cls`` from ``path`` (see :meth:`TrainerBase.load`)."""
    target = archive_path(path)
    model, state, tensors = read_archive(target, resolve_device(device), cls, env_given=env is not None)
    config, others, env_kwargs = _saved_settings(cls.config_class, state, kwargs)
    check_resumable(target, state, config, env_kwargs, env)
    env = env if env is not None else state.get("env_id")
    others.setdefault("seed", state.get("seed"))
    trainer = cls(model, env, device=device, env_kwargs=env_kwargs or None, **others, **config)
    with member_errors(target, "trainer_state.safetensors", "does not fit the trainer"):
        restore_trainer_state(trainer, state, tensors)
    return trainer


# ---------------------------------------------------------------------------------- interrupts
def snapshot(trainer: Any) -> Snapshot:
    """What a rollout changes before it is complete: the step count and the random states."""
    return (trainer.num_timesteps, *rng_state(trainer._np_random, trainer._generator))


def rewind(trainer: Any, saved: Snapshot) -> None:
    """Undo an abandoned rollout: back to the step count and random states of ``saved``."""
    trainer.num_timesteps, tensors, meta = saved
    restore_rng(trainer._np_random, trainer._generator, tensors, meta)


def interrupted(
    trainer: Any, signum: int, where: str | os.PathLike[str] | None, total_timesteps: int, then: str | None = None
) -> None:
    """Save the last complete step to ``where`` (``AUTO``: the default name; None: nowhere), then raise.

    ``then`` is what to call on the loaded trainer to go on (default: ``learn`` for the rest).
    """
    name, path = type(trainer).__name__, None
    if where is not None:
        path = trainer.save_or_rescue(f"{name}_interrupted.zip" if where == AUTO else where)
    remaining = max(total_timesteps - trainer.num_timesteps, 1)
    then = then or f"learn({remaining}, reset_num_timesteps=False)"
    raise TrainingInterrupted(signum, path, f"{name}.load({str(path)!r}).{then}")


def _saved_settings(
    config_class: Any, state: dict[str, Any], overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split a checkpoint's settings, with ``load``'s overrides applied: ``(config, other kwargs, env_kwargs)``."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    config = {
        k: schedule_from_json(v) if k == "learning_rate" else v for k, v in state["config"].items() if v is not None
    }
    config.update({k: v for k, v in overrides.items() if k in fields})
    others = {k: v for k, v in overrides.items() if k not in fields}
    env_kwargs = {**state.get("env_kwargs", {}), **(others.pop("env_kwargs", None) or {})}
    return config, others, env_kwargs


def check_resumable(
    target: Path, state: dict[str, Any], config: dict[str, Any], env_kwargs: dict[str, Any], env: Any
) -> None:
    """Refuse, with the fix, a load that would silently train with other settings than the saved run."""
    missing = []
    for item in state.get("unsaved", []):
        name = item.split("=", 1)[0]
        if name.startswith("env_kwargs["):
            key = name[len("env_kwargs['") : -2]
            if key not in env_kwargs and env is None:
                missing.append(f"env_kwargs={{{key!r}: ...}} (it was {item.split('=', 1)[1]})")
        elif name not in config:
            missing.append(f"{name}=... (it was {item.split('=', 1)[1]})")
    if missing:
        raise CheckpointError(
            f"{target} was saved with settings that cannot be stored; pass {', '.join(missing)} to load()."
        )
    tokenizer = env_kwargs.get("tokenizer")
    if isinstance(tokenizer, str):
        from text_gym.tokenization import TOKENIZER_PRESETS

        if tokenizer not in TOKENIZER_PRESETS and not Path(tokenizer).is_dir():
            raise CheckpointError(
                f"{target} was trained with tokenizer {tokenizer!r}, which is neither a preset {list(TOKENIZER_PRESETS)} nor a "
                "folder here; pass env_kwargs={'tokenizer': ...} with the same tokenizer."
            )
