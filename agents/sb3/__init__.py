"""The Stable-Baselines3 adapter: ``LMPolicy`` for stock PPO and A2C, ``MaskableLMPolicy`` for sb3-contrib's MaskablePPO.

- :mod:`~agents.sb3.policy`: ``LMPolicy``, an ``ActorCriticPolicy`` over an ``LMActorCritic`` with
  a per-env KV cache for rollouts and shared-prefix evaluation for updates.
- :mod:`~agents.sb3.maskable`: ``MaskableLMPolicy``, the same policy for ``MaskablePPO`` (the one
  module that imports sb3-contrib).
"""
