"""Minimum risk training (``baseline="risk"``): hand-computed advantages, MRT's exact gradient, and the trainer's use."""

from __future__ import annotations

import math

import pytest
import torch

from agents.trainers.grpo import GRPO, GRPOConfig, group_advantages, risk_advantages
from text_gym.envs.text_gen import TextGenEnv


def test_risk_advantages_by_hand():
    returns = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.2, 0.2])  # two groups of three replies
    logp = torch.log(torch.tensor([0.4, 0.1, 0.1, 0.3, 0.2, 0.1]))
    # Group 1: q = (4, 1, 1) / 6, expected return (4 + 0.5) / 6 = 0.75; advantages 3 q (R - 0.75). Group 2 ties: 0.
    expected = [3 * 4 / 6 * 0.25, 3 * 1 / 6 * -0.75, 3 * 1 / 6 * -0.25, 0.0, 0.0, 0.0]
    assert risk_advantages(returns, logp, 3, scale=False).tolist() == pytest.approx(expected, abs=1e-7)
    # alpha = 0.5 renormalises sqrt(p): q = (2, 1, 1) / 4, expected return 0.625.
    half = [3 * 0.5 * 0.375, 3 * 0.25 * -0.625, 3 * 0.25 * -0.125, 0.0, 0.0, 0.0]
    assert risk_advantages(returns, logp, 3, alpha=0.5, scale=False).tolist() == pytest.approx(half, abs=1e-7)
    # Scaled by the std of each group's returns: (1, 0, 0.5) -> 0.5; a tied group stays 0, not 0 / eps.
    scaled = risk_advantages(returns, logp, 3, scale=True, eps=1e-4).tolist()
    assert scaled[:3] == pytest.approx([a / 0.5001 for a in expected[:3]]) and scaled[3:] == [0.0] * 3


def test_alpha_zero_is_the_group_baseline():
    returns, logp = torch.tensor([1.0, 0.0, 2.0, 2.0, 0.3, 0.9]), torch.randn(6)
    torch.testing.assert_close(
        risk_advantages(returns, logp, 2, alpha=0.0, scale=True), group_advantages(returns, 2, scale=True)
    )


def test_risk_advantages_follow_the_gradient_of_the_expected_return():
    """``G q_k (R_k - E_q R)`` is ``G / alpha`` times d E_q[R] / d log p_k: MRT's gradient, as autograd finds it."""
    torch.manual_seed(0)
    g, alpha = 4, 0.7
    returns, logp = torch.rand(3 * g), torch.randn(3 * g, requires_grad=True)
    q = torch.softmax(alpha * logp.view(-1, g), dim=1)
    (q * returns.view(-1, g)).sum().backward()
    expected = g / alpha * logp.grad
    torch.testing.assert_close(risk_advantages(returns, logp.detach(), g, alpha, scale=False), expected)


def test_risk_alpha_is_checked():
    with pytest.raises(ValueError, match="risk_alpha"):
        GRPOConfig(baseline="risk", risk_alpha=-1.0)
    with pytest.raises(ValueError, match="risk_alpha"):
        GRPOConfig(baseline="risk", risk_alpha=math.inf)


def test_the_trainer_weighs_each_reply_by_its_probability_at_rollout_time(kept_rollouts):
    env = TextGenEnv(task="copy", tokenizer="tiny", reward="chrf", max_new_tokens=4)
    model = GRPO("tiny", env, n_envs=8, group_size=4, baseline="risk", risk_alpha=0.5, seed=0, verbose=0)
    keep = kept_rollouts
    model.learn(64, callback=keep)
    assert len(keep.batches) == len(model.history) >= 2
    for batch in keep.batches:
        sequence_logprobs = (batch.logprobs * batch.response_mask).sum(1)  # (B,): what the rollout sampled
        expected = risk_advantages(batch.returns.float(), sequence_logprobs, 4, alpha=0.5, scale=True)
        torch.testing.assert_close(batch.extra["advantages"], expected)
    assert "greedy_returns" not in keep.batches[0].extra  # no greedy rollout: the group is its own candidate set
