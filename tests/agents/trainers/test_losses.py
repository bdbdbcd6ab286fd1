"""GRPO's and SequencePPO's losses through the trainers, against numbers worked out by hand.

Each test builds a small rollout whose old log-probs sit a chosen log-ratio below what the tiny
model scores now, so every ratio ``pi / pi_old`` is a round number; the expected losses and
statistics below are then plain arithmetic on those ratios, the rewards and the rollout values.
"""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from agents.trainers.grpo import GRPO
from agents.trainers.losses import clipped_surrogate
from agents.trainers.rollout import RolloutBatch
from agents.trainers.sequence_ppo import SequencePPO
from text_gym.envs.text_gen import TextGenEnv

# Ratios pi / pi_old per reply token; None is padding. Two GRPO groups of two replies each.
GRPO_RATIOS = [[1.5, 0.5, 1.25], [1.1, 0.7, None], [0.9, 1.3, 1.0], [2.0, None, None]]
GRPO_RETURNS = [1.0, 0.0, 0.5, 2.5]  # paid on each reply's last token
REF_LOG_RATIOS = [0.1, -0.2, 0.3]  # log pi_ref - log pi, per column, for the KL penalty


def make_batch(ratios, rewards, trainer, values=None, group_size=1) -> RolloutBatch:
    """Replies of known length whose rollout log-probs give ``ratios`` under ``trainer``'s model now."""
    mask = torch.tensor([[r is not None for r in row] for row in ratios], dtype=torch.long)
    b, t = mask.shape
    prompts = torch.tensor([[5, 6], [5, 6], [7, 8], [7, 8]][:b])  # GRPO's groups share a prompt
    batch = RolloutBatch(
        prompt_ids=prompts,
        prompt_mask=torch.ones_like(prompts),
        response_ids=(torch.arange(b * t).view(b, t) % 20 + 10) * mask,
        response_mask=mask,
        logprobs=torch.zeros(b, t),
        rewards=torch.tensor(rewards, dtype=torch.float32),
        values=None if values is None else torch.tensor(values),
        group_size=group_size,
    )
    with torch.no_grad():
        now, _, _ = trainer._score(batch)  # (B, T)
    log_ratio = torch.tensor([[math.log(r) if r else 0.0 for r in row] for row in ratios])
    batch.logprobs = (now - log_ratio) * mask
    return batch


def surrogate(ratio: float, advantage: float, low: float, high: float) -> float:
    return -min(ratio * advantage, min(max(ratio, 1 - low), 1 + high) * advantage)


def env() -> TextGenEnv:
    return TextGenEnv(task="copy", tokenizer="tiny", max_new_tokens=4)


@pytest.mark.parametrize("loss_type", ["token", "sequence"])
@pytest.mark.parametrize("scale_rewards", [True, False])
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_grpo_loss_matches_a_hand_computation(loss_type, scale_rewards, beta):
    low, high = 0.2, 0.28
    model = GRPO(
        "tiny", env(), n_envs=4, group_size=2, clip_range=low, clip_range_high=high, beta=beta,
        scale_rewards=scale_rewards, loss_type=loss_type, seed=0, verbose=0,
    )  # fmt: skip
    rewards = [[0.0] * 3 for _ in GRPO_RATIOS]
    for row, ratios, ret in zip(rewards, GRPO_RATIOS, GRPO_RETURNS, strict=True):
        row[sum(r is not None for r in ratios) - 1] = ret
    batch = make_batch(GRPO_RATIOS, rewards, model, group_size=2)
    with torch.no_grad():
        model._prepare(batch)
    if beta:  # the reference scored what the policy scores now; move it by known amounts
        with torch.no_grad():
            now, _, _ = model._score(batch)
        batch.extra["ref_logprobs"] = now + torch.tensor(REF_LOG_RATIOS)

    advantages = []
    for group in (GRPO_RETURNS[:2], GRPO_RETURNS[2:]):
        spread = statistics.stdev(group) + 1e-4 if scale_rewards else 1.0
        advantages += [(r - statistics.mean(group)) / spread for r in group]
    kl = [math.exp(d) - d - 1 for d in REF_LOG_RATIOS]
    per_reply = [
        [surrogate(r, a, low, high) + beta * kl[t] for t, r in enumerate(row) if r is not None]
        for row, a in zip(GRPO_RATIOS, advantages, strict=True)
    ]
    tokens = [x for row in per_reply for x in row]
    if loss_type == "token":
        expected = sum(tokens) / len(tokens)
    else:
        expected = sum(sum(row) / len(row) for row in per_reply) / len(per_reply)
    ratios = [r for row in GRPO_RATIOS for r in row if r is not None]

    loss, info = model._loss(batch, {"tokens": float(len(tokens)), "episodes": float(len(per_reply))})
    assert loss.requires_grad
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert info["policy_gradient_loss"] == pytest.approx(sum(tokens) / len(tokens), rel=1e-5)
    # Five of nine ratios are outside [0.8, 1.28]; 1.25 is inside (clip_range_high) though |1.25 - 1| > 0.2.
    assert info["clip_fraction"] == pytest.approx(5 / 9)
    assert info["approx_kl"] == pytest.approx(sum(r - 1 - math.log(r) for r in ratios) / 9, rel=1e-4)
    expected_kl = sum(kl[t] for row in GRPO_RATIOS for t, r in enumerate(row) if r is not None) / 9
    assert info["kl_ref"] == pytest.approx(expected_kl if beta else 0.0, rel=1e-4, abs=1e-7)


