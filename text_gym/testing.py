"""Checks for text environments: run them on your own tasks, rewards and tokenizers.

:func:`check_text_env` runs Gymnasium's ``check_env`` and then the contract that agents and
trainers in this project rely on. It raises ``AssertionError`` with a message on the first
broken rule::

    from text_gym.testing import check_text_env
    check_text_env(TextGenEnv(task=my_task, tokenizer="tiny"))
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from text_gym.envs.info import INFO_TYPES, UnscoredReplyWarning, references_from_info

__all__ = ["check_text_env"]


def check_text_env(env: gym.Env, *, seed: int = 0, episodes: int = 3, strict_warnings: bool = True) -> None:
    """Check that ``env`` follows the text_gym environment contract.

    Checks, in order:

    1. Gymnasium's :func:`~gymnasium.utils.env_checker.check_env` (with its warnings raised as
       errors when ``strict_warnings``; the checker resets mid-episode, so the env's
       :class:`~text_gym.envs.UnscoredReplyWarning` is ignored while it runs).
    2. Spaces: ``Discrete(n)`` actions; a ``Dict`` observation with int64 ``input_ids`` and
       ``attention_mask`` of the same shape; ``action_masks()`` is a bool array of shape ``(n,)``.
    3. Layout: after each step exactly one more mask slot is set, holding the action, right after
       the previous last real token.
    4. Episode end: choosing ``eos_token_id`` terminates at once; otherwise the episode is
       truncated after ``max_new_tokens`` steps, and an outer time limit (``env.spec``'s
       ``max_episode_steps``, as ``gym.make`` sets it) is not shorter under sparse rewards.
    5. Info: ``reset`` and every ``step`` return the same keys with the same types, those of
       :mod:`text_gym.envs.info`; ``num_tokens`` and ``text`` follow the reply; ``references``
       decode to the sample's; ``scored`` is set on the last step (on every step under
       ``"delta"``), unscored ``scores`` are 0, and the final ``scores["reward"]`` is finite.
    6. With ``reward_shaping="delta"``, the rewards of an episode sum to its final score; with
       ``"sparse"``, every reward but the last is 0.
    7. Seeding: two resets with the same seed followed by the same actions give the same
       observations, rewards, episode ends and infos (so the reward is deterministic, too).

    Args:
        env: A ``TextGenEnv`` or a wrapper around one (the unwrapped env is checked; the wrapper's
            ``spec`` is read for its time limit).
        seed: Seed of the first reset.
        episodes: How many random-action episodes to run for checks 3 to 6.
        strict_warnings: Turn Gymnasium checker warnings into errors.

    Raises:
        AssertionError: A rule is broken; the message says which and what was seen.
    """
    limit = getattr(env.spec, "max_episode_steps", None)
    env = env.unwrapped
    with warnings.catch_warnings():
        if strict_warnings:
            warnings.simplefilter("error")
        warnings.simplefilter("ignore", UnscoredReplyWarning)
        check_env(env, skip_render_check=True)

    assert limit is None or limit >= env.max_new_tokens or env.reward_shaping != "sparse", (
        f"the env's spec has max_episode_steps={limit} < max_new_tokens={env.max_new_tokens}: an outer TimeLimit "
        "truncates replies before the env scores them, losing the sparse reward; leave it unset or make it larger"
    )
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
    obs, first_info = env.reset(seed=seed)
    _check_reset_info(env, first_info)
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
        _check_step_info(env, info, first_info, t, terminated or truncated)
        if terminated or truncated:
            break
    else:
        raise AssertionError(f"no episode end after max_new_tokens={env.max_new_tokens} steps")
    assert truncated == (not terminated and t + 1 == env.max_new_tokens), f"truncated={truncated} at step {t}"
    final = info["scores"]["reward"]
    assert np.isfinite(final), f"expected a finite final score, got {final}"
    if env.reward_shaping == "delta":
        assert np.isclose(sum(rewards), final, atol=1e-6), f"delta rewards sum to {sum(rewards)}, final score {final}"
    else:
        assert all(r == 0.0 for r in rewards[:-1]), f"sparse rewards before the end must be 0, got {rewards[:-1]}"
        assert np.isclose(rewards[-1], final), f"the last sparse reward {rewards[-1]} is not the final score {final}"


def _schema(info: dict[str, Any]) -> dict[str, Any]:
    return {key: _schema(value) if isinstance(value, dict) else _layout(value) for key, value in info.items()}


def _layout(value: Any) -> tuple[type, Any, tuple[int, ...]]:
    # What a replay buffer lays out its storage from: the type, and the dtype and shape if any.
    return type(value), getattr(value, "dtype", None), np.shape(value)


def _check_reset_info(env: gym.Env, info: dict[str, Any]) -> None:
    assert isinstance(info, dict), f"expected a dict info, got {type(info).__name__}"
    for key, kind in INFO_TYPES.items():
        assert key in info, f"expected info[{key!r}] on reset, got keys {sorted(info)}"
        assert isinstance(info[key], kind), f"expected info[{key!r}] of type {kind.__name__}, got {info[key]!r}"
    sample = env.task[int(info["index"])]
    assert info["prompt"] == sample.prompt, f"info['prompt'] {info['prompt']!r} is not the sample's {sample.prompt!r}"
    references = references_from_info(info)
    assert references == list(sample.references), f"info['references'] decode to {references!r}, not the sample's"
    scored = info["scored"]
    assert scored.shape == () and scored.dtype == np.bool_, f"expected info['scored'] a 0-d bool array, got {scored!r}"
    scores = info["scores"]
    assert "reward" in scores, f"expected info['scores']['reward'], got keys {sorted(scores)}"
    assert all(type(v) is np.float64 for v in scores.values()), f"expected np.float64 scores, got {scores!r}"
    assert info["text"] == "" and info["num_tokens"] == 0 and not info["scored"], f"reset info of a new reply: {info}"


def _check_step_info(env: gym.Env, info: dict[str, Any], first: dict[str, Any], t: int, done: bool) -> None:
    assert _schema(info) == _schema(first), (
        f"step {t}: info keys and types {_schema(info)} differ from reset's {_schema(first)}"
    )
    for key in ("index", "prompt", "references"):
        assert info[key] == first[key], f"step {t}: info[{key!r}] changed within the episode"
    assert info["num_tokens"] == t + 1, f"step {t}: info['num_tokens'] is {info['num_tokens']}, expected {t + 1}"
    expected = env.reply_text() if info["scored"] else ""
    assert info["text"] == expected, f"step {t}: info['text'] {info['text']!r}, expected {expected!r}"
    scored = done or env.reward_shaping == "delta"
    assert bool(info["scored"]) == scored, f"step {t}: info['scored'] is {info['scored']}, expected {scored}"
    if not scored:
        assert all(v == 0.0 for v in info["scores"].values()), f"step {t}: unscored scores {info['scores']} are not 0"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _check_seeding(env: gym.Env, seed: int) -> None:
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [(obs, info)]
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(
                env.action_space.sample(mask=env.action_masks().astype(np.int8))
            )
            trace.append((obs, reward, terminated, truncated, info))
            done = terminated or truncated
        runs.append(trace)
    a, b = runs
    assert len(a) == len(b), f"same seed, episodes of {len(a) - 1} and {len(b) - 1} steps"
    names = ("observation", "reward", "terminated", "truncated", "info")
    for t, (x, y) in enumerate(zip(a, b)):
        for name, u, v in zip(names if t else (names[0], names[-1]), x, y):
            assert _same(u, v), f"same seed, different {name} at step {t} (0 is reset): {u!r} vs {v!r}"
