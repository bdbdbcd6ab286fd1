"""Baseline agents: episodes through the env, greedy is the LM's argmax, random is seeded and uniform, the reference reaches BLEU 1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import text_gym  # noqa: F401  (registers the environments)
from agents.baselines import (
    BeamSearchLMAgent,
    GreedyLMAgent,
    RandomAgent,
    ReferenceAgent,
    SamplingLMAgent,
)
from agents.evaluation import run_episodes
from agents.modeling.loading import load_model
from agents.modeling.tokens import top_k_top_p

ECHO = {"tokenizer": "tiny", "max_new_tokens": 6, "max_prompt_tokens": 16}


def echo_env() -> gym.Env:
    return gym.make("TextGen-EchoLetter-v0", **ECHO)


AGENTS = {
    "random": lambda env: RandomAgent(env.action_space, seed=0),
    "greedy": lambda env: GreedyLMAgent("tiny", device="cpu"),
    "sampling": lambda env: SamplingLMAgent("tiny", temperature=0.8, top_k=20, top_p=0.9, seed=0, device="cpu"),
    "beam": lambda env: BeamSearchLMAgent("tiny", num_beams=3, device="cpu"),
    "reference": lambda env: ReferenceAgent(env),
}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_agent_completes_episodes_with_the_env_reward(name):
    env = echo_env()
    results = run_episodes(env, AGENTS[name](env), n_episodes=3, seed=0, deterministic=False)
    assert len(results) == 3
    for result in results:
        assert 1 <= result["length"] <= ECHO["max_new_tokens"]
        assert result["return"] == pytest.approx(result["scores"]["reward"])  # sparse: the final score


def test_reference_agent_scores_bleu_one():
    env = gym.make("TextGen-Copy-v0", tokenizer="tiny", max_new_tokens=48, max_prompt_tokens=56)
    results = run_episodes(env, ReferenceAgent(env), n_episodes=5, seed=0)
    assert [r["scores"]["bleu"] for r in results] == [1.0] * 5
    assert all(r["text"] == r["references"][0] for r in results)


def test_reference_agent_needs_the_reset_info():
    env = echo_env()
    obs, _ = env.reset(seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        ReferenceAgent(env).predict(obs)


def test_beam_search_with_one_beam_is_greedy():
    env = echo_env()
    greedy = run_episodes(env, GreedyLMAgent("tiny", device="cpu"), n_episodes=2, seed=1)
    beam = run_episodes(env, BeamSearchLMAgent("tiny", num_beams=1, device="cpu"), n_episodes=2, seed=1)
    assert [r["text"] for r in beam] == [r["text"] for r in greedy]


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    env = echo_env()
    obs, _ = env.reset(seed=0)
    first = [SamplingLMAgent("tiny", seed=3, device="cpu").predict(obs)[0] for _ in range(2)]
    assert first[0] == first[1]
    greedy = GreedyLMAgent("tiny", device="cpu").predict(obs)[0]
    assert SamplingLMAgent("tiny", top_k=1, seed=5, device="cpu").predict(obs)[0] == greedy


def test_top_k_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(top_k_top_p(logits, 2, 1.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(top_k_top_p(logits, 0, 0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(top_k_top_p(logits, 0, 0.5)).tolist() == [[False, True, True, True]]


def test_batched_greedy_predict_is_the_lm_argmax_of_each_row():
    env = DummyVecEnv([echo_env] * 3)
    env.seed(0)
    obs = env.reset()
    actions, state = GreedyLMAgent("tiny", device="cpu").predict(obs)
    assert state is None and actions.shape == (3,)
    lm = load_model("tiny", device="cpu")
    for row, action in enumerate(actions):  # each prompt alone, unpadded, through the bare transformers model
        ids = torch.as_tensor(obs["input_ids"][row][obs["attention_mask"][row] == 1], dtype=torch.long)
        with torch.no_grad():
            assert action == int(lm(ids[None]).logits[0, -1].argmax())


def test_random_agent_is_seeded_and_uniform_over_the_allowed_tokens():
    env = DummyVecEnv([echo_env] * 3)
    obs = env.reset()
    masks = np.zeros((3, env.action_space.n), dtype=bool)
    masks[:, [0, 97, 98]] = True
    draws = [RandomAgent(env.action_space, seed=7) for _ in range(2)]
    first, second = ([agent.predict(obs, action_masks=masks)[0] for _ in range(100)] for agent in draws)
    np.testing.assert_array_equal(first, second)
    tokens, counts = np.unique(first, return_counts=True)
    assert tokens.tolist() == [0, 97, 98] and counts.min() > 70  # 300 draws, 100 expected per token
    agent = RandomAgent(env.action_space, seed=1)
    unmasked = np.concatenate([agent.predict(obs)[0] for _ in range(200)])
    assert len(np.unique(unmasked)) > 200  # spread over the 258 ids


def test_beam_search_handles_identical_rows_in_a_batch():
    env = echo_env()
    obs, _ = env.reset(seed=0)
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    agent = BeamSearchLMAgent("tiny", num_beams=2, device="cpu")
    first = agent.act(batch)
    assert first[0] == first[1]
    # Both envs append the planned token; the plan goes on.
    free = int(np.flatnonzero(obs["attention_mask"])[-1]) + 1  # the first reply slot
    batch["input_ids"][:, free], batch["attention_mask"][:, free] = first, 1
    second = agent.act(batch)
    assert second[0] == second[1]
