"""Tiny vector envs for the SB3 policy tests: the tiny tokenizer, 4-token replies, optional masks."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import text_gym  # noqa: F401  (registers the environments)

ALLOWED_TOKENS = np.array([0, 97, 98, 99])  # eos, "_", "`", "a" in the tiny byte vocabulary
PROMPT_TOKENS = {"TextGen-EchoLetter-v0": 16, "TextGen-Copy-v0": 56}  # the longest prompt fits


def reply_length(prompts, outputs, references):
    """A reward that a random tiny LM earns too, so the critic gets gradients (BLEU would be 0)."""
    return [len(output) / 8 for output in outputs]


class OnlySomeTokens(gym.Wrapper):
    """Masks every action but :data:`ALLOWED_TOKENS`, to check that masks reach the policy."""

    def action_masks(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, dtype=bool)
        mask[ALLOWED_TOKENS] = True
        return mask


def _make_vec_env(env_id: str = "TextGen-EchoLetter-v0", n_envs: int = 2, masked: bool = False) -> DummyVecEnv:
    kwargs = {"tokenizer": "tiny", "max_new_tokens": 4, "max_prompt_tokens": PROMPT_TOKENS[env_id]}

    def make() -> gym.Env:
        env = gym.make(env_id, reward=reply_length, **kwargs)
        return OnlySomeTokens(env) if masked else env

    env = DummyVecEnv([make] * n_envs)
    env.seed(0)
    return env


@pytest.fixture
def make_env() -> Callable[..., DummyVecEnv]:
    """``make_env(env_id="TextGen-EchoLetter-v0", n_envs=2, masked=False)``: a seeded ``DummyVecEnv``.

    ``masked=True`` wraps each env in :class:`OnlySomeTokens` (``action_masks()``, as sb3-contrib wants).
    """
    return _make_vec_env


@pytest.fixture
def allowed_tokens() -> np.ndarray:
    """The tokens that ``make_env(masked=True)`` allows."""
    return ALLOWED_TOKENS
