"""Sequence-level trainers with the SB3 API (GRPO, SequencePPO) and the machinery they share.

- :mod:`~agents.trainers.grpo`, :mod:`~agents.trainers.sequence_ppo`: the algorithms, each with
  its config dataclass; each overrides the advantages (``_prepare``) and the loss (``_loss``).
- :mod:`~agents.trainers.on_policy`: ``OnPolicyTrainer``, the loop as SB3's ``OnPolicyAlgorithm``
  (``learn``: collect a rollout, ``train`` on it in minibatches, log, checkpoint).
- :mod:`~agents.trainers.base`: ``TrainerBase``, what every trainer holds (settings, model, env,
  logger, every attribute declared in ``__init__``) and the public API, whose ``save``/``load``,
  ``predict`` and ``warm_start`` delegate in one line to the plain modules below.
- :mod:`~agents.trainers.rollout`: ``collect_rollout``, whole episodes with one batched KV cache,
  into a ``RolloutBatch`` that carries its group layout (``group_size``, ``seeds``).
- :mod:`~agents.trainers.scoring`: log-probs, values and entropy of a rollout's replies.
- :mod:`~agents.trainers.losses`: PPO's clipped surrogate and its ratio statistics, which both
  algorithms' losses start from.
- :mod:`~agents.trainers.reference`: the frozen KL reference and its log-probs.
- :mod:`~agents.trainers.predict`: ``Predictor``, SB3's ``predict`` on the baseline agents' KV-cached path.
- :mod:`~agents.trainers.supervised`: teacher forcing on references;
  :mod:`~agents.trainers.warm_start`: ``warm_start`` around it (signals, selection, reference).
- :mod:`~agents.trainers.persistence`: ``save``/``load`` and the rewind behind safe interrupts;
  :mod:`~agents.trainers.checkpoint`: the checkpoint's layout;
  :mod:`~agents.trainers.trainer_state`: what a trainer stores in it
  (:mod:`~agents.trainers.archive`: the zip format; :mod:`~agents.trainers.checkpoint_checks`: what a
  stored setting may be); :mod:`~agents.trainers.periodic`: periodic checkpoints;
  :mod:`~agents.trainers.interrupts`: signal handling (safe Ctrl-C).
- :mod:`~agents.trainers.config`: ``TrainerConfig``, the settings all trainers share.
- :mod:`~agents.trainers.envs`: the vector env a trainer plays and its ``EnvLayout``.
- :mod:`~agents.trainers.callbacks`: SB3 callbacks for trainers (a token progress bar).
- :mod:`~agents.trainers.loggers`: SB3 loggers without temporary folders; a ``progress.csv``
  that a resumed run extends.
- :mod:`~agents.trainers.selection`: checkpoint selection on validation.

One GRPO iteration, file by file (``GRPO.learn(n)``: four files, and two helpers):

1. ``on_policy.py``: ``OnPolicyTrainer.learn`` loops ``_iterate`` until ``n`` tokens;
   ``collect_rollouts`` draws one reset seed per group of ``group_size`` envs, repeated, so a
   group's envs draw one prompt.
2. ``rollout.py``: ``collect_rollout`` decodes whole episodes in the vector env (the env,
   ``text_gym``, pays the rewards) with one batched KV cache, running a group's shared prompt
   once (``scoring.py``'s ``shared_prompt_groups`` and ``repeat_cache``); it returns a
   ``RolloutBatch`` with the rollout's log-probs, its ``group_size`` and its ``seeds``.
3. ``grpo.py``: ``collect_rollouts`` adds, with ``baseline="scst"``, the greedy replies' returns.
   Then ``on_policy.py``'s ``train`` calls ``grpo.py``'s ``_prepare``: ``group_advantages`` over
   the batch's groups (``scst_advantages`` or ``risk_advantages`` with those baselines) and,
   with ``beta > 0``, the reference's log-probs (``reference.py``).
4. ``on_policy.py``: epochs of minibatches that keep groups whole (``minibatch_order``); each
   micro-batch's loss is ``grpo.py``'s ``_loss``: ``_score`` runs ``scoring.py``'s
   ``score_tokens``, ``losses.py``'s ``clipped_surrogate`` clips the ratios and the k3 KL is
   added; then gradient clipping and one optimizer step per minibatch. ``_log_iteration`` records
   the statistics on the SB3 logger, ``learn`` dumps it and, when asked, saves a periodic
   checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "GRPO": "agents.trainers.grpo",
    "GRPOConfig": "agents.trainers.grpo",
    "SequencePPO": "agents.trainers.sequence_ppo",
    "SequencePPOConfig": "agents.trainers.sequence_ppo",
    "OnPolicyTrainer": "agents.trainers.on_policy",
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
    from agents.trainers.on_policy import OnPolicyTrainer
    from agents.trainers.periodic import PeriodicCheckpoints
    from agents.trainers.sequence_ppo import SequencePPO, SequencePPOConfig

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
