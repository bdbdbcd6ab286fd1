"""check_text_env: it passes the shipped env, and catches broken info, seeding and time limits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import text_gym  # noqa: F401  (registers the env ids)
from text_gym.envs import TextGenEnv
from text_gym.rewards import BLEU, Reward
from text_gym.testing import check_text_env

SMALL = {"task": "copy", "tokenizer": "tiny", "max_new_tokens": 6, "max_prompt_tokens": 64}


def jitter(prompts, outputs, references):
    """A reward that is not a function of its inputs: fresh randomness on every call."""
    return np.random.default_rng().random(len(outputs))


@pytest.mark.parametrize("shaping", ["sparse", "delta"])
def test_shipped_env_passes(shaping):
    check_text_env(TextGenEnv(**SMALL, reward={"bleu": 1.0, "chrf": 0.5}, reward_shaping=shaping))


def test_non_deterministic_reward_is_caught_by_the_seeding_check():
    # Sparse, so Gymnasium's one-step determinism check (reward 0, scores 0) lets it through.
    with pytest.raises(AssertionError, match="same seed, different reward at step"):
        check_text_env(TextGenEnv(**SMALL, reward=jitter))


def test_non_deterministic_logged_component_is_caught_through_the_info():
    # Weight 0: the rewards agree, only info["scores"]["jitter"] differs.
    reward = Reward({"bleu": BLEU(), "jitter": jitter}, {"bleu": 1.0, "jitter": 0.0})
    with pytest.raises(AssertionError, match="same seed, different info at step"):
        check_text_env(TextGenEnv(**SMALL, reward=reward))


class OldInfo(TextGenEnv):
    """The info of text_gym before 0.2: index and prompt on reset, {} on steps, more at the end."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return obs, {"index": int(info["index"]), "prompt": info["prompt"]}

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, info if terminated or truncated else {}


class RaggedReferences(TextGenEnv):
    def step(self, action):
        *rest, info = super().step(action)
        return *rest, {**info, "references": list(self.task[self._index].references)}


@pytest.mark.parametrize(
    "env_class, match", [(OldInfo, "info\\['index'\\] of type int64"), (RaggedReferences, "keys and types")]
)
def test_info_schema_is_checked(env_class, match):
    with pytest.raises(AssertionError, match=match):
        check_text_env(env_class(**SMALL))


def test_outer_time_limit_shorter_than_the_budget_fails():
    env = gym.make("TextGen-Copy-v0", **{k: v for k, v in SMALL.items() if k != "task"}, max_episode_steps=4)
    with pytest.raises(AssertionError, match="max_episode_steps=4 < max_new_tokens=6"):
        check_text_env(env)
    equal = gym.make("TextGen-Copy-v0", **{k: v for k, v in SMALL.items() if k != "task"}, max_episode_steps=6)
    check_text_env(equal)
