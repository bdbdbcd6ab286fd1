"""Saving, loading and rewinding a trainer: exact resume, and a clean stop on a signal.

:class:`PersistenceMixin` gives :class:`~agents.trainers.base.TrainerBase` SB3's ``save`` and
``load`` (the archive itself is :mod:`agents.trainers.checkpoint`'s job), and the three things
``learn`` needs to stop on Ctrl-C without losing or half-counting work (see
:mod:`agents.trainers.interrupts`): a snapshot of what a rollout changes before it is complete, a
rewind to it, and the final checkpoint with the command that resumes it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, TypeVar

import torch

from agents.modeling.loading import resolve_device
from agents.trainers.archive import member_errors
from agents.trainers.checkpoint import (
    CheckpointError,
    archive_path,
    read_archive,
    restore_rng,
    restore_trainer_state,
    rng_state,
    schedule_from_json,
    trainer_state,
    write_archive,
)
from agents.trainers.interrupts import TrainingInterrupted

__all__ = ["AUTO", "PersistenceMixin", "check_resumable"]

AUTO = "auto"
"""``learn(checkpoint_on_interrupt=AUTO)``: save to ``<ClassName>_interrupted.zip`` in the working folder."""

Snapshot = tuple[int, dict[str, torch.Tensor], dict[str, Any]]
T = TypeVar("T", bound="PersistenceMixin")


class PersistenceMixin:
    """``save``/``load`` and the interrupt bookkeeping of a trainer.

    Mixed into :class:`~agents.trainers.base.TrainerBase`, whose attributes it reads (``policy``,
    ``optimizer``, ``num_timesteps``, the random generators...). Subclasses that keep state across
    iterations override :meth:`_extra_state` and :meth:`_load_extra_state`.
    """

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str], *, resumable: bool = True) -> Path:
        """Write a checkpoint that resumes this run exactly; see :mod:`agents.trainers.checkpoint`.

        The archive holds the model (``save_pretrained``), every setting, the optimizer's state,
        every random state (torch, numpy, python, the trainer's and the envs'), the counters, the
        KL controller, the frozen reference when there is one, and the logs' history. It is
        written to exactly ``path`` (``.zip`` added only when ``path`` has no suffix),
        atomically. A setting that cannot be stored (a custom reward function or learning-rate
        schedule) is named in a warning, and :meth:`load` asks for it. Only the main process
        writes under ``accelerate``. Stray temporaries of killed saves beside ``path`` are removed.

        Args:
            path: Where to write.
            resumable: False writes the weights, settings, counters and logs only (about a third
                of the size with AdamW): :meth:`load` reads it, and training from it goes on
                with a fresh optimizer and random states, not exactly where it stopped.

        Returns:
            The path written.
        """
        target = archive_path(path)
        if not self._is_main:
            return target
        state, tensors, unsaved = trainer_state(self, resumable=resumable)
        if unsaved:
            warnings.warn(
                f"{type(self).__name__}.save({str(target)!r}) cannot store {', '.join(unsaved)}; "
                "pass them again to load().",
                stacklevel=2,
            )
        return write_archive(target, self.policy, state, tensors)

    def save_or_rescue(self, path: str | os.PathLike[str], *, resumable: bool = True) -> Path:
        """:meth:`save` to ``path``; if that fails (a full disk, a folder gone), to a fallback path, printed.

        The weights are in memory until a save succeeds: a failed final save must not lose a
        trained model. The fallbacks are ``~/.cache/text_gym/rescued/`` and the system's
        temporary folder, under ``<run_id>-<name>``.

        Raises:
            OSError: Every save failed; the message lists the paths tried.
        """
        target = archive_path(path)
        try:
            return self.save(target, resumable=resumable)
        except OSError as error:
            errors = [f"{target}: {error}"]
        name = f"{self.run_id}-{target.name}"
        for fallback in (Path.home() / ".cache" / "text_gym" / "rescued" / name, Path(tempfile.gettempdir()) / name):
            print(f"Saving {target} failed ({errors[-1]}); saving to {fallback} instead.", file=sys.stderr, flush=True)
            try:
                saved = self.save(fallback, resumable=resumable)
            except OSError as error:
                errors.append(f"{fallback}: {error}")
                continue
            print(f"Saved to {saved} (not {target}): move it where you want it.", file=sys.stderr, flush=True)
            return saved
        raise OSError(f"Could not save {type(self).__name__} anywhere: {'; '.join(errors)}.")

    @classmethod
    def load(
        cls: type[T], path: str | os.PathLike[str], env: Any = None, device: str | torch.device = "auto", **kwargs: Any
    ) -> T:
        """Rebuild a trainer saved by :meth:`save`, ready to ``learn(..., reset_num_timesteps=False)``.

        Args:
            path: The checkpoint (``.zip`` added only when it has no suffix).
            env: The env to train on; by default the saved env id with the saved env kwargs.
            device: As in the constructor.
            **kwargs: Override saved settings (config fields, ``env_kwargs``, ``verbose``...);
                required for settings the checkpoint could not store.

        Raises:
            FileNotFoundError: No checkpoint at ``path``.
            CheckpointError: It was saved by another trainer class, is incomplete, damaged or
                hostile (a stored env id with a ``module:`` part, settings out of range: see
                :mod:`agents.trainers.checkpoint_checks`), lacks a setting that must be passed
                again, or needs a tokenizer that is not available. The message names the member.
        """
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

    def _extra_state(self) -> dict[str, Any]:
        """Hook: JSON-able state a subclass keeps across iterations (SequencePPO's KL coefficient)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Hook: restore what :meth:`_extra_state` returned."""

    # ------------------------------------------------------------------ interrupts
    def _snapshot(self) -> Snapshot:
        """What a rollout changes before it is complete: the step count and the random states."""
        return (self.num_timesteps, *rng_state(self._np_random, self._generator))

    def _rewind(self, snapshot: Snapshot) -> None:
        """Undo an abandoned rollout: back to the step count and random states of ``snapshot``."""
        self.num_timesteps, tensors, meta = snapshot
        restore_rng(self._np_random, self._generator, tensors, meta)

    def _interrupted(
        self, signum: int, where: str | os.PathLike[str] | None, total_timesteps: int, then: str | None = None
    ) -> None:
        """Save the last complete step to ``where`` (``AUTO``: the default name; None: nowhere), then raise.

        ``then`` is what to call on the loaded trainer to go on (default: ``learn`` for the rest).
        """
        path = None
        if where is not None:
            path = self.save_or_rescue(f"{type(self).__name__}_interrupted.zip" if where == AUTO else where)
        remaining = max(total_timesteps - self.num_timesteps, 1)
        then = then or f"learn({remaining}, reset_num_timesteps=False)"
        raise TrainingInterrupted(signum, path, f"{type(self).__name__}.load({str(path)!r}).{then}")


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
