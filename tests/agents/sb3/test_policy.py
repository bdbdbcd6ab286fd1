"""LMPolicy and MaskableLMPolicy with stock SB3 / sb3-contrib: LoRA, masks, temperature, checks, save and load.

What the algorithms call on the policy, and short learning runs of each: test_sb3_contract.py.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from transformers import LlamaConfig, LlamaForCausalLM

from agents import LMPolicy, MaskableLMPolicy
from text_gym.tokenization import load_tokenizer

PPO_KWARGS = {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "learning_rate": 1e-3, "seed": 0, "device": "cpu"}


def make_model(env, algo=PPO, policy=LMPolicy, **policy_kwargs):
    return algo(policy, env, policy_kwargs={"model": "tiny", **policy_kwargs}, **PPO_KWARGS)


def test_learn_with_lora_and_separate_critic_trains_adapters_only(make_env):
    model = make_model(make_env(), lora={"r": 4}, critic="separate", critic_layers=1)
    base = {k: v.clone() for k, v in model.policy.named_parameters() if not v.requires_grad}
    trainable = {k: v.clone() for k, v in model.policy.named_parameters() if v.requires_grad}
    model.learn(64)
    params = dict(model.policy.named_parameters())
    assert all(torch.equal(v, params[k]) for k, v in base.items())
    assert any(not torch.equal(v, params[k]) for k, v in trainable.items() if "lora_" in k)
    assert any(not torch.equal(v, params[k]) for k, v in trainable.items() if "critic_trunk" in k)


def test_maskable_ppo_respects_action_masks(make_env, allowed_tokens):
    model = make_model(make_env(masked=True), algo=MaskablePPO, policy=MaskableLMPolicy)
    model.learn(32)
    assert set(np.unique(model.rollout_buffer.actions)) <= set(allowed_tokens.tolist())
    env = make_env(masked=True)  # a fresh one: resetting the model's mid-reply would lose its reward
    actions, _ = model.predict(env.reset(), action_masks=np.stack(env.env_method("action_masks")))
    assert set(actions.tolist()) <= set(allowed_tokens.tolist())


def test_temperature_scales_log_probs(make_env):
    env = make_env()
    obs = {k: torch.as_tensor(v).float() for k, v in env.reset().items()}
    cold = LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", device="cpu")
    hot = LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", device="cpu", temperature=2.0)
    logits = cold.get_distribution(obs).distribution.logits
    expected = torch.log_softmax(torch.log_softmax(logits, -1) / 2.0, -1)
    torch.testing.assert_close(hot.get_distribution(obs).distribution.logits, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("policy_kwargs", [{}, {"lora": {"r": 4}}])
def test_save_and_load_round_trip(tmp_path, make_env, policy_kwargs):
    model = make_model(make_env(), **policy_kwargs)
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


def test_mismatched_model_is_rejected(make_env):
    env = make_env()
    config = LlamaConfig(
        vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    with pytest.raises(ValueError, match=r"Discrete\(258\) but the model outputs 300 logits"):
        LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model=LlamaForCausalLM(config))


def test_mismatched_tokenizer_is_rejected(make_env):
    env = make_env()
    tokenizer = copy.deepcopy(load_tokenizer("tiny"))
    tokenizer.eos_token = "<pad>"  # another eos than the model's
    with pytest.raises(ValueError, match="eos"):
        LMPolicy(
            env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", tokenizer=tokenizer, device="cpu"
        )


def test_wrong_spaces_are_rejected(make_env):
    env = make_env()
    with pytest.raises(ValueError, match="Dict observation space"):
        LMPolicy(gym.spaces.Box(0, 1, (4,)), env.action_space, lambda _: 1e-3, model="tiny")
    with pytest.raises(ValueError, match="Discrete action space"):
        LMPolicy(env.observation_space, gym.spaces.Box(0, 1, (1,)), lambda _: 1e-3, model="tiny")


def test_options_are_lm_policy_s_or_the_actor_critic_s(make_env):
    """LMActorCritic's options pass through (disable_dropout too); SB3's MLP options are refused by name."""
    env = make_env()
    policy = LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", disable_dropout=False)
    assert policy.lm_kwargs["disable_dropout"] is False
    with pytest.raises(TypeError, match=r"unknown options \['net_arch'\].*'critic_layers'"):
        LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", net_arch=[64])


def test_maskable_policy_skips_a_constructor_only_because_sb3_s_disagree():
    """Why agents.sb3.maskable skips MaskableActorCriticPolicy.__init__: should this fail, drop the skip."""
    import inspect

    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from stable_baselines3.common.policies import BaseModel  # BasePolicy.__init__ passes everything on to it

    third = [list(inspect.signature(c.__init__).parameters)[3] for c in (BaseModel, MaskableActorCriticPolicy)]
    assert third == ["features_extractor_class", "lr_schedule"]
