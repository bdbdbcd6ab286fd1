"""Self-critical baseline (SCST): hand-computed advantages, and greedy baselines that replay each group's prompt."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from agents.baselines.lm import GreedyLMAgent
from agents.evaluation import play
from agents.trainers.grpo import GRPO, GRPOConfig, scst_advantages
from text_gym.envs.text_gen import TextGenEnv


def test_scst_advantages_by_hand():
    returns = torch.tensor([1.0, 0.0, 2.0, 2.0, 0.3, 0.3])  # three groups of two samples
    greedy = torch.tensor([0.5, 2.0, 0.1])
    assert scst_advantages(returns, greedy, 2, scale=False).tolist() == pytest.approx([0.5, -0.5, 0, 0, 0.2, 0.2])
    # Scaled by the std of each group's samples and greedy return: (1, 0, 0.5) -> 0.5; (0.3, 0.3, 0.1) -> sqrt(1/75).
    scaled = scst_advantages(returns, greedy, 2, scale=True, eps=1e-4).tolist()
    std3 = math.sqrt(1 / 75)
    expected = [0.5 / 0.5001, -0.5 / 0.5001, 0.0, 0.0, 0.2 / (std3 + 1e-4), 0.2 / (std3 + 1e-4)]
    assert scaled == pytest.approx(expected, rel=1e-5)
    assert abs(scaled[4]) < 2  # samples that tie against a different greedy reply: not divided by eps alone
    with pytest.raises(ValueError, match="one greedy return per group"):
        scst_advantages(returns, torch.tensor([0.0, 1.0]), 2)


def test_doctests():
    from agents.trainers import grpo

    assert doctest.testmod(grpo).failed == 0


def test_baseline_is_checked():
    with pytest.raises(ValueError, match=r"baseline: expected one of \['group', 'scst', 'risk'\], got 'greedy'"):
        GRPOConfig(baseline="greedy")


class KeepRollouts(BaseCallback):
    """Replays, before each update, the greedy reply to each group's prompt with the baseline agent."""

    def __init__(self, group_size: int) -> None:
        super().__init__()
        self.group_size, self.checked = group_size, []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        batch = self.locals["batch"]
        indices = batch.indices[:: self.group_size]
        episodes, _ = play(GreedyLMAgent(self.model.policy), [copy_env()], indices, 0, deterministic=True)
        self.checked.append((batch, [e["return"] for e in episodes]))


def variety(prompts, outputs, references):
    """Distinct characters per reply: the untrained greedy reply (one character repeated) scores above 0."""
    return np.array([len(set(text)) / 6 for text in outputs])


def copy_env() -> TextGenEnv:
    return TextGenEnv(task="copy", tokenizer="tiny", reward=variety, max_new_tokens=6)


def test_scst_baselines_are_the_greedy_replies_rewards():
    g = 4
    model = GRPO("tiny", copy_env(), n_envs=8, group_size=g, baseline="scst", learning_rate=1e-2, seed=0, verbose=0)
    check = KeepRollouts(g)
    model.learn(60, callback=check)
    assert len(check.checked) == len(model.history) >= 2
    for (batch, replayed), row in zip(check.checked, model.history, strict=True):
        greedy = batch.extra["greedy_returns"]  # (B,): the greedy return of each episode's prompt
        assert greedy.tolist() == pytest.approx([r for r in replayed for _ in range(g)], abs=1e-6)
        expected = scst_advantages(batch.returns.float(), greedy[::g], g, scale=True)
        torch.testing.assert_close(batch.extra["advantages"], expected)
        assert row["train/greedy_reward"] == pytest.approx(sum(replayed) / len(replayed), abs=1e-6)
    assert any(r > 0 for _, replayed in check.checked for r in replayed)  # a baseline that is not 0
    # The greedy episodes are not training steps.
    assert any(batch.extra["advantages"].abs().max() > 0.1 for batch, _ in check.checked)  # a signal to learn from
    assert model.num_timesteps == sum(int(batch.lengths.sum()) for batch, _ in check.checked)
