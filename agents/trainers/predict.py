"""SB3's ``predict`` for a trainer, on the same KV-cached next-token path as the baseline LM agents.

Outside training (SB3's ``evaluate_policy``, ``EvalCallback``, a user's own loop) a trainer is
asked for one token at a time, each time with the whole observation. Rather than run the model
over that whole sequence, :class:`PredictMixin` hands it to a
:class:`~agents.baselines.SamplingLMAgent` over the trainer's policy, whose
:class:`~agents.modeling.kv_cache.RolloutKVCache` recognises an observation that grew by one
token and runs only that token. So one episode loop serves the trainers and the baselines alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.baselines.lm import SamplingLMAgent

__all__ = ["PredictMixin"]


class PredictMixin:
    """``predict`` for a trainer (mixed into :class:`~agents.trainers.base.TrainerBase`).

    It reads the trainer's ``policy``, ``config.temperature``, ``seed``, ``layout`` and autocast
    setting. :meth:`_weights_changed` must be called whenever the weights change; the update loop
    and the warm start do.
    """

    _predictor: SamplingLMAgent | None = None  # made by the first predict()

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Next token for one observation (a scalar action) or a batch of them (``(B,)``); SB3's signature.

        The policy acts as :class:`~agents.baselines.SamplingLMAgent` does: a KV cache holds each
        env's sequence, so a step of an episode runs one new token, not the whole observation.
        Sampling is at the trainer's temperature, over the env's real tokens (and
        ``action_masks`` when given, as in sb3-contrib's ``MaskablePPO``), from a generator
        seeded by ``seed`` and apart from training's: calling ``predict`` never changes a
        training run. The cache is dropped whenever the weights change (``learn``, ``train``,
        ``warm_start``); after editing ``trainer.policy`` by hand, call
        ``trainer._weights_changed()``.

        Args:
            observation: A TextGen observation, ``input_ids`` ``(S,)``, or a batch, ``(B, S)``.
            state: Passed through (the policy is not recurrent).
            episode_start: Unused: the cache compares token contents, so it sees resets itself.
            deterministic: The most likely token instead of a sample.
            action_masks: ``(V,)`` or ``(B, V)`` allowed tokens, or None.

        Returns:
            ``(action, state)``: an ``np.int64`` for one observation, ``(B,)`` for a batch.
        """
        del episode_start
        masks = self._allowed_tokens(observation, action_masks)
        self.policy.eval()
        with self._autocast():
            return self._agent.predict(observation, state, None, deterministic, masks)

    @property
    def _agent(self) -> SamplingLMAgent:
        """The agent that :meth:`predict` asks, made on first use (a trainer may never predict)."""
        if self._predictor is None:
            seed = None if self.seed is None else self.seed + self._rank
            self._predictor = SamplingLMAgent(self.policy, temperature=self.config.temperature, seed=seed)
        return self._predictor

    def _weights_changed(self) -> None:
        """The policy's weights just changed: drop the keys and values cached with the old ones."""
        if self._predictor is not None:
            self._predictor.kv_cache.clear()

    def _allowed_tokens(self, observation: dict[str, np.ndarray], action_masks: np.ndarray | None) -> np.ndarray | None:
        """``(..., V)`` allowed actions: the env's real tokens, and ``action_masks`` when given."""
        if self.layout is None:
            return action_masks
        real = np.arange(self.layout.num_actions) < self.layout.vocab_limit  # (V,): ids past it are not tokens
        allowed = real if action_masks is None else np.logical_and(action_masks, real)
        return np.broadcast_to(allowed, (*np.shape(observation["input_ids"])[:-1], real.size)).copy()
