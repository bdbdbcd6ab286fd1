"""Trainer checkpoints: one ``.zip`` that resumes a run exactly, written atomically, read without unpickling.

This module is the checkpoint's layout (which members, in which format); what goes into
``trainer.json`` and ``trainer_state.safetensors`` is :mod:`agents.trainers.trainer_state`'s job,
and the zip itself (limits, hashes) :mod:`agents.trainers.archive`'s.

An archive holds::

    model/                     LMActorCritic.save_pretrained (safetensors weights, JSON options)
    trainer.json               class, config, env kwargs, counters, RNG states that are numbers, history
    trainer_state.safetensors  optimizer moments and RNG states that are tensors

plus ``manifest.json``, the SHA-256 of every member. Nothing in it is a pickle: a checkpoint
from someone else is untrusted input, so tensors are safetensors and the rest JSON, the archive
is read under limits with its hashes checked (:mod:`agents.trainers.archive`), and every stored
setting is checked before use (:mod:`agents.trainers.checkpoint_checks`). The archive is
written to a temporary file beside the target and moved into place (:mod:`agents.atomic`), so
an interrupted save leaves the previous checkpoint intact. Paths are exact: ``save("model.v1")`` writes ``model.v1`` (``.zip`` is added only to a
path without a suffix, as SB3 does), and ``load`` reads exactly that file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from agents.trainers.archive import Archive, CheckpointError, archive_path, member_errors, staging_folder, write_folder
from agents.trainers.checkpoint_checks import check_stored_state

__all__ = ["ARCHIVE_MEMBERS", "CheckpointError", "archive_path", "read_archive", "read_settings", "write_archive"]

ARCHIVE_MEMBERS = ("trainer.json", "model/actor_critic.json")
"""Members every archive must have; ``trainer_state.safetensors`` is optional (archives before resume support)."""
_STATE_FILE = "trainer_state.safetensors"


def write_archive(
    path: str | os.PathLike[str], policy: Any, state: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``policy`` (``save_pretrained``), ``state`` (JSON) and ``tensors`` (safetensors) to ``path`` atomically."""
    from safetensors.torch import save_file

    target = archive_path(path)
    with staging_folder(target) as tmp:
        policy.save_pretrained(tmp / "model")
        (tmp / "trainer.json").write_text(json.dumps(state, indent=2))
        if tensors:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / _STATE_FILE)
        write_folder(target, tmp)
    return target


def read_archive(
    path: str | os.PathLike[str], device: torch.device, trainer_class: Any = None, *, env_given: bool = False
) -> tuple[Any, dict[str, Any], dict[str, torch.Tensor]]:
    """Return the ``LMActorCritic`` (float32), the JSON state and the tensors that :func:`write_archive` stored.

    The archive is checked (:class:`~agents.trainers.archive.Archive`: limits, hashes) and so are
    its settings (:func:`~agents.trainers.checkpoint_checks.check_stored_state`) before any of it
    is used.

    Args:
        path: The checkpoint.
        device: Where the model goes.
        trainer_class: The loading trainer class, whose run the checkpoint must be.
        env_given: The caller passes the env, so the stored env id is not used.

    Raises:
        FileNotFoundError: No file at ``archive_path(path)``.
        CheckpointError: The file is not a checkpoint, is damaged or hostile; the message names the member.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from agents.modeling.lm import LMActorCritic

    target = archive_path(path)
    with Archive(target) as archive:
        archive.require(ARCHIVE_MEMBERS)
        state = archive.read_json("trainer.json")
        check_stored_state(target, state, trainer_class, env_given=env_given)
        if "optimizer" in state and _STATE_FILE not in archive.names:
            raise CheckpointError(
                f"{target} is incomplete: member {_STATE_FILE} (the optimizer and random states) is missing."
            )
        with tempfile.TemporaryDirectory() as tmp:
            archive.extract(Path(tmp))
            tensors = {}
            if _STATE_FILE in archive.names:
                with member_errors(target, _STATE_FILE, "is not a safetensors file", (SafetensorError,)):
                    tensors = load_file(os.path.join(tmp, _STATE_FILE))
            with member_errors(target, "model/", "does not load", (SafetensorError,)):
                model = LMActorCritic.from_pretrained(os.path.join(tmp, "model"), device=device, dtype=torch.float32)
    return model, state, tensors


def read_settings(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON state and the model's options (``model/actor_critic.json``) of an archive, without its weights.

    What a command line needs to know about a run before loading it: the trainer class, config,
    env id and kwargs, seed, counters, and the model it started from (``"model"``, ``"lora"``).
    Both are checked as :func:`read_archive` checks them.

    Raises:
        FileNotFoundError: No file at ``archive_path(path)``.
        CheckpointError: The file is not a checkpoint, is damaged or hostile.
    """
    target = archive_path(path)
    with Archive(target) as archive:
        archive.require(ARCHIVE_MEMBERS)
        state = archive.read_json("trainer.json")
        check_stored_state(target, state)
        model = archive.read_json("model/actor_critic.json")
    if not isinstance(model, dict):
        raise CheckpointError(f"{target}: member model/actor_critic.json: expected a JSON object, got {model!r}.")
    return state, model
