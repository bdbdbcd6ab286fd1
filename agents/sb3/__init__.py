"""The Stable-Baselines3 adapter: ``LMPolicy`` for stock PPO and A2C, ``MaskableLMPolicy`` for sb3-contrib's MaskablePPO.

- :mod:`~agents.sb3.policy`: ``LMPolicy``, an ``ActorCriticPolicy`` over an ``LMActorCritic`` with
  a per-env KV cache for rollouts and shared-prefix evaluation for updates.
- :mod:`~agents.sb3.maskable`: ``MaskableLMPolicy``, the same policy for ``MaskablePPO`` (the one
  module that imports sb3-contrib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "LMPolicy": "agents.sb3.policy",
    "MaskableLMPolicy": "agents.sb3.maskable",
}

if TYPE_CHECKING:  # the exports' types, for type checkers and IDEs
    from agents.sb3.maskable import MaskableLMPolicy
    from agents.sb3.policy import LMPolicy

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
