"""Checks for text environments: run them on your own tasks, rewards and tokenizers.

:func:`check_text_env` runs Gymnasium's ``check_env`` and then the contract that agents and
trainers in this project rely on. It raises ``AssertionError`` with a message on the first
broken rule::

    from text_gym.testing import check_text_env
    check_text_env(TextGenEnv(task=my_task, tokenizer="tiny"))
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

__all__ = ["check_text_env"]


def check_text_env(env: gym.Env, *, seed: int = 0, episodes: int = 3, strict_warnings: bool = True) -> None:
    """Check that ``env`` follows the text_gym environment contract.

    Checks, in order:

    1. Gymnasium's :func:`~gymnasium.utils.env_checker.check_env` (with its warnings raised as
       errors when ``strict_warnings``).
    2. Spaces: ``Discrete(n)`` actions; a ``Dict`` observation with int64 ``input_ids`` and
       ``attention_mask`` of the same shape; ``action_masks()`` is a bool array of shape ``(n,)``.
    3. Layout: after each step exactly one more mask slot is set, holding the action, right after
       the previous last real token.
    4. Episode end: choosing ``eos_token_id`` terminates at once; otherwise the episode is
       truncated after ``max_new_tokens`` steps; ``info`` then has ``text``, ``references`` and
       ``scores``, and ``scores["reward"]`` is finite.
    5. With ``reward_shaping="delta"``, the rewards of an episode sum to its final score; with
       ``"sparse"``, every reward but the last is 0.
    6. Seeding: two resets with the same seed followed by the same actions give the same
       observations, rewards and texts.

    Args:
        env: A ``TextGenEnv`` or a wrapper around one (the unwrapped env is checked).
        seed: Seed of the first reset.
        episodes: How many random-action episodes to run for checks 3 to 5.
        strict_warnings: Turn Gymnasium checker warnings into errors.

    Raises:
        AssertionError: A rule is broken; the message says which and what was seen.
    """
    env = env.unwrapped
    with warnings.catch_warnings():
        if strict_warnings:
            warnings.simplefilter("error")
        check_env(env, skip_render_check=True)

    _check_spaces(env)
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        _check_episode(env, seed + episode, rng, force_eos=episode == 0)
    _check_seeding(env, seed)


def _check_spaces(env: gym.Env) -> None:
    assert isinstance(env.action_space, spaces.Discrete), f"expected a Discrete action space, got {env.action_space}"
    obs_space = env.observation_space
    assert isinstance(obs_space, spaces.Dict), f"expected a Dict observation space, got {obs_space}"
    assert set(obs_space.spaces) == {"input_ids", "attention_mask"}, (
        f"expected observation keys input_ids and attention_mask, got {sorted(obs_space.spaces)}"
    )
    ids, mask = obs_space["input_ids"], obs_space["attention_mask"]
    assert ids.shape == mask.shape and len(ids.shape) == 1, f"expected equal 1-D shapes, got {ids.shape}, {mask.shape}"
    assert ids.dtype == np.int64 and mask.dtype == np.int64, f"expected int64 arrays, got {ids.dtype}, {mask.dtype}"
    masks = env.action_masks()
    n = int(env.action_space.n)
    assert masks.dtype == np.bool_ and masks.shape == (n,), (
        f"expected action_masks() bool ({n},), got {masks.dtype} {masks.shape}"
    )
    assert masks[env.eos_token_id], "the end-of-sequence token must be allowed by action_masks()"


def _last_real(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[-1]) if mask.any() else -1


def _check_episode(env: gym.Env, seed: int, rng: np.random.Generator, force_eos: bool) -> None:
    obs, _ = env.reset(seed=seed)
    allowed = np.flatnonzero(env.action_masks())
    rewards: list[float] = []
    for t in range(env.max_new_tokens):
        action = env.eos_token_id if force_eos and t == 1 else int(rng.choice(allowed))
        previous = _last_real(obs["attention_mask"])
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        last = _last_real(obs["attention_mask"])
        assert last == previous + 1, f"step {t}: expected the new token at slot {previous + 1}, got {last}"
        assert obs["input_ids"][last] == action, f"step {t}: slot {last} holds {obs['input_ids'][last]}, not {action}"
        assert terminated == (action == env.eos_token_id), f"step {t}: terminated={terminated} for action {action}"
        if terminated or truncated:
            break
    else:
        raise AssertionError(f"no episode end after max_new_tokens={env.max_new_tokens} steps")
    assert truncated == (not terminated and t + 1 == env.max_new_tokens), f"truncated={truncated} at step {t}"
    for key in ("text", "references", "scores"):
        assert key in info, f"expected info[{key!r}] at episode end, got keys {sorted(info)}"
    final = info["scores"]["reward"]
    assert np.isfinite(final), f"expected a finite final score, got {final}"
    if env.reward_shaping == "delta":
        assert np.isclose(sum(rewards), final, atol=1e-6), f"delta rewards sum to {sum(rewards)}, final score {final}"
    else:
        assert all(r == 0.0 for r in rewards[:-1]), f"sparse rewards before the end must be 0, got {rewards[:-1]}"
        assert np.isclose(rewards[-1], final), f"the last sparse reward {rewards[-1]} is not the final score {final}"


def _check_seeding(env: gym.Env, seed: int) -> None:
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [obs["input_ids"].copy()]
        done = False
        while not done:
            obs, reward, terminated, truncated, step_info = env.step(
                env.action_space.sample(mask=env.action_masks().astype(np.int8))
            )
            trace.append((obs["input_ids"].copy(), reward))
            done = terminated or truncated
        runs.append((info["index"], step_info["text"], trace))
    (i1, t1, a), (i2, t2, b) = runs
    assert i1 == i2 and t1 == t2, f"same seed, different episodes: index {i1} vs {i2}, text {t1!r} vs {t2!r}"
    assert len(a) == len(b) and all(np.array_equal(x[0], y[0]) for x, y in zip(a[1:], b[1:])), (
        "same seed, different steps"
    )
