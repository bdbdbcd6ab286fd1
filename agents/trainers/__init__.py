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
- :mod:`~agents.trainers.losses`: PPO's clipped surrogate and its ratio statistics, which both
  algorithms' losses start from.

One GRPO iteration, file by file (``GRPO.learn(n)``; today's structure, mixins included):

1. ``base.py``: ``TrainerBase.learn`` loops ``_iterate`` (one rollout, one update) until ``n``
   tokens; ``_collect`` asks ``grpo.py``'s ``_reset_seeds`` for one seed per group, repeated, so
   a group's envs draw one prompt.
2. ``rollout.py``: ``collect_rollout`` decodes whole episodes in the vector env (``envs.py``
   describes its layout; the env, ``text_gym``, pays the rewards) with one batched KV cache,
   running a group's shared prompt once (``scoring.py``'s ``shared_prompt_groups`` and
   ``repeat_cache``); it returns a ``RolloutBatch`` with the rollout's log-probs.
3. ``update.py``: ``UpdateMixin.train`` (a mixin of ``TrainerBase``) calls ``grpo.py``'s
   ``_prepare``: ``group_advantages`` per group and, with ``beta > 0``, the reference's
   log-probs (``update.py``'s ``_reference_logprobs``, through ``scoring.py``).
4. ``update.py``: epochs of minibatches that keep groups whole (``_minibatch_order``); each
   micro-batch's loss is ``grpo.py``'s ``_loss``: ``_score`` (``update.py``) runs
   ``scoring.py``'s ``score_tokens``, ``losses.py``'s ``clipped_surrogate`` clips the ratios,
   and the k3 KL is added; then gradient clipping and one optimizer step per minibatch. After
   the epochs, ``predict.py``'s ``_weights_changed`` drops the prediction cache.
5. ``base.py``: ``_log_iteration`` records the rollout and update statistics on the SB3 logger
   (``loggers.py``); ``learn`` dumps it and, when asked, saves a periodic checkpoint
   (``checkpoint.py``).
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

if TYPE_CHECKING:  # the exports' types, for type checkers and IDEs
    from agents.trainers.base import TrainerBase
    from agents.trainers.config import TrainerConfig
    from agents.trainers.grpo import GRPO, GRPOConfig
    from agents.trainers.interrupts import TrainingInterrupted
    from agents.trainers.periodic import PeriodicCheckpoints
    from agents.trainers.sequence_ppo import SequencePPO, SequencePPOConfig

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
