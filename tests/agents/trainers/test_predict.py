"""A trainer's predict: the baseline agents' KV-cached path, equal to a full forward, reproducible."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import text_gym  # noqa: F401  (registers the environments)
from agents.trainers.grpo import GRPO
from text_gym.envs.text_gen import TextGenEnv


def copy_env() -> TextGenEnv:
    return TextGenEnv(task="copy", tokenizer="tiny", reward="chrf", max_new_tokens=8)


def make_grpo(seed: int = 0, **kwargs) -> GRPO:
    return GRPO("tiny", copy_env(), n_envs=4, group_size=2, learning_rate=1e-2, seed=seed, verbose=0, **kwargs)


@torch.no_grad()
def full_forward_logits(trainer: GRPO, obs: dict[str, np.ndarray]) -> torch.Tensor:
    """Next-token logits from one forward over the observation's real tokens: no padding, no cache."""
    ids = torch.as_tensor(obs["input_ids"]).long()[torch.as_tensor(obs["attention_mask"]).bool()][None]  # (1, L)
    logits = trainer.policy(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
    return logits[: trainer.layout.vocab_limit].float()


def test_greedy_predict_is_the_argmax_of_a_full_forward_at_every_step():
    trainer, env = make_grpo(), copy_env()
    obs, _ = env.reset(seed=3)
    eos, letter = env.eos_token_id, int(obs["input_ids"][obs["attention_mask"].astype(bool)][-1])
    for step in range(6):
        action, state = trainer.predict(obs, deterministic=True)
        assert np.ndim(action) == 0 and state is None  # one observation in, one token out, as in SB3
        assert int(action) == int(full_forward_logits(trainer, obs).argmax()), f"step {step}"
        obs, *_ = env.step(letter if action == eos else action)  # keep the episode going
    assert trainer.predictor.agent.kv_cache.stats["next"] == 5  # after the first step, one new token per call


def test_batched_predict_matches_row_by_row_and_respects_action_masks():
    trainer = make_grpo()
    envs = gym.vector.SyncVectorEnv([copy_env] * 3)
    obs, _ = envs.reset(seed=[0, 1, 2])
    actions, _ = trainer.predict(obs, deterministic=True)
    assert actions.shape == (3,)
    for row in range(3):
        single = {key: value[row] for key, value in obs.items()}
        assert actions[row] == int(full_forward_logits(trainer, single).argmax())
    only = np.zeros((3, envs.single_action_space.n), dtype=bool)
    only[:, 42] = True
    assert trainer.predict(obs, action_masks=only)[0].tolist() == [42, 42, 42]


def test_sampling_is_reproducible_and_leaves_training_randomness_alone():
    obs, _ = gym.vector.SyncVectorEnv([copy_env] * 8).reset(seed=list(range(8)))
    first, again, other = make_grpo(seed=5), make_grpo(seed=5), make_grpo(seed=6)
    generator_state = first._generator.get_state()
    rng_state = first._np_random.bit_generator.state
    draws = [first.predict(obs)[0] for _ in range(3)]
    assert all(np.array_equal(a, again.predict(obs)[0]) for a in draws)  # same seed, same samples
    assert not np.array_equal(np.stack(draws), np.stack([other.predict(obs)[0] for _ in range(3)]))
    assert torch.equal(first._generator.get_state(), generator_state)  # training's sampling is untouched
    assert first._np_random.bit_generator.state == rng_state


def test_training_drops_the_predict_cache():
    trainer, env = make_grpo(), copy_env()
    obs, _ = env.reset(seed=1)
    before = trainer.predictor.agent.next_token_logits({k: v[None] for k, v in obs.items()})[0]
    trainer.predict(obs, deterministic=True)
    trainer.learn(64)
    assert trainer.predictor.agent.kv_cache.num_slots == 0  # its keys and values came from the old weights
    agent = trainer.predictor.agent
    after = agent.next_token_logits({k: v[None] for k, v in obs.items()})[0, : trainer.layout.vocab_limit]
    torch.testing.assert_close(after, full_forward_logits(trainer, obs), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(before[: trainer.layout.vocab_limit], after, atol=1e-3)
    assert trainer.predict(obs, deterministic=True)[0] == int(full_forward_logits(trainer, obs).argmax())
