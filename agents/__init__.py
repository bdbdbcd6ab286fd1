"""agents: language-model policies, baseline agents and trainers for text_gym.

- ``LMActorCritic`` (:mod:`agents.lm`): a causal LM with a value head; what every agent shares.
- ``LMPolicy`` (:mod:`agents.policy`): an SB3 ``ActorCriticPolicy`` for stock ``PPO``, ``A2C``
  and sb3-contrib's ``MaskablePPO``, with a per-env KV cache for fast rollouts::

      from stable_baselines3 import PPO
      from agents import LMPolicy

      model = PPO(LMPolicy, env, policy_kwargs={"model": "smollm2-135m"})

- ``SequencePPO`` and ``GRPO`` (:mod:`agents.sequence_ppo`, :mod:`agents.grpo`): sequence-level
  trainers with the SB3 API that decode whole episodes with one batched KV cache; the command
  line ``python -m agents.train`` trains and evaluates one.
- Baseline agents (:mod:`agents.baselines`): ``RandomAgent``, ``GreedyLMAgent``,
  ``SamplingLMAgent``, ``BeamSearchLMAgent`` and ``ReferenceAgent``.

Names are imported lazily, so ``import agents`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "LMActorCritic": "agents.lm",
    "LMOutput": "agents.lm",
    "LMPolicy": "agents.policy",
    "RolloutKVCache": "agents.kv_cache",
    "Agent": "agents.baselines",
    "RandomAgent": "agents.baselines",
    "GreedyLMAgent": "agents.baselines",
    "SamplingLMAgent": "agents.baselines",
    "BeamSearchLMAgent": "agents.baselines",
    "ReferenceAgent": "agents.baselines",
    "run_episodes": "agents.baselines",
    "GRPO": "agents.grpo",
    "GRPOConfig": "agents.grpo",
    "SequencePPO": "agents.sequence_ppo",
    "SequencePPOConfig": "agents.sequence_ppo",
}

if TYPE_CHECKING:
    from agents.baselines import (
        Agent,
        BeamSearchLMAgent,
        GreedyLMAgent,
        RandomAgent,
        ReferenceAgent,
        SamplingLMAgent,
        run_episodes,
    )
    from agents.grpo import GRPO, GRPOConfig
    from agents.kv_cache import RolloutKVCache
    from agents.lm import LMActorCritic, LMOutput
    from agents.policy import LMPolicy
    from agents.sequence_ppo import SequencePPO, SequencePPOConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "GRPO",
    "GRPOConfig",
    "SequencePPO",
    "SequencePPOConfig",
    "Agent",
    "BeamSearchLMAgent",
    "GreedyLMAgent",
    "LMActorCritic",
    "LMOutput",
    "LMPolicy",
    "RandomAgent",
    "ReferenceAgent",
    "RolloutKVCache",
    "SamplingLMAgent",
    "run_episodes",
]
