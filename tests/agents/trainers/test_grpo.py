"""GRPO on the tiny model: it learns, changes parameters, saves and loads, and drives SB3 callbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.logger import configure

import text_gym  # noqa: F401  (registers the environments)
from agents.trainers.grpo import GRPO, GRPOConfig, group_advantages
from agents.trainers.rollout import collect_rollout
from text_gym.envs.text_gen import TextGenEnv


def copy_env(max_new_tokens: int = 8, **kwargs) -> TextGenEnv:
    # chrF gives a random byte-level policy partial credit for every letter of the reference it
    # happens to write, so the tiny model from scratch has a dense signal to climb.
    return TextGenEnv(task="copy", tokenizer="tiny", reward="chrf", max_new_tokens=max_new_tokens, **kwargs)


def make_grpo(**kwargs) -> GRPO:
    options = dict(n_envs=32, group_size=8, learning_rate=1e-2, seed=0, verbose=0)
    options.update(kwargs)
    return GRPO("tiny", copy_env(), **options)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_grpo_raises_the_reward_of_the_tiny_model(seed):
    model = make_grpo(seed=seed)
    start = [p.detach().clone() for p in model.policy.lm.parameters()]
    model.learn(10_000)
    rewards = np.array([row["rollout/batch_rew_mean"] for row in model.history])
    first, last = rewards[:5].mean(), rewards[-5:].mean()
    assert len(rewards) >= 30
    assert last > 3 * first and last > first + 0.02, f"rewards did not rise: {np.round(rewards, 3).tolist()}"
    assert any(not torch.equal(a, b) for a, b in zip(start, model.policy.lm.parameters(), strict=True))


def test_group_advantages():
    adv = group_advantages(torch.tensor([1.0, 0.0, 3.0, 3.0, 3.0, 3.0]), 3)
    assert adv[3:].abs().max() == 0  # no signal from a group whose replies all scored the same
    assert adv[:3].sum().abs() < 1e-6
    assert group_advantages(torch.tensor([2.0, 0.0]), 2, scale=False).tolist() == [1.0, -1.0]


def test_logged_group_statistics_and_kl_match_the_rollouts(kept_rollouts):
    model = make_grpo(n_envs=8, group_size=4, beta=0.1, learning_rate=1e-2)
    rollouts = kept_rollouts
    model.learn(100, callback=rollouts)
    assert len(rollouts.batches) == len(model.history) >= 2
    for i, (batch, row) in enumerate(zip(rollouts.batches, model.history, strict=True)):
        assert len(set(batch.indices[:4])) == len(set(batch.indices[4:])) == 1  # a group shares its prompt
        returns = batch.returns.double().numpy().reshape(2, 4)  # (prompts, replies)
        std = returns.std(axis=1, ddof=1)  # torch.std's unbiased estimate, computed apart
        assert row["rollout/batch_rew_mean"] == pytest.approx(returns.mean(), rel=1e-6)
        assert row["train/reward_std_in_group"] == pytest.approx(std.mean(), rel=1e-5, abs=1e-7)
        assert row["train/frac_groups_zero_std"] == np.mean(std < 1e-6)
        assert row["time/total_timesteps"] == sum(int(b.lengths.sum()) for b in rollouts.batches[: i + 1])
    # The first update starts at the reference, so the k3 KL to it is zero; later ones have moved away.
    assert model.history[0]["train/kl_ref"] == pytest.approx(0.0, abs=1e-7)
    assert model.history[-1]["train/kl_ref"] > 1e-6
    assert model._reference is not None  # full fine-tuning: a frozen copy
    for batch in rollouts.batches:  # the group is data: the rollout records its layout and one seed per group
        assert batch.group_size == 4 and len(set(batch.seeds)) == 2
        assert batch.seeds[:4] == [batch.seeds[0]] * 4 and batch.seeds[4:] == [batch.seeds[4]] * 4


def test_lora_reference_needs_no_copy():
    model = GRPO(
        "tiny", copy_env(), policy_kwargs={"lora": {"r": 4}}, n_envs=4, group_size=2, beta=0.1, verbose=0, seed=0
    )
    trainable = [n for n, p in model.policy.named_parameters() if p.requires_grad]
    assert trainable and all(("lora" in n or "value_head" in n) for n in trainable)
    model.learn(1)
    assert model._reference is None  # the reference is the LM with its adapters disabled
    with torch.no_grad():
        for name, param in model.policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # move the policy away from the base model
    batch = collect_rollout(model.policy, model.env, model.layout, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        policy_logprobs, _, _ = model._score(batch)
    reference_logprobs = model._reference_logprobs(batch)
    mask = batch.response_mask.bool()
    assert not torch.allclose(policy_logprobs[mask], reference_logprobs[mask], atol=1e-3)
    torch.testing.assert_close(policy_logprobs[mask], batch.logprobs[mask], atol=1e-4, rtol=1e-4)
    with model.policy.reference():
        base_logprobs, _, _ = model._score(batch)
    torch.testing.assert_close(base_logprobs[mask], reference_logprobs[mask])


def test_save_load_round_trip(tmp_path):
    model = make_grpo(n_envs=4, group_size=2)
    model.learn(64)
    obs, _ = copy_env().reset(seed=3)
    action, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "grpo")
    loaded = GRPO.load(tmp_path / "grpo.zip", env=copy_env())
    assert loaded.config == model.config and loaded.num_timesteps == model.num_timesteps
    assert loaded.predict(obs, deterministic=True)[0] == action
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    loaded.learn(32)  # and it trains on


class Counter(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.calls = {"training_start": 0, "rollout_start": 0, "step": 0, "rollout_end": 0, "training_end": 0}

    def _on_training_start(self) -> None:
        self.calls["training_start"] += 1

    def _on_rollout_start(self) -> None:
        self.calls["rollout_start"] += 1

    def _on_step(self) -> bool:
        self.calls["step"] += 1
        assert self.locals["infos"] is not None and len(self.locals["dones"]) == self.training_env.num_envs
        return True

    def _on_rollout_end(self) -> None:
        self.calls["rollout_end"] += 1

    def _on_training_end(self) -> None:
        self.calls["training_end"] += 1


def test_sb3_callbacks_logger_and_progress_bar(tmp_path):
    model = make_grpo(n_envs=4, group_size=2)
    model.set_logger(configure(str(tmp_path / "logs"), ["csv", "tensorboard"]))
    counter = Counter()
    checkpoints = CheckpointCallback(save_freq=8, save_path=str(tmp_path / "ckpt"), name_prefix="grpo")
    evaluation = EvalCallback(
        copy_env(), n_eval_episodes=2, eval_freq=8, log_path=str(tmp_path / "eval"), warn=False, verbose=0
    )
    model.learn(200, callback=[counter, checkpoints, evaluation], progress_bar=True)
    assert counter.calls["training_start"] == counter.calls["training_end"] == 1
    assert counter.calls["rollout_start"] == counter.calls["rollout_end"] == model.iteration >= 2
    assert counter.calls["step"] >= model.iteration
    assert list((tmp_path / "ckpt").glob("grpo_*_steps.zip"))
    assert evaluation.evaluations_results and np.isfinite(evaluation.last_mean_reward)
    assert "rollout/ep_rew_mean" in (tmp_path / "logs" / "progress.csv").read_text()
    assert list((tmp_path / "logs").glob("events.out.tfevents*"))


def test_a_callback_can_stop_training():
    model = make_grpo(n_envs=4, group_size=2)
    model.learn(10_000, callback=lambda _locals, _globals: False)
    assert model.iteration == 0 and 0 < model.num_timesteps <= 4


def test_policy_class_with_policy_kwargs_and_vector_env():
    import gymnasium as gym

    from agents.sb3.policy import LMPolicy

    envs = gym.make_vec("TextGen-Copy-v0", num_envs=4, vectorization_mode="sync", tokenizer="tiny", max_new_tokens=4)
    model = GRPO(LMPolicy, envs, policy_kwargs={"model": "tiny"}, group_size=2, verbose=0, seed=0)
    model.learn(16)
    assert model.get_env() is envs and model.num_timesteps >= 16


def test_config_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="multiple of group_size"):
        GRPOConfig(n_envs=6, group_size=4)
    with pytest.raises(ValueError, match="group_size: expected an int >= 2"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="learning_rate"):
        GRPOConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match=r"loss_type: expected one of \['token', 'sequence'\], got 'seq'"):
        GRPOConfig(loss_type="seq")
    with pytest.raises(TypeError):
        GRPOConfig(no_such_option=1)
