"""SB3's ``predict`` for a trainer, on the same KV-cached next-token path as the baseline LM agents.

Outside training (SB3's ``evaluate_policy``, ``EvalCallback``, a user's own loop) a trainer is
asked for one token at a time, each time with the whole observation. Rather than run the model
over that whole sequence, :class:`Predictor` hands it to a
:class:`~agents.baselines.SamplingLMAgent` over the trainer's policy, whose
:class:`~agents.modeling.kv_cache.RolloutKVCache` recognises an observation that grew by one
token and runs only that token. So one episode loop serves the trainers and the baselines alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.baselines.lm import SamplingLMAgent
from agents.trainers.envs import EnvLayout

__all__ = ["Predictor"]


class Predictor:
    """SB3's ``predict`` for a trainer's policy, on a KV-cached :class:`~agents.baselines.SamplingLMAgent`.

    A trainer holds one and calls :meth:`weights_changed` whenever its weights change (the
    update, the warm start and checkpoint selection do), which drops the cached keys and values.

    Args:
        policy: The trainer's ``LMActorCritic``.
        temperature: The trainer's sampling temperature.
        seed: Seeds the agent's own generator (apart from training's), or None.
    """

    def __init__(self, policy: Any, temperature: float, seed: int | None) -> None:
        self.policy, self.temperature, self.seed = policy, temperature, seed
        self._agent: SamplingLMAgent | None = None  # made by the first predict(): a trainer may never predict

    @property
    def agent(self) -> SamplingLMAgent:
        """The agent that :meth:`predict` asks, made on first use."""
        if self._agent is None:
            self._agent = SamplingLMAgent(self.policy, temperature=self.temperature, seed=self.seed)
        return self._agent

    def weights_changed(self) -> None:
        """The policy's weights just changed: drop the keys and values cached with the old ones."""
        if self._agent is not None:
            self._agent.kv_cache.clear()

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any,
        deterministic: bool,
        action_masks: np.ndarray | None,
        layout: EnvLayout | None,
    ) -> tuple[np.ndarray, Any]:
        """The next token of each observation, over the env's real tokens (``layout``) and ``action_masks``."""
        masks = allowed_tokens(observation, action_masks, layout)
        self.policy.eval()
        return self.agent.predict(observation, state, None, deterministic, masks)


def allowed_tokens(
    observation: dict[str, np.ndarray], action_masks: np.ndarray | None, layout: EnvLayout | None
) -> np.ndarray | None:
    """``(..., V)`` allowed actions: the env's real tokens, and ``action_masks`` when given."""
    if layout is None:
        return action_masks
    real = np.arange(layout.num_actions) < layout.vocab_limit  # (V,): ids past it are not tokens
    allowed = real if action_masks is None else np.logical_and(action_masks, real)
    return np.broadcast_to(allowed, (*np.shape(observation["input_ids"])[:-1], real.size)).copy()
