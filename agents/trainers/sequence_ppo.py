"""Sequence-level PPO: whole episodes per rollout, GAE over tokens, a per-token KL penalty.

This is PPO as RLHF uses it (Ziegler et al. 2019, "Fine-Tuning Language Models from Human
Preferences"; Ouyang et al. 2022): the policy and a value head share the LM, each reply token is
an action, the env's reward is shaped per token with ``-kl_coef * (log pi - log pi_ref)``, and
advantages come from GAE over the reply. It has SB3's shape::

    from agents import LMPolicy, SequencePPO

    model = SequencePPO(LMPolicy, "TextGen-EchoLetter-v0", policy_kwargs={"model": "tiny"},
                        env_kwargs={"tokenizer": "tiny"}, n_envs=16, seed=0)
    model.learn(20_000, progress_bar=True)
    model.save("ppo_echo")

An episode that hits ``max_new_tokens`` is truncated by the env, which still pays the reply's
final score; the budget is part of the task, so no value is bootstrapped after it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from agents.trainers.config import TrainerConfig
from agents.trainers.losses import clipped_surrogate, masked_mean
from agents.trainers.on_policy import OnPolicyTrainer
from agents.trainers.rollout import RolloutBatch
from text_gym.errors import check_finite, check_positive_int

__all__ = ["AdaptiveKLController", "SequencePPO", "SequencePPOConfig", "gae"]


@dataclasses.dataclass
class SequencePPOConfig(TrainerConfig):
    """Hyperparameters of :class:`SequencePPO` (the fields of :class:`TrainerConfig`, and these)."""

    n_epochs: int = 2
    """Passes over each rollout; PPO's clipping makes a few safe."""
    gamma: float = 1.0
    """Discount over tokens. 1.0: a reply's score does not depend on when it is paid."""
    gae_lambda: float = 0.95
    """GAE's bias/variance trade-off (TRL's default)."""
    clip_range: float = 0.2
    """PPO's ratio clipping."""
    clip_range_vf: float | None = 0.2
    """Clip the value change per update around the rollout's values (TRL's ``cliprange_value``); None: off."""
    vf_coef: float = 0.1
    """Weight of the value loss. Lower than SB3's 0.5: the value head shares the LM trunk."""
    normalize_advantage: bool = True
    """Whiten the advantages over the reply tokens of each rollout."""
    kl_coef: float = 0.05
    """Initial coefficient of the per-token KL penalty to the reference policy; 0 turns it off."""
    kl_target: float | None = None
    """Target KL per episode for the adaptive coefficient (Ziegler et al.); None: fixed coefficient."""
    kl_horizon: int = 10_000
    """Episodes over which the adaptive coefficient may change by about e-fold."""
    target_kl: float | None = None
    """SB3's early stopping: end the epochs once the minibatch approx-KL passes 1.5x this."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= check_finite(name, getattr(self, name)) <= 1.0:
                raise ValueError(f"{name}: expected a float in [0, 1], got {getattr(self, name)!r}.")
        for name in ("clip_range", "clip_range_vf", "kl_target", "target_kl"):  # None: off, where allowed
            if name == "clip_range" or getattr(self, name) is not None:
                check_finite(name, getattr(self, name), positive=True)
        check_finite("vf_coef", self.vf_coef, non_negative=True)
        check_finite("kl_coef", self.kl_coef, non_negative=True)
        check_positive_int("kl_horizon", self.kl_horizon)
        if self.kl_target is not None and self.kl_coef == 0:
            raise ValueError("kl_target needs kl_coef > 0 to adapt from, got kl_coef=0.")


class AdaptiveKLController:
    """The KL coefficient of Ziegler et al. 2019: nudged so the episode KL tracks ``target``.

    >>> kl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    >>> kl.update(current=12.0, n_episodes=100); round(kl.value, 4)
    0.1002
    """

    def __init__(self, init: float, target: float | None, horizon: int) -> None:
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current: float, n_episodes: int) -> None:
        """Move the coefficient after a rollout whose mean episode KL was ``current``."""
        if self.target is None:
            return
        error = min(max(current / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_episodes / self.horizon


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over reply tokens (Schulman et al. 2016).

    Episodes end at their last real token (no bootstrap after it).

    Args:
        rewards: ``(B, T)`` per-token rewards.
        values: ``(B, T)`` ``V(s_t)``.
        mask: ``(B, T)`` 1 on real tokens (a prefix of each row).
        gamma: Discount.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)``, both ``(B, T)`` and 0 on padding.

    >>> a, r = gae(torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), 1.0, 1.0)
    >>> a.tolist(), r.tolist()
    ([[1.0, 1.0]], [[1.0, 1.0]])
    """
    mask = mask.float()
    values = values * mask
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)  # 0 past the end
    deltas = (rewards + gamma * next_values - values) * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = deltas[:, t] + gamma * lam * running * mask[:, t]
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean, unit-variance over the positions where ``mask`` is 1 (0 elsewhere)."""
    mask = mask.float()
    mean = (x * mask).sum() / mask.sum().clamp(min=1)
    var = (((x - mean) * mask) ** 2).sum() / mask.sum().clamp(min=1)
    return (x - mean) * torch.rsqrt(var + eps) * mask


class SequencePPO(OnPolicyTrainer):
    """PPO over whole replies with a value head and a per-token KL penalty; see the module docstring.

    Args: as :class:`~agents.trainers.base.TrainerBase`; keyword arguments are the fields of
    :class:`SequencePPOConfig` (``learning_rate``, ``n_envs``, ``n_epochs``, ``batch_size``,
    ``micro_batch_size``, ``clip_range``, ``kl_coef``, ``kl_target``...).
    """

    config_class: ClassVar[type[TrainerConfig]] = SequencePPOConfig
    uses_critic: ClassVar[bool] = True
    config: SequencePPOConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.config
        self.kl_controller = AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)

    def _extra_state(self) -> dict[str, float]:
        return {"kl_coef": self.kl_controller.value}

    def _load_extra_state(self, state: dict[str, float]) -> None:
        self.kl_controller.value = state["kl_coef"]

    @property
    def _kl_penalized(self) -> bool:
        return self.config.kl_coef > 0

    def _prepare(self, batch: RolloutBatch) -> dict[str, float]:
        if batch.values is None:
            raise ValueError(
                "expected rollout values from a value head, got none: build the policy with critic='shared'."
            )
        cfg, mask = self.config, batch.response_mask.float()
        kl = torch.zeros_like(batch.logprobs)
        if cfg.kl_coef > 0:
            kl = (batch.logprobs - self._reference_logprobs(batch)) * mask  # (B, T), k1 estimator
        beta = self.kl_controller.value
        rewards = batch.rewards - beta * kl  # (B, T)
        advantages, returns = gae(rewards, batch.values, mask, cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_advantage:
            advantages = masked_whiten(advantages, mask)
        batch.extra.update(advantages=advantages, returns=returns)
        episode_kl = kl.sum(1).mean().item()
        self.kl_controller.update(episode_kl, len(batch))
        return {"kl_ref": episode_kl, "kl_coef": beta}

    def _loss(self, batch: RolloutBatch, norm: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, mask = self.config, batch.response_mask.float()
        logprobs, values, entropy = self._score(batch, with_values=True)  # (B, T) each
        advantages, returns = batch.extra["advantages"], batch.extra["returns"]
        pg, info = clipped_surrogate(logprobs, batch.logprobs, advantages, mask, cfg.clip_range)  # (B, T)
        policy_loss = (pg * mask).sum() / norm["tokens"]
        if cfg.clip_range_vf is not None:
            clipped = batch.values + (values - batch.values).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
            value_error = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
        else:
            value_error = (values - returns) ** 2
        value_loss = 0.5 * (value_error * mask).sum() / norm["tokens"]
        loss = policy_loss + cfg.vf_coef * value_loss
        with torch.no_grad():
            info.update(
                policy_gradient_loss=masked_mean(pg, mask),
                value_loss=masked_mean(0.5 * value_error, mask),
                entropy=masked_mean(entropy, mask),
            )
        return loss, info

    def _early_stop(self, stats: dict[str, list[float]]) -> bool:
        target = self.config.target_kl
        return target is not None and stats["approx_kl"][-1] > 1.5 * target
