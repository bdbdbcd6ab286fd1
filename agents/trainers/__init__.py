"""Sequence-level trainers with the SB3 API (GRPO, SequencePPO) and the machinery they share.

- :mod:`~agents.trainers.grpo`, :mod:`~agents.trainers.sequence_ppo`: the algorithms, each with
  its config dataclass.
- :mod:`~agents.trainers.base`: ``TrainerBase``, the SB3-shaped ``learn`` loop (rollout, update,
  log), built from the mixins below.
- :mod:`~agents.trainers.update`: one update on a rollout (minibatches, accumulation, clipping).
- :mod:`~agents.trainers.predict`: SB3's ``predict``, on the baseline agents' KV-cached path.
- :mod:`~agents.trainers.supervised`: teacher forcing on references (``warm_start``).
- :mod:`~agents.trainers.persistence`: ``save``/``load`` and the rewind behind safe interrupts;
  :mod:`~agents.trainers.checkpoint`: the archive format and periodic checkpoints;
  :mod:`~agents.trainers.interrupts`: signal handling (safe Ctrl-C).
- :mod:`~agents.trainers.config`: ``TrainerConfig``, the settings all trainers share.
- :mod:`~agents.trainers.envs`: the vector env a trainer plays and its ``EnvLayout``.
- :mod:`~agents.trainers.rollout`: ``collect_rollout``, whole episodes with one batched KV cache.
- :mod:`~agents.trainers.scoring`: log-probs, values and entropy of a rollout's replies.
- :mod:`~agents.trainers.callbacks`: SB3 callbacks for trainers (a token progress bar).
"""
