"""Sequence-level trainers with the SB3 API (GRPO, SequencePPO) and the machinery they share.

- :mod:`~agents.trainers.grpo`, :mod:`~agents.trainers.sequence_ppo`: the algorithms, each with
  its config dataclass.
- :mod:`~agents.trainers.base`: ``TrainerBase``, the SB3-shaped ``learn``/``predict`` loop.
- :mod:`~agents.trainers.config`: ``TrainerConfig``, the settings all trainers share.
- :mod:`~agents.trainers.envs`: the vector env a trainer plays and its ``EnvLayout``.
- :mod:`~agents.trainers.rollout`: ``collect_rollout``, whole episodes with one batched KV cache.
- :mod:`~agents.trainers.scoring`: log-probs, values and entropy of a rollout's replies.
- :mod:`~agents.trainers.supervised`: teacher forcing on references (the warm start).
- :mod:`~agents.trainers.checkpoint`, :mod:`~agents.trainers.persistence`,
  :mod:`~agents.trainers.interrupts`: exact save/resume and safe Ctrl-C.
- :mod:`~agents.trainers.callbacks`: SB3 callbacks for trainers (a token progress bar).
"""
