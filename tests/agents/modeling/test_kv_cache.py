"""The rollout KV cache and the shared-prefix grouping give the outputs of the naive paths."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import text_gym  # noqa: F401  (registers the environments)
from agents.modeling.kv_cache import RolloutKVCache
from agents.modeling.lm import LMActorCritic
from agents.modeling.prefix import group_by_prefix, grouped_last_token_outputs, last_token_outputs, left_align
from agents.sb3.policy import LMPolicy

ENV_KWARGS = {"tokenizer": "tiny", "max_new_tokens": 4, "max_prompt_tokens": 16}
ATOL = {"atol": 1e-5, "rtol": 1e-4}


def make_vec_env(n_envs: int = 3, env_id: str = "TextGen-EchoLetter-v0", **kwargs) -> DummyVecEnv:
    env = DummyVecEnv([lambda: gym.make(env_id, **{**ENV_KWARGS, **kwargs})] * n_envs)
    env.seed(0)
    return env


def make_policy(env: DummyVecEnv, **kwargs) -> LMPolicy:
    policy = LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", device="cpu", **kwargs)
    torch.nn.init.normal_(policy.actor_critic.value_head.weight, generator=torch.Generator().manual_seed(0))
    return policy


def random_actions(rng: np.random.Generator, n_envs: int, eos: int = 0) -> np.ndarray:
    # Ends some episodes early (eos) and lets the others hit the token budget (truncation).
    return np.where(rng.random(n_envs) < 0.25, eos, rng.integers(2, 200, n_envs))


def as_tensors(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in obs.items()}  # as SB3's buffer hands them over


def rollout_observations(env: DummyVecEnv, steps: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    obs, observations = env.reset(), []
    for _ in range(steps):
        observations.append(obs)
        obs, _, _, _ = env.step(random_actions(rng, env.num_envs))
    return observations


@pytest.mark.parametrize("actions", ["random", "policy"])
def test_cached_policy_matches_uncached_across_episode_boundaries(actions):
    env = make_vec_env()
    cached, uncached = make_policy(env), make_policy(env, use_kv_cache=False)
    rng = np.random.default_rng(0)
    obs, boundaries = env.reset(), 0
    with torch.no_grad():
        for _ in range(30):
            a_c, v_c, lp_c = cached(as_tensors(obs), deterministic=True)
            a_u, v_u, lp_u = uncached(as_tensors(obs), deterministic=True)
            torch.testing.assert_close(v_c, v_u, **ATOL)
            torch.testing.assert_close(lp_c, lp_u, **ATOL)
            assert torch.equal(a_c, a_u)
            dist_c, dist_u = cached.get_distribution(as_tensors(obs)), uncached.get_distribution(as_tensors(obs))
            torch.testing.assert_close(dist_c.distribution.logits, dist_u.distribution.logits, **ATOL)
            # "policy": the env appends the guessed token; "random": the guess is (mostly) wrong.
            chosen = a_c.numpy() if actions == "policy" else random_actions(rng, env.num_envs)
            obs, _, dones, infos = env.step(chosen)
            for i in np.flatnonzero(dones):  # SB3 values terminal observations one at a time
                boundaries += 1
                terminal = as_tensors({k: v[None] for k, v in infos[i]["terminal_observation"].items()})
                torch.testing.assert_close(cached.predict_values(terminal), uncached.predict_values(terminal), **ATOL)
        torch.testing.assert_close(
            cached.predict_values(as_tensors(obs)), uncached.predict_values(as_tensors(obs)), **ATOL
        )
    stats = cached.kv_cache.stats
    assert boundaries >= (10 if actions == "random" else 6)
    # Random tokens are not the policy's guess, so rows continue from before the guess ("next").
    assert stats["next" if actions == "random" else "same"] > 2 * stats["fresh"] > 0


def test_guessing_the_chosen_token_makes_rollout_steps_free():
    from stable_baselines3 import PPO

    env = make_vec_env()
    model = PPO(
        LMPolicy, env, n_steps=20, batch_size=60, policy_kwargs={"model": "tiny", "device": "cpu"}, device="cpu", seed=0
    )
    model._setup_learn(20 * env.num_envs, None)
    model.collect_rollouts(model.env, model._init_callback(None), model.rollout_buffer, n_rollout_steps=20)
    stats = model.policy.kv_cache.stats
    # SB3 values the last observations too (predict_values), some of which start episodes.
    episodes = int(model.rollout_buffer.episode_starts.sum() + model._last_episode_starts.sum())
    # Only the first observation of an episode is computed on request; the rest were guessed right.
    assert stats["fresh"] == episodes and stats["next"] == 0 and stats["same"] >= 20 * env.num_envs - episodes


def test_cache_recomputes_on_mismatch_and_clears_on_training_mode():
    env = make_vec_env(n_envs=2)
    actor_critic = LMActorCritic("tiny", device="cpu")
    cache = RolloutKVCache()
    obs = as_tensors(env.reset())
    cache(actor_critic, obs["input_ids"], obs["attention_mask"])
    other = as_tensors(env.step(np.array([5, 6]))[0])
    other["input_ids"][0, 0] = 7  # not the cached row plus one token: a prompt slot changed
    other["attention_mask"][0, 0] = 1
    logits, values = cache(actor_critic, other["input_ids"], other["attention_mask"])
    expected_logits, expected_values, _, _ = last_token_outputs(
        actor_critic, other["input_ids"], other["attention_mask"]
    )
    torch.testing.assert_close(logits, expected_logits.detach(), **ATOL)
    assert cache.stats == {"same": 0, "next": 1, "fresh": 3}
    policy = make_policy(env)
    with torch.no_grad():
        policy(obs)
    assert policy.kv_cache.num_slots == 2
    policy.set_training_mode(True)
    assert policy.kv_cache.num_slots == 0


def test_group_by_prefix_finds_episodes():
    ids = torch.tensor([[0, 5, 6, 0, 0], [0, 5, 6, 7, 0], [0, 5, 6, 7, 8], [0, 5, 6, 9, 0], [4, 5, 6, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 1], [0, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
    roots, group = group_by_prefix(ids, mask)
    assert roots.tolist() == [2, 3, 4]
    assert roots[group].tolist()[1:] == [2, 2, 3, 4]  # row 0 is a prefix of both 2 and 3
    assert left_align(ids, mask)[0][0].tolist() == [0, 0, 5, 6]


@pytest.mark.parametrize("critic", ["shared", "separate"])
def test_grouped_training_outputs_and_gradients_match_naive(critic):
    env = make_vec_env(env_id="TextGen-Copy-v0", max_prompt_tokens=56, max_new_tokens=6)
    observations = rollout_observations(env, 12)
    ids = torch.as_tensor(np.concatenate([o["input_ids"] for o in observations]))
    mask = torch.as_tensor(np.concatenate([o["attention_mask"] for o in observations]))
    rows = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))[:24]
    ids, mask = ids[rows], mask[rows]
    assert len(group_by_prefix(ids, mask)[0]) < len(rows)  # some sharing happens
    results = []
    for grouped in (True, False):
        actor_critic = LMActorCritic("tiny", device="cpu", critic=critic)
        torch.nn.init.normal_(actor_critic.value_head.weight, generator=torch.Generator().manual_seed(0))
        if grouped:
            logits, values = grouped_last_token_outputs(actor_critic, ids, mask)
        else:
            logits, values, _, _ = last_token_outputs(actor_critic, ids, mask)
        (torch.log_softmax(logits, -1)[:, 3].sum() + values.square().sum()).backward()
        results.append((logits, values, actor_critic.lm.get_input_embeddings().weight.grad))
    (logits, values, grad), (logits_n, values_n, grad_n) = results
    torch.testing.assert_close(logits, logits_n, **ATOL)
    torch.testing.assert_close(values, values_n, **ATOL)
    torch.testing.assert_close(grad, grad_n, atol=1e-4, rtol=1e-3)  # sums over rows in another order


def test_policy_evaluate_actions_grouped_equals_naive():
    env = make_vec_env()
    observations = rollout_observations(env, 10)
    obs = as_tensors({k: np.concatenate([o[k] for o in observations]) for k in observations[0]})
    actions = torch.arange(len(obs["input_ids"])) % 200
    outputs, grads = [], []
    for grouped in (True, False):  # grouped: chunked LM head (agents.modeling.logprobs); naive: full logits
        policy = make_policy(env, group_prefixes=grouped, temperature=0.8)
        values, log_prob, entropy = policy.evaluate_actions(obs, actions)
        (values.square().sum() + log_prob.sum() + entropy.sum()).backward()  # SB3 differentiates all three
        outputs.append((values, log_prob, entropy))
        grads.append([p.grad for p in policy.parameters() if p.grad is not None])
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, **ATOL)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)  # sums over rows in another order
