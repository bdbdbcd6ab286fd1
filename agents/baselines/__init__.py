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

from typing import Any

from agents.baselines.base import Agent, Observation, RandomAgent
from agents.baselines.lm import BeamSearchLMAgent, GreedyLMAgent, SamplingLMAgent
from agents.baselines.scripted import CopyPromptAgent, ReferenceAgent, ScriptedAgent

__all__ = [
    "Agent",
    "BeamSearchLMAgent",
    "CopyPromptAgent",
    "GreedyLMAgent",
    "Observation",
    "RandomAgent",
    "ReferenceAgent",
    "SamplingLMAgent",
    "ScriptedAgent",
]


def __getattr__(name: str) -> Any:
    if name == "run_episodes":  # lived here before 0.2; the one episode loop is in agents.evaluation
        from agents._moved import warn_moved
        from agents.evaluation import run_episodes

        warn_moved("agents.baselines.run_episodes", "agents.evaluation.run_episodes")
        globals()["run_episodes"] = run_episodes  # `from agents.baselines import run_episodes` looks twice
        return run_episodes
    raise AttributeError(f"module 'agents.baselines' has no attribute {name!r}")
