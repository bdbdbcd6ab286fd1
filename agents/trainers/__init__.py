"""Sequence-level trainers with the SB3 API (GRPO, SequencePPO) and the machinery they share.

- :mod:`~agents.trainers.grpo`, :mod:`~agents.trainers.sequence_ppo`: the algorithms, each with
  its config dataclass.
- :mod:`~agents.trainers.base`: ``TrainerBase``, the SB3-shaped ``learn`` loop (rollout, update,
  log), built from the mixins below.
- :mod:`~agents.trainers.update`: one update on a rollout (minibatches, accumulation, clipping).
- :mod:`~agents.trainers.predict`: SB3's ``predict``, on the baseline agents' KV-cached path.
- :mod:`~agents.trainers.supervised`: teacher forcing on references (``warm_start``).
- :mod:`~agents.trainers.persistence`: ``save``/``load`` and the rewind behind safe interrupts;
  :mod:`~agents.trainers.checkpoint`: a trainer's state in an archive
  (:mod:`~agents.trainers.archive`: the format; :mod:`~agents.trainers.checkpoint_checks`: what a
  stored setting may be); :mod:`~agents.trainers.periodic`: periodic checkpoints;
  :mod:`~agents.trainers.interrupts`: signal handling (safe Ctrl-C).
- :mod:`~agents.trainers.config`: ``TrainerConfig``, the settings all trainers share.
- :mod:`~agents.trainers.envs`: the vector env a trainer plays and its ``EnvLayout``.
- :mod:`~agents.trainers.rollout`: ``collect_rollout``, whole episodes with one batched KV cache.
- :mod:`~agents.trainers.scoring`: log-probs, values and entropy of a rollout's replies.
- :mod:`~agents.trainers.callbacks`: SB3 callbacks for trainers (a token progress bar).
- :mod:`~agents.trainers.loggers`: SB3 loggers without temporary folders; a ``progress.csv``
  that a resumed run extends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "GRPO": "agents.trainers.grpo",
    "GRPOConfig": "agents.trainers.grpo",
    "SequencePPO": "agents.trainers.sequence_ppo",
    "SequencePPOConfig": "agents.trainers.sequence_ppo",
    "TrainerBase": "agents.trainers.base",
    "TrainerConfig": "agents.trainers.config",
    "TrainingInterrupted": "agents.trainers.interrupts",
    "PeriodicCheckpoints": "agents.trainers.periodic",
}

if TYPE_CHECKING:
    from agents.trainers.base import TrainerBase
    from agents.trainers.config import TrainerConfig
    from agents.trainers.grpo import GRPO, GRPOConfig
    from agents.trainers.interrupts import TrainingInterrupted
    from agents.trainers.periodic import PeriodicCheckpoints
    from agents.trainers.sequence_ppo import SequencePPO, SequencePPOConfig

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "GRPO",
    "GRPOConfig",
    "PeriodicCheckpoints",
    "SequencePPO",
    "SequencePPOConfig",
    "TrainerBase",
    "TrainerConfig",
    "TrainingInterrupted",
]
