"""SequencePPO on the tiny model: it learns, its pieces compute what the papers say, it round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import text_gym  # noqa: F401  (registers the environments)
from agents.trainers.sequence_ppo import AdaptiveKLController, SequencePPO, SequencePPOConfig, gae
from text_gym.envs.text_gen import TextGenEnv


def copy_env(**kwargs) -> TextGenEnv:
    # chrF pays partial credit for every reference letter written: a dense signal from scratch.
    return TextGenEnv(task="copy", tokenizer="tiny", reward="chrf", max_new_tokens=8, **kwargs)


def make_ppo(**kwargs) -> SequencePPO:
    options = dict(n_envs=32, learning_rate=1e-2, kl_coef=0.0, seed=0, verbose=0)
    options.update(kwargs)
    return SequencePPO("tiny", copy_env(), **options)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_raises_the_reward_of_the_tiny_model(seed):
    model = make_ppo(seed=seed)
    head = model.policy.value_head.weight.detach().clone()
    model.learn(12_000)
    rewards = np.array([row["rollout/batch_rew_mean"] for row in model.history])
    first, last = rewards[:5].mean(), rewards[-5:].mean()
    assert len(rewards) >= 40
    assert last > 3 * first and last > first + 0.015, f"rewards did not rise: {np.round(rewards, 3).tolist()}"
    assert not torch.equal(head, model.policy.value_head.weight)


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.4, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the last column is padding: its value must not leak in
    gamma, lam = 0.9, 0.8
    d2 = 1.0 - 0.4
    d1 = 0.0 + gamma * 0.4 - 0.2
    d0 = 0.0 + gamma * 0.2 - 0.5
    a2, a1 = d2, d1 + gamma * lam * d2
    a0 = d0 + gamma * lam * a1
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[a0 + 0.5, a1 + 0.2, a2 + 0.4, 0.0]]))


def test_adaptive_kl_controller_moves_towards_the_target():
    kl = AdaptiveKLController(0.1, target=1.0, horizon=100)
    kl.update(current=5.0, n_episodes=10)
    assert kl.value == pytest.approx(0.1 * 1.02)
    kl.update(current=0.0, n_episodes=10)
    assert kl.value == pytest.approx(0.1 * 1.02 * 0.98)
    fixed = AdaptiveKLController(0.1, target=None, horizon=100)
    fixed.update(current=5.0, n_episodes=10)
    assert fixed.value == 0.1


def test_kl_penalty_uses_a_frozen_reference_and_adapts():
    model = make_ppo(n_envs=8, kl_coef=0.2, kl_target=0.01, kl_horizon=100, learning_rate=1e-2)
    model.learn(200)
    assert model._reference is not None
    assert all(not p.requires_grad for p in model._reference.parameters())
    rows = model.history
    assert rows[-1]["train/kl_ref"] > 0  # the policy moved away from the reference
    assert model.kl_controller.value != 0.2


def test_minibatches_and_gradient_accumulation_give_the_same_first_step():
    # One optimizer step over 8 episodes: whole, or accumulated over micro-batches of 2.
    whole = make_ppo(n_envs=8, n_epochs=1, seed=3, learning_rate=1e-3)
    accumulated = make_ppo(n_envs=8, n_epochs=1, seed=3, learning_rate=1e-3, micro_batch_size=2)
    whole.learn(1)
    accumulated.learn(1)
    # Adam's first step moves each weight by lr * g / (|g| + eps): for a weight whose gradient is
    # near eps, float32 rounding of the summation order shows up as a fraction of lr (seen: 5e-6,
    # 0.5% of lr, on 1 of 16,512 weights). A wrong accumulation (a dropped micro-batch, mixed-up
    # rows) flips the sign of many gradients, moving those weights by up to 2 * lr: 1% of lr catches it.
    for a, b in zip(whole.policy.parameters(), accumulated.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-2 * 1e-3, rtol=1e-4)
    minibatched = make_ppo(n_envs=8, batch_size=4, seed=3)
    minibatched.learn(1)
    assert minibatched._n_updates == 2 * minibatched.config.n_epochs


def test_save_load_round_trip(tmp_path):
    model = make_ppo(n_envs=4, kl_coef=0.1, kl_target=1.0)
    model.learn(64)
    model.save(tmp_path / "ppo.zip")
    loaded = SequencePPO.load(tmp_path / "ppo.zip", env=copy_env())
    assert loaded.config == model.config
    obs, _ = copy_env().reset(seed=1)
    assert loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]
    torch.testing.assert_close(loaded.policy.value_head.weight, model.policy.value_head.weight)


def test_config_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="gae_lambda: expected a float in \\[0, 1\\], got 1.5"):
        SequencePPOConfig(gae_lambda=1.5)
    with pytest.raises(ValueError, match="kl_target needs kl_coef > 0"):
        SequencePPOConfig(kl_coef=0.0, kl_target=1.0)
    with pytest.raises(ValueError, match="batch_size must be a multiple of micro_batch_size"):
        SequencePPOConfig(batch_size=6, micro_batch_size=4)
    with pytest.raises(TypeError, match="policy"):
        SequencePPO(3.5, copy_env())


def test_lora_ppo_trains_adapters_and_value_head_and_round_trips(tmp_path):
    model = make_ppo(n_envs=4, kl_coef=0.1, policy_kwargs={"lora": {"r": 4}}, learning_rate=1e-3)
    trainable = {n for n, p in model.policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora" in n or "value_head" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters() if n in trainable}
    model.learn(64)
    assert model._reference is None  # KL against the LM with adapters disabled: no second copy
    assert any(not torch.equal(before[n], p) for n, p in model.policy.named_parameters() if "lora_B" in n)
    model.save(tmp_path / "lora_ppo")
    loaded = SequencePPO.load(tmp_path / "lora_ppo.zip", env=copy_env())
    assert loaded.policy.lora_config is not None
    for (name, a), b in zip(model.policy.state_dict().items(), loaded.policy.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
