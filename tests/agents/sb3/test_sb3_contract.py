"""Everything SB3's PPO and A2C and sb3-contrib's MaskablePPO use on their policy, checked on ours.

``CALLS`` lists, per algorithm and phase, each attribute of ``model.policy`` that the algorithm
uses, read from stable-baselines3 2.9.2 (``common/base_class.py``, ``common/on_policy_algorithm.py``,
``ppo/ppo.py``, ``a2c/a2c.py``) and sb3-contrib 2.9.2 (``ppo_mask/ppo_mask.py``). ``CHECKS`` calls
each one with real inputs from a tiny env and checks shapes, types and effects. When upgrading
either package, re-read those files and update ``CALLS``: an unknown name fails
``test_every_call_is_checked``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import obs_as_tensor, update_learning_rate

from agents import LMPolicy, MaskableLMPolicy

_ON_POLICY = {  # OnPolicyAlgorithm and BaseAlgorithm, shared by PPO and A2C
    "_setup_model": ("__init__", "to"),
    "collect_rollouts": (
        "set_training_mode",
        "reset_noise",  # only with use_sde
        "forward",
        "squash_output",
        "unscale_action",  # only for Box action spaces
        "obs_to_tensor",  # terminal observations
        "predict_values",
    ),
    "train": ("set_training_mode", "optimizer", "evaluate_actions", "parameters", "log_std"),  # log_std: hasattr
    "predict": ("predict",),
    "save/load": ("state_dict", "load_state_dict", "optimizer", "reset_noise"),
}
CALLS: dict[str, dict[str, tuple[str, ...]]] = {
    "PPO": _ON_POLICY,
    "A2C": _ON_POLICY,  # and optimizer_class=RMSprop in policy_kwargs (use_rms_prop=True)
    "MaskablePPO": {
        "_setup_model": ("__init__", "to", "isinstance(MaskableActorCriticPolicy)"),
        "collect_rollouts": ("set_training_mode", "forward", "obs_to_tensor", "predict_values"),  # + action_masks
        "train": ("set_training_mode", "optimizer", "evaluate_actions", "parameters"),  # + action_masks
        "predict": ("predict",),  # + action_masks
        "save/load": ("state_dict", "load_state_dict", "optimizer"),
    },
}
# Not called by the algorithms, but SB3 API that users call: Policy.save / Policy.load, the
# distribution, and ActorCriticPolicy's own pipeline (features_extractor -> mlp_extractor -> nets).
USER_API = ("_get_constructor_parameters", "save", "load", "get_distribution", "device", "sb3_pipeline")
POLICIES = {"LMPolicy": LMPolicy, "MaskableLMPolicy": MaskableLMPolicy}
ALGOS = {"PPO": (PPO, LMPolicy), "A2C": (A2C, LMPolicy), "MaskablePPO": (MaskablePPO, MaskableLMPolicy)}
ATOL = {"atol": 1e-5, "rtol": 1e-4}


@dataclass
class Case:
    """A fresh policy built as the algorithms build it, and real observations from its env."""

    policy: LMPolicy
    env: Any  # the DummyVecEnv (2 envs, masked)
    obs: dict[str, np.ndarray]  # a batch, as the env returns it (int64)
    masks: np.ndarray  # (2, V) bool
    allowed: np.ndarray
    tmp_path: Any

    def rollout_obs(self) -> dict[str, torch.Tensor]:
        return obs_as_tensor(self.obs, self.policy.device)  # as collect_rollouts hands it over

    def buffer_obs(self) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in self.obs.items()}  # as the buffer does

    def build(self, **kwargs: Any) -> LMPolicy:
        return build_policy(type(self.policy), self.env, **kwargs)


def build_policy(cls: type[LMPolicy], env: Any, **kwargs: Any) -> LMPolicy:
    if cls is not MaskableLMPolicy:  # PPO and A2C pass use_sde; MaskablePPO does not
        kwargs.setdefault("use_sde", False)
    return cls(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny", device="cpu", **kwargs)


@pytest.fixture(params=sorted(POLICIES))
def case(request, make_env, allowed_tokens, tmp_path) -> Case:
    env = make_env("TextGen-Copy-v0", masked=True)
    env.reset()
    obs, _, _, _ = env.step(np.array([5, 6]))  # one reply token in
    masks = np.stack(env.env_method("action_masks"))
    return Case(build_policy(POLICIES[request.param], env), env, obs, masks, allowed_tokens, tmp_path)


# ---------------------------------------------------------------------- the checks
def check_init(case: Case) -> None:
    policy = case.policy
    # Every attribute that SB3's own constructor sets exists (ActorCriticPolicy.__init__ ran).
    reference_cls = MaskableActorCriticPolicy if isinstance(policy, MaskableLMPolicy) else ActorCriticPolicy
    reference = reference_cls(spaces.Box(0, 1, (3,)), spaces.Discrete(3), lambda _: 1e-3)
    missing = [name for name in [*vars(reference), *reference._modules] if not hasattr(policy, name)]
    assert not missing
    # ...but the only parameters are the LM actor-critic's: no MLP in the optimizer or the state dict.
    assert {id(p) for p in policy.parameters()} == {id(p) for p in policy.actor_critic.parameters()}
    assert all(key.startswith("actor_critic.") for key in policy.state_dict())
    with pytest.raises(ValueError, match="use_sde=False"):
        build_policy(LMPolicy, case.env, use_sde=True)  # PPO(..., use_sde=True)


def check_to(case: Case) -> None:
    assert case.policy.to("cpu") is case.policy
    assert case.policy.device == torch.device("cpu")


def check_isinstance_maskable(case: Case) -> None:
    assert isinstance(case.policy, MaskableActorCriticPolicy) == isinstance(case.policy, MaskableLMPolicy)


def check_set_training_mode(case: Case) -> None:
    with torch.no_grad():
        case.policy(case.rollout_obs())
    assert case.policy.kv_cache.num_slots == 2
    case.policy.set_training_mode(True)  # before train(): the weights are about to change
    assert case.policy.training and case.policy.kv_cache.num_slots == 0
    case.policy.set_training_mode(False)
    assert not case.policy.training and not case.policy.actor_critic.training


def check_reset_noise(case: Case) -> None:
    assert case.policy.reset_noise(2) is None and not case.policy.use_sde


def check_forward(case: Case) -> None:
    for masks in (None, case.masks):
        with torch.no_grad():
            actions, values, log_prob = case.policy(case.rollout_obs(), action_masks=masks)
        assert actions.shape == (2,) and actions.dtype == torch.int64
        assert values.shape == (2, 1) and values.dtype == torch.float32
        assert log_prob.shape == (2,) and bool((log_prob <= 0).all())
        assert all(case.policy.action_space.contains(int(a)) for a in actions)
    assert set(actions.tolist()) <= set(case.allowed.tolist())


def check_squash_output(case: Case) -> None:
    assert case.policy.squash_output is False  # so collect_rollouts neither unscales nor clips


def check_unscale_action(case: Case) -> None:
    # Called only for Box action spaces; token actions are Discrete and go to the env as chosen.
    assert isinstance(case.policy.action_space, spaces.Discrete)


def check_obs_to_tensor(case: Case) -> None:
    single = {k: v[0] for k, v in case.obs.items()}  # like infos[i]["terminal_observation"]
    tensors, vectorized = case.policy.obs_to_tensor(single)
    assert not vectorized and all(t.shape == (1, *v.shape) for t, v in zip(tensors.values(), single.values()))
    assert case.policy.obs_to_tensor(case.obs)[1]


def check_predict_values(case: Case) -> None:
    with torch.no_grad():
        _, expected, _ = case.policy(case.rollout_obs())
        values = case.policy.predict_values(case.rollout_obs())
        single = case.policy.predict_values(case.policy.obs_to_tensor({k: v[1] for k, v in case.obs.items()})[0])
    assert values.shape == (2, 1) and single.shape == (1, 1)
    torch.testing.assert_close(values, expected, **ATOL)
    torch.testing.assert_close(single[0], expected[1], **ATOL)


def check_optimizer(case: Case) -> None:
    policy = case.policy
    optimizer = policy.optimizer
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {
        id(p) for p in policy.parameters() if p.requires_grad
    }
    update_learning_rate(optimizer, 0.5)  # BaseAlgorithm._update_learning_rate
    assert all(group["lr"] == 0.5 for group in optimizer.param_groups)
    before = copy.deepcopy(policy.state_dict())
    optimizer.zero_grad()
    values, log_prob, _ = policy.evaluate_actions(case.buffer_obs(), torch.tensor([5, 6]))
    (values.sum() - log_prob.sum()).backward()
    optimizer.step()
    assert not torch.equal(
        before["actor_critic.value_head.weight"], policy.state_dict()["actor_critic.value_head.weight"]
    )
    state = copy.deepcopy(optimizer.state_dict())  # BaseAlgorithm.get_parameters / set_parameters
    optimizer.load_state_dict(state)
    assert optimizer.state_dict()["param_groups"] == state["param_groups"]


def check_evaluate_actions(case: Case) -> None:
    actions = torch.as_tensor(np.stack([case.allowed[1], 200]))  # allowed, then masked out
    for masks in (None, torch.as_tensor(case.masks, dtype=torch.float32)):  # as the buffer stores masks
        values, log_prob, entropy = case.policy.evaluate_actions(case.buffer_obs(), actions, action_masks=masks)
        assert values.shape == (2, 1) and log_prob.shape == (2,) and entropy.shape == (2,)
        assert values.requires_grad and log_prob.requires_grad
        assert bool(torch.isfinite(entropy).all()) and bool((entropy >= 0).all())
    assert float(log_prob[0].detach()) > -20 and float(log_prob[1].detach()) < -1e6  # the masked token is impossible
    assert float(entropy.detach().max()) <= np.log(len(case.allowed)) + 1e-4


def check_parameters(case: Case) -> None:
    values, log_prob, _ = case.policy.evaluate_actions(case.buffer_obs(), torch.tensor([5, 6]))
    (values.sum() - log_prob.sum()).backward()
    norm = torch.nn.utils.clip_grad_norm_(case.policy.parameters(), 0.5)
    assert bool(torch.isfinite(norm)) and float(norm) > 0


def check_log_std(case: Case) -> None:
    assert not hasattr(case.policy, "log_std")  # PPO/A2C log exp(log_std) only when it exists


def check_predict(case: Case) -> None:
    policy = case.policy
    actions, state = policy.predict(case.obs, deterministic=True)
    assert isinstance(actions, np.ndarray) and actions.shape == (2,) and state is None
    again, _ = policy.predict(case.obs, deterministic=True)
    np.testing.assert_array_equal(actions, again)
    single, _ = policy.predict({k: v[0] for k, v in case.obs.items()}, deterministic=True)
    assert single.shape == () and int(single) == int(actions[0])
    masked, _ = policy.predict(case.obs, action_masks=case.masks)
    assert set(masked.tolist()) <= set(case.allowed.tolist())


def check_state_dict(case: Case) -> None:
    state = case.policy.state_dict()
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    assert "actor_critic.value_head.weight" in state


def check_load_state_dict(case: Case) -> None:
    other = case.build()
    torch.nn.init.normal_(other.actor_critic.value_head.weight)
    with torch.no_grad():
        other(case.rollout_obs())
    other.load_state_dict(case.policy.state_dict(), strict=True)  # BaseAlgorithm.set_parameters
    assert other.kv_cache.num_slots == 0
    for key, value in case.policy.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


def check_get_constructor_parameters(case: Case) -> None:
    rebuilt = type(case.policy)(**case.policy._get_constructor_parameters())
    assert rebuilt.state_dict().keys() == case.policy.state_dict().keys()


def check_save_and_load(case: Case) -> None:
    torch.nn.init.normal_(case.policy.actor_critic.value_head.weight)
    case.policy.save(case.tmp_path / "policy.pt")
    loaded = type(case.policy).load(case.tmp_path / "policy.pt", device="cpu")
    assert type(loaded) is type(case.policy)
    for key, value in case.policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def check_get_distribution(case: Case) -> None:
    with torch.no_grad():
        distribution = case.policy.get_distribution(case.rollout_obs(), action_masks=case.masks)
    assert distribution.distribution.logits.shape == (2, case.policy.action_space.n)
    assert set(distribution.get_actions().tolist()) <= set(case.allowed.tolist())


def check_sb3_pipeline(case: Case) -> None:
    """SB3's generic ActorCriticPolicy methods, run on LMPolicy's views, give its outputs (uncached)."""
    policy, obs, actions = case.build(temperature=2.0), case.buffer_obs(), torch.tensor([5, 6])
    generic = MaskableActorCriticPolicy if isinstance(policy, MaskableLMPolicy) else ActorCriticPolicy
    for got, expected in zip(generic.evaluate_actions(policy, obs, actions), policy.evaluate_actions(obs, actions)):
        torch.testing.assert_close(got, expected, **ATOL)
    torch.testing.assert_close(generic.predict_values(policy, obs), policy.predict_values(obs), **ATOL)
    assert policy.extract_features(obs).shape == (2, policy.features_dim)
    latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(obs))
    assert latent_pi.shape == (2, policy.mlp_extractor.latent_dim_pi) and policy.value_net(latent_vf).shape == (2, 1)
    assert policy.action_net(latent_pi).shape == (2, policy.action_space.n)


CHECKS: dict[str, Callable[[Case], None]] = {
    "__init__": check_init,
    "to": check_to,
    "isinstance(MaskableActorCriticPolicy)": check_isinstance_maskable,
    "set_training_mode": check_set_training_mode,
    "reset_noise": check_reset_noise,
    "forward": check_forward,
    "squash_output": check_squash_output,
    "unscale_action": check_unscale_action,
    "obs_to_tensor": check_obs_to_tensor,
    "predict_values": check_predict_values,
    "optimizer": check_optimizer,
    "evaluate_actions": check_evaluate_actions,
    "parameters": check_parameters,
    "log_std": check_log_std,
    "predict": check_predict,
    "state_dict": check_state_dict,
    "load_state_dict": check_load_state_dict,
    "_get_constructor_parameters": check_get_constructor_parameters,
    "save": check_save_and_load,
    "load": check_save_and_load,
    "get_distribution": check_get_distribution,
    "device": check_to,
    "sb3_pipeline": check_sb3_pipeline,
}
MEMBERS = sorted({name for phases in CALLS.values() for names in phases.values() for name in names} | set(USER_API))


def test_every_call_is_checked():
    assert set(MEMBERS) <= set(CHECKS), f"add a check for {sorted(set(MEMBERS) - set(CHECKS))}"


@pytest.mark.parametrize("member", MEMBERS)
def test_member_works(case, member):
    CHECKS[member](case)


def test_maskable_ppo_names_the_maskable_policy(make_env):
    # sb3-contrib's own check, after the policy is built; MaskableLMPolicy is the class to pass.
    with pytest.raises(ValueError, match="MaskableActorCriticPolicy"):
        MaskablePPO(LMPolicy, make_env("TextGen-Copy-v0", masked=True), policy_kwargs={"model": "tiny"}, device="cpu")


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_learn_changes_parameters_and_saves(algo, make_env, tmp_path):
    cls, policy = ALGOS[algo]
    n_steps = {"A2C": {"n_steps": 8}}.get(algo, {"n_steps": 16, "batch_size": 32, "n_epochs": 2})
    env = make_env("TextGen-Copy-v0", masked=algo == "MaskablePPO")
    model = cls(policy, env, policy_kwargs={"model": "tiny"}, learning_rate=1e-3, seed=0, device="cpu", **n_steps)
    before = copy.deepcopy(model.policy.state_dict())
    model.learn(64)
    after = model.policy.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "actor_critic.value_head.weight" in changed
    assert any(k.startswith("actor_critic.lm.") for k in changed)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", env=env, device="cpu")
    assert type(loaded.policy) is policy
    for key, value in after.items():
        assert torch.equal(loaded.policy.state_dict()[key], value)
