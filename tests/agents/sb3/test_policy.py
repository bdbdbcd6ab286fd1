"""LMPolicy with stock SB3 / sb3-contrib: learning, masks, checks, save and load."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import DummyVecEnv
from transformers import LlamaConfig, LlamaForCausalLM

import text_gym  # noqa: F401  (registers the environments)
from agents import LMPolicy
from text_gym.tokenization import load_tokenizer


def reply_length(prompts, outputs, references):
    """A reward that a random tiny LM earns too, so the critic gets gradients (BLEU would be 0)."""
    return [len(output) / 8 for output in outputs]


ENV_KWARGS = {"tokenizer": "tiny", "max_new_tokens": 4, "max_prompt_tokens": 16, "reward": reply_length}
ALGOS = {
    "PPO": (PPO, {"n_steps": 32, "batch_size": 32, "n_epochs": 2}),
    "A2C": (A2C, {"n_steps": 8}),
    "MaskablePPO": (MaskablePPO, {"n_steps": 32, "batch_size": 32, "n_epochs": 2}),
}
ALLOWED = np.array([0, 97, 98, 99])  # eos, "_", "`", "a" in the tiny byte vocabulary


class OnlySomeTokens(gym.Wrapper):
    """Masks every action but a few, to check that MaskablePPO's masks reach the policy."""

    def action_masks(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, dtype=bool)
        mask[ALLOWED] = True
        return mask


def make_env(n_envs: int = 2, wrapper=None) -> DummyVecEnv:
    def make() -> gym.Env:
        env = gym.make("TextGen-EchoLetter-v0", **ENV_KWARGS)
        return wrapper(env) if wrapper else env

    env = DummyVecEnv([make] * n_envs)
    env.seed(0)
    return env


def make_model(algo: str = "PPO", env=None, **policy_kwargs):
    cls, kwargs = ALGOS[algo]
    return cls(
        LMPolicy,
        env or make_env(),
        policy_kwargs={"model": "tiny", **policy_kwargs},
        learning_rate=1e-3,
        seed=0,
        device="cpu",
        **kwargs,
    )


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_learn_changes_parameters(algo):
    model = make_model(algo)
    before = copy.deepcopy(model.policy.state_dict())
    model.learn(256)
    after = model.policy.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "actor_critic.value_head.weight" in changed
    assert any(k.startswith("actor_critic.lm.") for k in changed)


def test_learn_with_lora_and_separate_critic_trains_adapters_only():
    model = make_model(lora={"r": 4}, critic="separate", critic_layers=1)
    base = {k: v.clone() for k, v in model.policy.named_parameters() if not v.requires_grad}
    trainable = {k: v.clone() for k, v in model.policy.named_parameters() if v.requires_grad}
    model.learn(64)
    params = dict(model.policy.named_parameters())
    assert all(torch.equal(v, params[k]) for k, v in base.items())
    assert any(not torch.equal(v, params[k]) for k, v in trainable.items() if "lora_" in k)
    assert any(not torch.equal(v, params[k]) for k, v in trainable.items() if "critic_trunk" in k)


def test_maskable_ppo_respects_action_masks():
    model = make_model("MaskablePPO", env=make_env(wrapper=OnlySomeTokens))
    model.learn(32)
    assert set(np.unique(model.rollout_buffer.actions)) <= set(ALLOWED.tolist())
    obs = model.env.reset()
    actions, _ = model.predict(obs, action_masks=np.stack([OnlySomeTokens.action_masks(e) for e in model.env.envs]))
    assert set(actions.tolist()) <= set(ALLOWED.tolist())


def test_temperature_scales_log_probs():
    env = make_env()
    obs = {k: torch.as_tensor(v).float() for k, v in env.reset().items()}
    cold = LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", device="cpu")
    hot = LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", device="cpu", temperature=2.0)
    logits = cold.get_distribution(obs).distribution.logits
    expected = torch.log_softmax(torch.log_softmax(logits, -1) / 2.0, -1)
    torch.testing.assert_close(hot.get_distribution(obs).distribution.logits, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("policy_kwargs", [{}, {"lora": {"r": 4}}])
def test_save_and_load_round_trip(tmp_path, policy_kwargs):
    model = make_model(**policy_kwargs)
    model.learn(64)
    model.save(tmp_path / "model")
    env = make_env()
    loaded = PPO.load(tmp_path / "model", env=env, device="cpu")
    for key, value in model.policy.state_dict().items():
        torch.testing.assert_close(loaded.policy.state_dict()[key], value)
    obs = env.reset()
    for deterministic in (True, False):
        torch.manual_seed(0)
        expected, _ = model.predict(obs, deterministic=deterministic)
        torch.manual_seed(0)
        actions, _ = loaded.predict(obs, deterministic=deterministic)
        np.testing.assert_array_equal(actions, expected)
    if policy_kwargs:  # the frozen base model is rebuilt from its preset, not stored
        assert not any(k.endswith("embed_tokens.weight") for k in model.policy.state_dict())


def test_mismatched_model_is_rejected():
    env = make_env()
    config = LlamaConfig(
        vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    with pytest.raises(ValueError, match=r"Discrete\(258\) but the model outputs 300 logits"):
        LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model=LlamaForCausalLM(config))


def test_mismatched_tokenizer_is_rejected():
    env = make_env()
    tokenizer = copy.deepcopy(load_tokenizer("tiny"))
    tokenizer.eos_token = "<pad>"  # another eos than the model's
    with pytest.raises(ValueError, match="eos"):
        LMPolicy(
            env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", tokenizer=tokenizer, device="cpu"
        )


def test_wrong_spaces_are_rejected():
    env = make_env()
    with pytest.raises(ValueError, match="Dict observation space"):
        LMPolicy(gym.spaces.Box(0, 1, (4,)), env.action_space, lambda _: 1e-3, model="tiny")
    with pytest.raises(ValueError, match="Discrete action space"):
        LMPolicy(env.observation_space, gym.spaces.Box(0, 1, (1,)), lambda _: 1e-3, model="tiny")
