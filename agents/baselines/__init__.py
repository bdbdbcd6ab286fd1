"""Baseline agents: random tokens, greedy / sampled / beam-searched LM replies, copying the input, and the reference.

Every agent has the interface of an SB3 model, so evaluation code treats them alike:

- ``predict(observation, state=None, episode_start=None, deterministic=False)`` takes one
  observation or a batch (``input_ids`` of shape ``(S,)`` or ``(B, S)``) and returns
  ``(actions, state)``;
- ``act(observations, action_masks=None, deterministic=False)`` is the batched core: ``(B,)``
  token ids for ``(B, S)`` observations;
- ``reset(infos, rows=None)`` tells the agent that episodes started (with their reset infos);
  only the scripted agents (:class:`ReferenceAgent`, :class:`CopyPromptAgent`) need it.

They emit one token per ``env.step``, so the reward they get is the env's reward;
:func:`agents.evaluation.run_episodes` plays whole episodes. The LM agents reuse a KV cache across steps
(:class:`~agents.modeling.kv_cache.RolloutKVCache`), so each step costs about one ``generate`` step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Agent": "agents.baselines.base",
    "Observation": "agents.baselines.base",
    "RandomAgent": "agents.baselines.base",
    "BeamSearchLMAgent": "agents.baselines.lm",
    "GreedyLMAgent": "agents.baselines.lm",
    "SamplingLMAgent": "agents.baselines.lm",
    "CopyPromptAgent": "agents.baselines.scripted",
    "ReferenceAgent": "agents.baselines.scripted",
    "ScriptedAgent": "agents.baselines.scripted",
}

if TYPE_CHECKING:  # the exports' types, for type checkers and IDEs
    from agents.baselines.base import Agent, Observation, RandomAgent
    from agents.baselines.lm import BeamSearchLMAgent, GreedyLMAgent, SamplingLMAgent
    from agents.baselines.scripted import CopyPromptAgent, ReferenceAgent, ScriptedAgent

# The LM agents import torch and transformers: loaded only when asked for.
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
