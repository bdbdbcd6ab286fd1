"""agents: language-model policies, baseline agents, trainers and the evaluator for text_gym.

Where things live (each folder has one job):

- :mod:`agents.modeling`: ``LMActorCritic`` (a causal LM with a value head, what every agent
  shares), model loading, token helpers and the KV cache.
- :mod:`agents.sb3`: ``LMPolicy`` for stock SB3 ``PPO`` and ``A2C``, and ``MaskableLMPolicy`` for
  sb3-contrib's ``MaskablePPO``::

      from stable_baselines3 import PPO
      from agents import LMPolicy

      model = PPO(LMPolicy, env, policy_kwargs={"model": "smollm2-135m"})

- :mod:`agents.trainers`: ``GRPO`` and ``SequencePPO``, sequence-level trainers with the SB3 API
  that decode whole episodes with one batched KV cache.
- :mod:`agents.baselines`: ``RandomAgent``, ``GreedyLMAgent``, ``SamplingLMAgent``,
  ``BeamSearchLMAgent``, ``ReferenceAgent`` and ``CopyPromptAgent``.
- :mod:`agents.evaluation`: the one evaluator (and episode loop) behind every report.
- :mod:`agents.train`: the command line, ``python -m agents.train``; :mod:`agents.demo`.

Names are imported lazily, so ``import agents`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "LMActorCritic": "agents.modeling.lm",
    "LMOutput": "agents.modeling.lm",
    "RolloutKVCache": "agents.modeling.kv_cache",
    "LMPolicy": "agents.sb3.policy",
    "MaskableLMPolicy": "agents.sb3.maskable",
    "Agent": "agents.baselines",
    "RandomAgent": "agents.baselines",
    "GreedyLMAgent": "agents.baselines",
    "SamplingLMAgent": "agents.baselines",
    "BeamSearchLMAgent": "agents.baselines",
    "ReferenceAgent": "agents.baselines",
    "CopyPromptAgent": "agents.baselines",
    "run_episodes": "agents.evaluation",
    "evaluate": "agents.evaluation",
    "GRPO": "agents.trainers.grpo",
    "GRPOConfig": "agents.trainers.grpo",
    "SequencePPO": "agents.trainers.sequence_ppo",
    "SequencePPOConfig": "agents.trainers.sequence_ppo",
}

if TYPE_CHECKING:  # the exports' types, for type checkers and IDEs
    from agents.baselines import (
        Agent,
        BeamSearchLMAgent,
        CopyPromptAgent,
        GreedyLMAgent,
        RandomAgent,
        ReferenceAgent,
        SamplingLMAgent,
    )
    from agents.evaluation import evaluate, run_episodes
    from agents.modeling.kv_cache import RolloutKVCache
    from agents.modeling.lm import LMActorCritic, LMOutput
    from agents.sb3.maskable import MaskableLMPolicy
    from agents.sb3.policy import LMPolicy
    from agents.trainers.grpo import GRPO, GRPOConfig
    from agents.trainers.sequence_ppo import SequencePPO, SequencePPOConfig


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