def test_grpo_sft_coef_adds_the_references_nll_by_hand():
    """``sft_coef``: GRPO's loss plus ``coef * sum_i c_i nll_i / episodes``, each prompt scored once."""
    coef, kwargs = 0.5, {"n_envs": 4, "group_size": 2, "seed": 0, "verbose": 0}
    plain, mixed = GRPO("tiny", env(), **kwargs), GRPO("tiny", env(), sft_coef=coef, **kwargs)
    mixed.policy.load_state_dict(plain.policy.state_dict())
    rewards = [[0.0, 0.0, r] for r in GRPO_RETURNS]
    batch = make_batch(GRPO_RATIOS, rewards, plain, group_size=2)
    batch.indices, batch.seeds = [3, 3, 7, 7], [11, 11, 12, 12]
    with torch.no_grad():
        plain._prepare(batch)
    micro, norm = batch.select([0, 1, 2]), {"tokens": 9.0, "episodes": 4.0}  # a micro-batch: 2 + 1 episodes
    base, _ = plain._loss(micro, norm)
    loss, info = mixed._loss(micro, norm)

    task_env = mixed.env.envs[0].unwrapped
    vocab_limit = int(task_env.action_masks().sum())

    def nll(i: int) -> float:  # the plain path: one unpadded sequence, full logits, log_softmax
        prompt = task_env.prompts.encode(task_env.task[i].prompt)
        reply = task_env.tokenizer(task_env.task[i].references[0], add_special_tokens=False)["input_ids"]
        reply = (list(reply) + [task_env.eos_token_id])[: task_env.max_new_tokens]
        ids = torch.tensor([list(prompt) + reply])
        with torch.no_grad():
            logits = mixed.policy.lm(input_ids=ids).logits[0, len(prompt) - 1 : -1, :vocab_limit].float()
        return -sum(logits[t].log_softmax(-1)[token].item() for t, token in enumerate(reply)) / len(reply)

    expected = (2 * nll(3) + nll(7)) / 4  # accumulated over micro-batches: the minibatch's mean
    assert loss.item() == pytest.approx(base.item() + coef * expected, rel=1e-5)
    assert info["sft_nll"] == pytest.approx(expected * 4 / 3, rel=1e-5)  # the micro-batch's own mean
    loss.backward()  # the references' term has gradients too
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mixed.policy.parameters())


def test_grpo_sft_coef_is_checked():
    with pytest.raises(ValueError, match="sft_coef"):
        GRPO("tiny", env(), n_envs=4, group_size=2, sft_coef=-1.0, verbose=0)
    model = GRPO("tiny", env(), n_envs=2, group_size=2, sft_coef=1.0, verbose=0)
    batch = make_batch([[1.0], [1.0]], [[1.0], [0.0]], model, group_size=2)  # no info["index"] recorded
    with torch.no_grad():
        model._prepare(batch)
    with pytest.raises(RuntimeError, match="task sample"):
        model._loss(batch, {"tokens": 2.0, "episodes": 2.0})


