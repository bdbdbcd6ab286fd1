"""The agent interface: SB3's ``predict`` on top of a batched ``act``; and the random agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

Observation = dict[str, np.ndarray]


class Agent:
    """The interface of the baseline agents (SB3-style ``predict``, batched ``act``).

    Attributes:
        deterministic: Whether the agent's replies are the same whatever the seed (evaluations
            then play it once).
    """

    deterministic: bool = False

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = False
    ) -> np.ndarray:
        """Return ``(B,)`` token ids for ``(B, S)`` observations."""
        raise NotImplementedError

    def reset(self, infos: dict[str, Any] | Sequence[dict[str, Any]], rows: Sequence[int] | None = None) -> None:
        """Note that episodes began: ``infos`` are the reset infos of env rows ``rows`` (default ``0..``)."""

    def predict(
        self,
        observation: Observation,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: one observation or a batch in, ``(actions, state)`` out."""
        batched = np.ndim(observation["input_ids"]) == 2
        obs = {k: np.atleast_2d(np.asarray(v)) for k, v in observation.items()}
        masks = None if action_masks is None else np.atleast_2d(action_masks)
        actions = self.act(obs, masks, deterministic)
        return (actions if batched else actions[0]), state


class RandomAgent(Agent):
    """Uniformly random tokens (among the ``action_masks`` ones when given).

    Args:
        action_space: The env's ``Discrete`` action space.
        seed: Seed of the agent's generator.
    """

    def __init__(self, action_space: gym.spaces.Discrete, seed: int | None = None) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(f"RandomAgent expects a Discrete action space, got {action_space}.")
        self.n = int(action_space.n)
        self.rng = np.random.default_rng(seed)

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = False
    ) -> np.ndarray:
        batch = len(observations["input_ids"])
        if action_masks is None:
            return self.rng.integers(self.n, size=batch)
        return np.array([self.rng.choice(np.flatnonzero(row)) for row in np.asarray(action_masks, bool)])
