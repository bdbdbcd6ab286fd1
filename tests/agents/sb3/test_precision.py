"""One precision policy: float32 weights that the optimizer updates, forwards in bf16 under autocast on CUDA.

The GPU is faked where the choice is made (``torch.cuda.is_bf16_supported``, the device a preset
loads on); the autocast itself runs on CPU with ``bf16=True``, which torch supports there too.
"""

from __future__ import annotations

import pytest
import torch
from stable_baselines3 import PPO

from agents import LMPolicy
from agents.modeling import loading, prepare
from agents.modeling.prepare import autocast_dtype

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize(("device", "bf16", "supported", "expected"), [
    (CUDA, None, True, torch.bfloat16),
    (CUDA, None, False, None),  # an older GPU: plain float32
    (CUDA, False, True, None),
    (CPU, None, True, None),  # never by default on CPU
    (CPU, True, False, torch.bfloat16),  # when asked
])  # fmt: skip
def test_autocast_dtype_is_bf16_on_cuda_when_supported(monkeypatch, device, bf16, supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    assert autocast_dtype(device, bf16) is expected


def test_lm_policy_loads_float32_master_weights_where_presets_load_in_bf16(monkeypatch, make_env):
    """On CUDA a preset loads in bf16 unless asked otherwise; LMPolicy asks for float32 weights."""
    asked = []

    def fake_gpu_load(model, device, dtype):
        asked.append((device.type, dtype))
        return loading.load_model(model, device="cpu", dtype=dtype)

    monkeypatch.setattr(prepare, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(prepare, "load_model", fake_gpu_load)
    env = make_env()
    policy = LMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny")
    prepare.load_lm("tiny", "auto", None)  # what LMActorCritic alone does on a GPU
    assert asked == [("cuda", torch.float32), ("cuda", torch.bfloat16)]
    assert {p.dtype for p in policy.parameters()} == {torch.float32}


@pytest.mark.parametrize(("bf16", "compute_dtype"), [(True, torch.bfloat16), (None, torch.float32)])
def test_lm_policy_runs_forwards_under_autocast_and_updates_float32_weights(make_env, bf16, compute_dtype):
    model = PPO(
        LMPolicy, make_env(), policy_kwargs={"model": "tiny", "bf16": bf16},
        n_steps=8, batch_size=8, n_epochs=1, learning_rate=1e-3, seed=0, device="cpu",
    )  # fmt: skip
    seen = set()
    first_linear = next(m for m in model.policy.actor_critic.lm.modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_hook(lambda module, args, out: seen.add((torch.is_grad_enabled(), out.dtype)))
    start = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(8)
    # Rollout steps (no grad) and the update (grad) both computed in compute_dtype.
    assert seen == {(False, compute_dtype), (True, compute_dtype)}
    assert {p.dtype for p in model.policy.parameters()} == {torch.float32}
    assert any(not torch.equal(a, b) for a, b in zip(start, model.policy.parameters(), strict=True))