@pytest.mark.parametrize("clip_range_vf", [0.2, None])
def test_sequence_ppo_loss_matches_a_hand_computation(clip_range_vf):
    clip, vf_coef = 0.2, 0.1
    model = SequencePPO(
        "tiny", env(), n_envs=2, clip_range=clip, clip_range_vf=clip_range_vf, vf_coef=vf_coef,
        normalize_advantage=False, kl_coef=0.0, gamma=1.0, gae_lambda=1.0, seed=0, verbose=0,
    )  # fmt: skip
    ratios = [[1.5, 0.7, 1.1], [0.85, 1.3, None]]
    rewards = [[0.0, 0.0, 1.0], [0.0, 0.5, 0.0]]
    old_values = [[0.5, -0.3, 0.1], [0.2, 0.4, 0.0]]
    batch = make_batch(ratios, rewards, model, values=old_values)
    with torch.no_grad():
        model._prepare(batch)

    # gamma = lambda = 1: the return is the reward still to come, the advantage that minus V(s_t).
    policy, value = [], []
    for row, rew, old in zip(ratios, rewards, old_values, strict=True):
        for t, r in enumerate(row):
            if r is None:
                continue
            ret = sum(rew[t:])
            policy.append(surrogate(r, ret - old[t], clip, clip))
            # The value head starts at zero, so the new value is 0 and its change from old is -old.
            error = (0.0 - ret) ** 2
            if clip_range_vf is not None:
                clipped = old[t] + min(max(-old[t], -clip_range_vf), clip_range_vf)
                error = max(error, (clipped - ret) ** 2)
            value.append(0.5 * error)
    n = len(policy)

    loss, info = model._loss(batch, {"tokens": float(n), "episodes": 2.0})
    assert loss.item() == pytest.approx(sum(policy) / n + vf_coef * sum(value) / n, rel=1e-5)
    assert info["policy_gradient_loss"] == pytest.approx(sum(policy) / n, rel=1e-5)
    assert info["value_loss"] == pytest.approx(sum(value) / n, rel=1e-5)
    assert info["clip_fraction"] == pytest.approx(3 / 5)  # 1.5, 0.7 and 1.3 are outside [0.8, 1.2]


def test_clip_fraction_counts_both_bounds():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[0.7, 0.85, 1.25, 1.35]]))
    _, symmetric = clipped_surrogate(new, old, torch.ones(1, 1), torch.ones(1, 4), 0.2)
    _, asymmetric = clipped_surrogate(new, old, torch.ones(1, 1), torch.ones(1, 4), 0.2, 0.3)
    assert symmetric["clip_fraction"] == 0.75  # 0.7, 1.25, 1.35 are outside [0.8, 1.2]
    assert asymmetric["clip_fraction"] == 0.5  # 0.7 and 1.35 are outside [0.8, 1.3]


@pytest.mark.parametrize("normalize_advantage", [False, True])
def test_sequence_ppo_advantages_match_a_hand_computation(normalize_advantage):
    """The per-token KL shaping, GAE with gamma and lambda below 1, the whitening and the adaptive coefficient."""
    beta, gamma, lam = 0.1, 0.9, 0.8
    model = SequencePPO(
        "tiny", env(), n_envs=2, kl_coef=beta, kl_target=0.5, kl_horizon=100, gamma=gamma, gae_lambda=lam,
        normalize_advantage=normalize_advantage, seed=0, verbose=0,
    )  # fmt: skip
    ratios = [[1.0, 1.0, 1.0], [1.0, 1.0, None]]
    rewards = [[0.0, 0.0, 1.0], [0.0, 0.5, 0.0]]
    values = [[0.5, -0.3, 0.1], [0.2, 0.4, 0.0]]
    log_ratios = [[0.2, -0.1, 0.3], [0.4, 0.0, 0.0]]  # log pi_old - log pi_ref, per reply token
    batch = make_batch(ratios, rewards, model, values=values)
    model._reference_logprobs = lambda b: (b.logprobs - torch.tensor(log_ratios)) * b.response_mask
    with torch.no_grad():
        stats = model._prepare(batch)

    advantages, returns = [], []
    for row, rew, val, kl in zip(ratios, rewards, values, log_ratios, strict=True):
        n = sum(r is not None for r in row)
        shaped = [rew[t] - beta * kl[t] for t in range(n)]
        running, adv = 0.0, [0.0] * n
        for t in reversed(range(n)):
            next_value = val[t + 1] if t + 1 < n else 0.0  # no bootstrap past the reply's end
            running = shaped[t] + gamma * next_value - val[t] + gamma * lam * running
            adv[t] = running
        advantages += adv
        returns += [a + v for a, v in zip(adv, val[:n], strict=False)]
    if normalize_advantage:
        mean = statistics.fmean(advantages)
        std = math.sqrt(statistics.pvariance(advantages) + 1e-8)
        advantages = [(a - mean) / std for a in advantages]
    mask = batch.response_mask.bool()
    assert batch.extra["advantages"][mask].tolist() == pytest.approx(advantages, rel=1e-5, abs=1e-6)
    assert batch.extra["returns"][mask].tolist() == pytest.approx(returns, rel=1e-5, abs=1e-6)
    episode_kl = (sum(log_ratios[0]) + sum(log_ratios[1][:2])) / 2
    assert stats == pytest.approx({"kl_ref": episode_kl, "kl_coef": beta})
    error = min(max(episode_kl / 0.5 - 1, -0.2), 0.2)  # Ziegler et al.'s proportional controller
    assert model.kl_controller.value == pytest.approx(beta * (1 + error * 2 / 100))
