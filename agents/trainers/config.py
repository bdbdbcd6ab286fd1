"""The settings every sequence trainer shares, and the model it trains built from SB3-style arguments."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import torch

from agents.modeling.lm import ACTOR_CRITIC_OPTIONS, LMActorCritic
from text_gym.errors import check_finite, check_positive_int

__all__ = ["TrainerConfig", "build_actor_critic"]

Schedule = Callable[[float], float]


@dataclasses.dataclass
class TrainerConfig:
    """Hyperparameters shared by the sequence-level trainers (SB3 names where SB3 has one)."""

    learning_rate: float | Schedule = 1e-5
    """Adam step size, or a function of the remaining progress (1 -> 0), as in SB3."""
    n_envs: int = 8
    """Sub-envs when the env is given as an id or a single env: episodes per rollout."""
    n_epochs: int = 1
    """Passes over each rollout. One is the usual choice for LMs (TRL's default too)."""
    batch_size: int | None = None
    """Episodes per optimizer step (a minibatch); None means the whole rollout."""
    micro_batch_size: int | None = None
    """Episodes per forward pass; gradients accumulate up to ``batch_size``. None: ``batch_size``."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    temperature: float = 1.0
    """Sampling temperature, applied alike at rollout and update time so ratios stay exact."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    bf16: bool | None = None
    """bf16 autocast for forwards; None: on CUDA when the GPU supports it, off on CPU."""
    stats_window_size: int = 100
    """Episodes averaged in ``rollout/ep_rew_mean``, as in SB3."""

    def __post_init__(self) -> None:
        _check_int(self, "n_envs", self.n_envs)
        _check_int(self, "n_epochs", self.n_epochs)
        _check_int(self, "stats_window_size", self.stats_window_size)
        for name in ("batch_size", "micro_batch_size"):
            value = getattr(self, name)
            if value is not None:
                _check_int(self, name, value)
        lr = self.learning_rate
        if not callable(lr) and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf):
            raise ValueError(f"learning_rate: expected a finite positive float or a schedule, got {lr!r}.")
        for name in ("max_grad_norm", "temperature"):
            check_finite(name, getattr(self, name), positive=True)
        check_finite("weight_decay", self.weight_decay, non_negative=True)
        if self.batch_size and self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size must be a multiple of micro_batch_size, got {self.batch_size} and {self.micro_batch_size}."
            )


def _check_int(config: Any, name: str, value: Any) -> None:
    check_positive_int(f"{type(config).__name__}.{name}", value)


def build_actor_critic(policy: Any, policy_kwargs: dict[str, Any], device: torch.device) -> Any:
    """Turn SB3's first argument into an ``agents.modeling.lm.LMActorCritic`` on ``device``.

    Accepted: an ``LMActorCritic``; a model preset name or folder; or a policy class such as
    ``agents.LMPolicy`` (or an instance of one), with the model in ``policy_kwargs["model"]`` (a
    name, a folder, a transformers model or an ``LMActorCritic``; SmolLM2-135M by default, as in
    ``LMPolicy``). The ``policy_kwargs`` that ``LMActorCritic`` takes (``lora``,
    ``gradient_checkpointing``, ``critic``...) are passed on; LMPolicy's SB3-only options
    (``temperature``, ``use_kv_cache``...) are ignored: the trainer's own keyword arguments rule.
    Weights load in float32 unless ``policy_kwargs["dtype"]`` says otherwise: on CUDA the
    trainers compute in bf16 under autocast and keep float32 master weights.
    """
    if isinstance(policy, LMActorCritic):
        return policy.to(device)
    if isinstance(policy, (str, os.PathLike)):
        model = policy
    elif isinstance(policy, type) or isinstance(policy, torch.nn.Module):
        model = policy_kwargs.get("model")
        if model is None and isinstance(policy, torch.nn.Module):
            model = next((m for m in policy.modules() if isinstance(m, LMActorCritic)), None)
        if model is None:
            model = "smollm2-135m"  # LMPolicy's default
    else:
        raise TypeError(
            f"policy: expected agents.LMPolicy, a model preset name or folder, or an LMActorCritic, got {type(policy).__name__}."
        )
    if isinstance(model, LMActorCritic):
        return model.to(device)
    # The trainer's device rules, as do its own keyword arguments over LMPolicy's.
    kwargs = {k: policy_kwargs[k] for k in ACTOR_CRITIC_OPTIONS if k in policy_kwargs and k != "device"}
    kwargs.setdefault("dtype", torch.float32)
    return LMActorCritic(model, device=device, **kwargs)
