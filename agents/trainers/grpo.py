"""GRPO: several replies per prompt, advantages normalised within each group, no critic.

Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath") replaces PPO's value
function with a baseline from the group: each prompt is answered ``group_size`` times, and a
reply's advantage is its return minus the group's mean, divided by the group's standard
deviation. Every token of the reply shares that advantage in PPO's clipped objective, with an
optional KL penalty (the ``k3`` estimator of Schulman 2020) to the reference policy::

    from agents import GRPO

    model = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs={"tokenizer": "tiny"},
                 n_envs=16, group_size=4, seed=0)   # 4 prompts x 4 replies per rollout
    model.learn(20_000)

Groups are formed through the env: the sub-envs of one group are reset with the same seed, so
they draw the same prompt, and the reset ``info["index"]`` is checked to agree.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import gymnasium as gym
import torch

from agents.trainers.base import TrainerBase, TrainerConfig
from agents.trainers.rollout import RolloutBatch
from text_gym.errors import check_choice, check_finite

__all__ = ["GRPO", "GRPOConfig", "group_advantages"]


@dataclasses.dataclass
class GRPOConfig(TrainerConfig):
    """Hyperparameters of :class:`GRPO` (the fields of :class:`TrainerConfig`, and these)."""

    n_envs: int = 16
    """Sub-envs = replies per rollout = ``n_envs // group_size`` prompts x ``group_size`` replies."""
    group_size: int = 4
    """Replies per prompt (TRL's ``num_generations``)."""
    clip_range: float = 0.2
    """PPO's ratio clipping (TRL's ``epsilon``)."""
    clip_range_high: float | None = None
    """Upper clip, when it differs (DAPO's "clip-higher", Yu et al. 2025); None: ``clip_range``."""
    beta: float = 0.0
    """KL penalty coefficient; 0 (TRL's default) skips the reference policy entirely."""
    scale_rewards: bool = True
    """Divide by the group's std (the original GRPO); False keeps mean-centring only (Dr. GRPO)."""
    loss_type: Literal["token", "sequence"] = "token"
    """``"token"``: mean over all reply tokens of the minibatch (DAPO); ``"sequence"``: mean per reply, then over replies (the original GRPO)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 2:
            raise ValueError(f"group_size: expected an int >= 2 (a group needs a baseline), got {self.group_size!r}.")
        if self.n_envs % self.group_size:
            raise ValueError(
                f"n_envs must be a multiple of group_size, got n_envs={self.n_envs}, group_size={self.group_size}."
            )
        check_finite("clip_range", self.clip_range, positive=True)
        if self.clip_range_high is not None:
            check_finite("clip_range_high", self.clip_range_high, positive=True)
        check_finite("beta", self.beta, non_negative=True)
        check_choice("loss_type", self.loss_type, ("token", "sequence"))


def group_advantages(returns: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Advantages of consecutive groups of ``group_size`` returns: ``(R - mean) / (std + eps)``.

    >>> [round(a, 4) for a in group_advantages(torch.tensor([1.0, 0.0, 2.0, 2.0]), 2).tolist()]
    [0.707, -0.707, 0.0, 0.0]
    """
    groups = returns.view(-1, group_size)  # (n_prompts, G)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


class GRPO(TrainerBase):
    """Group Relative Policy Optimization with SB3's API; see the module docstring.

    Args: as :class:`~agents.trainers.base.TrainerBase`; keyword arguments are the fields of
    :class:`GRPOConfig` (``learning_rate``, ``n_envs``, ``group_size``, ``beta``, ``n_epochs``,
    ``batch_size``, ``micro_batch_size``, ``loss_type``...).
    """

    config_class: ClassVar[type[TrainerConfig]] = GRPOConfig
    uses_critic: ClassVar[bool] = False
    config: GRPOConfig

    def _check_env(self, env: gym.vector.VectorEnv) -> None:
        if env.num_envs % self.config.group_size:
            raise ValueError(
                f"The vector env's num_envs must be a multiple of group_size={self.config.group_size}, got {env.num_envs}."
            )

    @property
    def _prompt_group(self) -> int:
        return self.config.group_size

    def _reset_seeds(self, num_envs: int) -> list[int]:
        # One seed per group, repeated: the group's envs then draw the same prompt.
        seeds = super()._reset_seeds(num_envs // self.config.group_size)
        return [seed for seed in seeds for _ in range(self.config.group_size)]

    def _prepare(self, batch: RolloutBatch) -> dict[str, float]:
        g = self.config.group_size
        if batch.indices and all(i is not None for i in batch.indices):
            for start in range(0, len(batch), g):
                if len(set(batch.indices[start : start + g])) != 1:
                    raise RuntimeError(
                        f"expected the {g} envs of a group to draw one prompt, got indices {batch.indices[start : start + g]}: "
                        "the env's reset must pick its prompt from the seed alone."
                    )
        advantages = group_advantages(batch.returns.float(), g, self.config.scale_rewards)  # (B,)
        batch.extra["advantages"] = advantages
        if self.config.beta > 0:
            batch.extra["ref_logprobs"] = self._reference_logprobs(batch)
        grouped = batch.returns.view(-1, g)
        std = grouped.std(dim=1)
        return {"reward_std_in_group": std.mean().item(), "frac_groups_zero_std": (std < 1e-6).float().mean().item()}

    def _loss(self, batch: RolloutBatch, norm: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, mask = self.config, batch.response_mask.float()
        logprobs, _, entropy = self._score(batch)  # (B, T)
        advantages = batch.extra["advantages"][:, None]  # (B, 1): every token shares its reply's
        log_ratio = (logprobs - batch.logprobs) * mask
        ratio = log_ratio.exp()
        high = cfg.clip_range_high if cfg.clip_range_high is not None else cfg.clip_range
        per_token = -torch.min(ratio * advantages, ratio.clamp(1 - cfg.clip_range, 1 + high) * advantages)  # (B, T)
        kl = torch.zeros_like(per_token)
        if cfg.beta > 0:
            delta = batch.extra["ref_logprobs"] - logprobs
            kl = delta.exp() - delta - 1  # k3: unbiased, always >= 0
            per_token = per_token + cfg.beta * kl
        if cfg.loss_type == "token":
            loss = (per_token * mask).sum() / norm["tokens"]
        else:
            loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).sum() / norm["episodes"]
        with torch.no_grad():
            n = mask.sum().clamp(min=1).item()
            info = {
                "policy_gradient_loss": (per_token * mask).sum().item() / n,
                "approx_kl": (((ratio - 1) - log_ratio) * mask).sum().item() / n,
                "clip_fraction": ((((ratio - 1).abs() > cfg.clip_range).float()) * mask).sum().item() / n,
                "kl_ref": (kl * mask).sum().item() / n,
                "entropy": (entropy * mask).sum().item() / n,
            }
        return loss, info
