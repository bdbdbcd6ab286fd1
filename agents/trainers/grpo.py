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

With ``baseline="scst"`` (self-critical sequence training, Rennie et al. 2017) the baseline of a
group is instead the reward of the *greedy* reply to its prompt, decoded by the current policy
after each rollout in a second, deterministic rollout (one env per group, reset with the group's
seed, so it draws the same prompt) and scored by the env like every other reply: a sample is
pushed up only when it beats what the policy would say without sampling (:func:`scst_advantages`).

With ``sft_coef > 0`` the loss adds, with that weight, the negative log-likelihood of a reference
reply to each prompt of the minibatch (the task's own, as in the warm start): the combination of
sequence-level reward and token-level likelihood that Wu et al. (2016, GNMT) and Edunov et al.
(2018) found to work better than either alone, which keeps the policy near the references while
the reward reshapes it (:meth:`GRPO._reference_nll`).

With ``baseline="risk"`` the group's replies are treated as the candidate set of minimum risk
training (Shen et al. 2016; Edunov et al. 2018): the expected reward under ``q``, the model's
probabilities renormalised over the group (``softmax(risk_alpha * log p(reply))``), is maximised,
so the update moves probability among the candidates the model already finds likely, where a
greedy decode looks, rather than spreading it over every sample alike (:func:`risk_advantages`).
With ``candidates="beam"`` those candidates are the policy's beam-search n-best list instead of
samples, as in Edunov et al. (:mod:`agents.trainers.candidates`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from agents.trainers.candidates import beam_candidates
from agents.trainers.config import TrainerConfig
from agents.trainers.envs import make_trainer_envs
from agents.trainers.interrupts import Stop
from agents.trainers.losses import clipped_surrogate, masked_mean
from agents.trainers.on_policy import OnPolicyTrainer
from agents.trainers.rollout import RolloutBatch, collect_rollout
from agents.trainers.supervised import reference_batch
from text_gym.errors import check_choice, check_finite

__all__ = ["GRPO", "GRPOConfig", "group_advantages", "risk_advantages", "scst_advantages"]


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
    baseline: Literal["group", "scst", "risk"] = "group"
    """``"group"``: the group's mean return (GRPO); ``"scst"``: the return of the greedy reply to the
    prompt (self-critical sequence training, Rennie et al. 2017), one extra greedy episode per group;
    ``"risk"``: the expected return under the model's probabilities renormalised over the group, each
    reply weighted by its probability (minimum risk training, :func:`risk_advantages`)."""
    risk_alpha: float = 1.0
    """``baseline="risk"``: the sharpness of the renormalisation, ``q = softmax(risk_alpha * log p)``
    over a group (0: uniform, which is the group baseline; large: the likeliest reply alone)."""
    sft_coef: float = 0.0
    """Weight of the references' negative log-likelihood added to the loss (per reference, mean over its
    tokens, averaged over the minibatch's episodes); 0 (the default) is GRPO alone."""
    candidates: Literal["sample", "beam"] = "sample"
    """Where a group's replies come from: ``"sample"``, sampled from the policy (GRPO); ``"beam"``, the
    policy's ``group_size`` best beam-search replies (beam width ``group_size``, no sampling), the n-best
    candidate sets of minimum risk training (Edunov et al. 2018), meant for ``baseline="risk"``."""

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
        check_finite("sft_coef", self.sft_coef, non_negative=True)
        check_finite("risk_alpha", self.risk_alpha, non_negative=True)
        check_choice("loss_type", self.loss_type, ("token", "sequence"))
        check_choice("baseline", self.baseline, ("group", "scst", "risk"))
        check_choice("candidates", self.candidates, ("sample", "beam"))


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


def scst_advantages(
    returns: torch.Tensor, greedy_returns: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """Self-critical advantages: each return minus the greedy return of its group's prompt.

    ``returns`` holds consecutive groups of ``group_size`` sampled returns, ``greedy_returns`` one
    greedy return per group. With ``scale``, each group is divided, as in :func:`group_advantages`,
    by a standard deviation plus ``eps``: that of its ``group_size + 1`` returns, the greedy one
    included. The samples' own std would be 0 whenever they tie while the greedy reply scored
    otherwise, and dividing a non-zero advantage by ``eps`` would blow it up ten thousand times;
    with the greedy return in, the std is 0 only when every advantage is 0.

    >>> returns, greedy = torch.tensor([1.0, 0.0, 2.0, 2.0]), torch.tensor([0.5, 2.0])
    >>> scst_advantages(returns, greedy, 2, scale=False).tolist()
    [0.5, -0.5, 0.0, 0.0]
    >>> [round(a, 4) for a in scst_advantages(returns, greedy, 2).tolist()]  # std of (1, 0, 0.5) is 0.5
    [0.9998, -0.9998, 0.0, 0.0]
    """
    groups = returns.view(-1, group_size)  # (n_prompts, G)
    greedy = greedy_returns.reshape(-1, 1).to(groups)  # (n_prompts, 1)
    if greedy.shape[0] != groups.shape[0]:
        raise ValueError(
            f"expected one greedy return per group ({groups.shape[0]}), got {greedy.shape[0]} greedy returns."
        )
    advantages = groups - greedy
    if scale:
        advantages = advantages / (torch.cat([groups, greedy], dim=1).std(dim=1, keepdim=True) + eps)
    return advantages.reshape(-1)


def risk_advantages(
    returns: torch.Tensor,
    sequence_logprobs: torch.Tensor,
    group_size: int,
    alpha: float = 1.0,
    scale: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Minimum-risk advantages: ``G * q_k * (R_k - sum_j q_j R_j)`` within each group of ``G`` replies.

    ``q = softmax(alpha * sequence_logprobs)`` over the group. The expected return ``sum_k q_k R_k``
    has the gradient ``alpha * q_k * (R_k - sum_j q_j R_j)`` with respect to reply ``k``'s log-probability,
    so giving every token of reply ``k`` this advantage follows the exact gradient of minimum risk
    training (Shen et al. 2016) up to a positive constant; ``G`` keeps the scale of the group
    baseline's advantages (at ``alpha = 0``, ``q`` is uniform and the two agree). With ``scale``, each
    group is divided by the std of its returns plus ``eps``, as in :func:`group_advantages`.

    >>> returns, logp = torch.tensor([1.0, 0.0, 2.0, 2.0]), torch.log(torch.tensor([0.3, 0.1, 0.5, 0.5]))
    >>> [round(a, 4) for a in risk_advantages(returns, logp, 2, scale=False).tolist()]  # q = (0.75, 0.25)
    [0.375, -0.375, 0.0, 0.0]
    """
    groups = returns.view(-1, group_size)  # (n_prompts, G)
    q = torch.softmax(alpha * sequence_logprobs.view(-1, group_size).to(groups), dim=1)  # (n_prompts, G)
    centred = groups - groups.mean(dim=1, keepdim=True)  # a tied group is exactly 0 (sum q is 1 only to rounding)
    advantages = group_size * q * (centred - (q * centred).sum(dim=1, keepdim=True))
    if scale:
        advantages = advantages / (groups.std(dim=1, keepdim=True) + eps)
    return advantages.reshape(-1)


class GRPO(OnPolicyTrainer):
    """Group Relative Policy Optimization with SB3's API; see the module docstring.

    It overrides what differs from the loop of :class:`~agents.trainers.on_policy.OnPolicyTrainer`:
    the advantages (``_prepare``), the loss (``_loss``) and, with ``baseline="scst"``, a greedy
    rollout after each sampled one (``collect_rollouts``). The groups are the rollout's
    ``group_size`` consecutive episodes, reset with one seed.

    Args: as :class:`~agents.trainers.base.TrainerBase`; keyword arguments are the fields of
    :class:`GRPOConfig` (``learning_rate``, ``n_envs``, ``group_size``, ``beta``, ``n_epochs``,
    ``batch_size``, ``micro_batch_size``, ``loss_type``...).
    """

    config_class: ClassVar[type[TrainerConfig]] = GRPOConfig
    uses_critic: ClassVar[bool] = False
    config: GRPOConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._greedy_envs: gym.vector.VectorEnv | None = None  # SCST's envs, one per group, made on first use
        super().__init__(*args, **kwargs)
        self.group_size = self.config.group_size  # each rollout then records it (RolloutBatch.group_size)

    def set_env(self, env: Any) -> None:
        super().set_env(env)
        self._greedy_envs = None  # the greedy replies must come from the new env

    def _check_env(self, env: gym.vector.VectorEnv) -> None:
        if env.num_envs % self.config.group_size:
            raise ValueError(
                f"The vector env's num_envs must be a multiple of group_size={self.config.group_size}, got {env.num_envs}."
            )
        if self.config.sft_coef > 0 and not getattr(env, "envs", None):
            raise TypeError(
                f"sft_coef={self.config.sft_coef} reads references from the training env's task; expected a "
                f"SyncVectorEnv, got {type(env).__name__}."
            )

    @property
    def _kl_penalized(self) -> bool:
        return self.config.beta > 0

    def _prepare(self, batch: RolloutBatch) -> dict[str, float]:
        g = batch.group_size
        if g < 2:
            raise ValueError(
                f"expected a rollout in groups of replies to one prompt, got group_size={g}: "
                "collect it with collect_rollouts(), or collect_rollout(..., group_size=...) and equal seeds per group."
            )
        if batch.indices and all(i is not None for i in batch.indices):
            for start in range(0, len(batch), g):
                if len(set(batch.indices[start : start + g])) != 1:
                    raise RuntimeError(
                        f"expected the {g} envs of a group to draw one prompt, got indices {batch.indices[start : start + g]}: "
                        "the env's reset must pick its prompt from the seed alone."
                    )
        stats: dict[str, float] = {}
        if self.config.baseline == "scst":
            greedy = batch.extra["greedy_returns"][::g]  # (n_prompts,)
            advantages = scst_advantages(batch.returns.float(), greedy, g, self.config.scale_rewards)  # (B,)
            stats["greedy_reward"] = greedy.mean().item()
        elif self.config.baseline == "risk":
            sequence_logprobs = (batch.logprobs * batch.response_mask).sum(1)  # (B,): at rollout time
            advantages = risk_advantages(
                batch.returns.float(), sequence_logprobs, g, self.config.risk_alpha, self.config.scale_rewards
            )
        else:
            advantages = group_advantages(batch.returns.float(), g, self.config.scale_rewards)  # (B,)
        batch.extra["advantages"] = advantages
        if self.config.beta > 0:
            batch.extra["ref_logprobs"] = self._reference_logprobs(batch)
        grouped = batch.returns.view(-1, g)
        std = grouped.std(dim=1)
        stats["reward_std_in_group"] = std.mean().item()
        stats["frac_groups_zero_std"] = (std < 1e-6).float().mean().item()
        return stats

    def _reply_plan(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        if self.config.candidates != "beam":
            return None
        return functools.partial(
            beam_candidates,
            self.policy,
            group_size=self.group_size,
            max_new_tokens=self.layout.max_new_tokens,
            eos_token_id=self.layout.eos_token_id,
        )

    def collect_rollouts(self, callback: BaseCallback, stop: Stop | None = None) -> RolloutBatch | None:
        batch = super().collect_rollouts(callback, stop)
        if batch is not None and self.config.baseline == "scst":
            greedy = self._greedy_returns(batch)  # (n_prompts,)
            batch.extra["greedy_returns"] = greedy.repeat_interleave(batch.group_size)  # (B,): per episode
        return batch

    def _greedy_returns(self, batch: RolloutBatch) -> torch.Tensor:
        """SCST's baselines: the env's return for the greedy reply to each group's prompt, ``(n_prompts,)``.

        One deterministic rollout on envs of their own (one per group, reset with the group's
        seed): it draws no random number, so runs with and without a save in between agree, and
        its tokens are not training steps (``num_timesteps`` does not count them).
        """
        g = batch.group_size
        if self._greedy_envs is None:
            sub_envs = getattr(self.env, "envs", None)  # a sync vector env: copy its first sub-env
            source = sub_envs[0] if sub_envs else self.env_id
            if sub_envs and (source.spec is None or source.spec.entry_point is None):
                source = copy.deepcopy(source)  # else make_trainer_envs would reuse the training env itself
            if source is None:
                raise TypeError(
                    "baseline='scst' plays greedy replies on envs of its own; expected a SyncVectorEnv or an env id, "
                    f"got a {type(self.env).__name__} without one."
                )
            self._greedy_envs = make_trainer_envs(source, self.env.num_envs // g, env_kwargs=self.env_kwargs)
        self.policy.eval()
        greedy = collect_rollout(
            self.policy,
            self._greedy_envs,
            self.layout,
            seeds=batch.seeds[::g],
            temperature=self.config.temperature,
            deterministic=True,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
        )
        if batch.indices and greedy.indices and greedy.indices != batch.indices[::g]:
            raise RuntimeError(
                f"expected the greedy episodes to replay the groups' prompts {batch.indices[::g]}, got {greedy.indices}: "
                "the env's reset must pick its prompt from the seed alone."
            )
        return greedy.returns.float()

    def _loss(self, batch: RolloutBatch, norm: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, mask = self.config, batch.response_mask.float()
        logprobs, _, entropy = self._score(batch)  # (B, T)
        advantages = batch.extra["advantages"][:, None]  # (B, 1): every token shares its reply's
        per_token, info = clipped_surrogate(
            logprobs, batch.logprobs, advantages, mask, cfg.clip_range, cfg.clip_range_high
        )
        kl = torch.zeros_like(per_token)
        if cfg.beta > 0:
            delta = batch.extra["ref_logprobs"] - logprobs
            kl = delta.exp() - delta - 1  # k3: unbiased, always >= 0
            per_token = per_token + cfg.beta * kl
        if cfg.loss_type == "token":
            loss = (per_token * mask).sum() / norm["tokens"]
        else:
            loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).sum() / norm["episodes"]
        if cfg.sft_coef > 0:
            nll = self._reference_nll(batch, norm)
            loss = loss + cfg.sft_coef * nll
            info["sft_nll"] = nll.item() * norm["episodes"] / len(batch)  # this micro-batch's mean
        with torch.no_grad():
            info.update(
                policy_gradient_loss=masked_mean(per_token, mask),
                kl_ref=masked_mean(kl, mask),
                entropy=masked_mean(entropy, mask),
            )
        return loss, info

    def _reference_nll(self, batch: RolloutBatch, norm: dict[str, float]) -> torch.Tensor:
        """The references' NLL for ``sft_coef``: ``sum_i c_i * nll_i / norm["episodes"]``.

        ``i`` runs over the distinct prompts (task samples) of the micro-batch, ``c_i`` is how many
        of its episodes answer prompt ``i``, and ``nll_i`` is the mean negative log-likelihood of the
        tokens of one of its references (drawn, when it has several, with the micro-batch's first
        seed: no random state is used). Each prompt runs once, not once per reply, and accumulated
        micro-batches sum to the minibatch's mean over episodes, as GRPO's own loss.
        """
        counts = Counter(batch.indices)
        if not counts or None in counts:
            raise RuntimeError(
                f"sft_coef needs each episode's task sample; expected info['index'] from every reset, got {batch.indices}."
            )
        indices = [int(i) for i in counts]  # type: ignore[arg-type]
        rng = np.random.default_rng(batch.seeds[0] if batch.seeds else 0)
        references = reference_batch(self.env.envs[0].unwrapped, indices, rng, self.device)
        logprobs, _, _ = self._score(references)  # (n, Tr)
        mask = references.response_mask.float()
        per_reference = -(logprobs * mask).sum(1) / mask.sum(1).clamp(min=1)  # (n,)
        weights = torch.tensor([float(counts[i]) for i in indices], device=per_reference.device)
        return (per_reference * weights).sum() / norm["episodes"]
