"""The trainers' shape: one loop in OnPolicyTrainer, no mixins, every attribute declared in ``__init__``, the group as data."""

from __future__ import annotations

import doctest

import pytest
import torch

from agents.trainers import on_policy
from agents.trainers.base import TrainerBase
from agents.trainers.grpo import GRPO
from agents.trainers.on_policy import OnPolicyTrainer, minibatch_order
from agents.trainers.sequence_ppo import SequencePPO
from text_gym.envs.text_gen import TextGenEnv


def copy_env() -> TextGenEnv:
    return TextGenEnv(task="copy", tokenizer="tiny", reward="chrf", max_new_tokens=4)


def test_the_hierarchy_is_sb3s():
    """BaseAlgorithm -> OnPolicyAlgorithm -> PPO, and nothing mixed in."""
    assert TrainerBase.__bases__ == (object,)
    assert GRPO.__mro__ == (GRPO, OnPolicyTrainer, TrainerBase, object)
    assert SequencePPO.__mro__ == (SequencePPO, OnPolicyTrainer, TrainerBase, object)
    assert {"_prepare", "_loss"} <= set(vars(GRPO)) and {"_prepare", "_loss"} <= set(vars(SequencePPO))
    assert "train" not in vars(GRPO) and "learn" not in vars(GRPO)  # the base owns the loop


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (GRPO, {"n_envs": 4, "group_size": 2, "beta": 0.1, "baseline": "scst"}),
        (SequencePPO, {"n_envs": 2, "kl_target": 1.0}),
    ],
)
def test_every_attribute_is_declared_in_init(cls, kwargs, tmp_path):
    """Warm start, learn, predict, save and load set no attribute that the constructor did not declare."""
    trainer = cls("tiny", copy_env(), seed=0, verbose=0, **kwargs)
    declared = set(vars(trainer))
    trainer.warm_start(total_tokens=16, batch_size=2, checkpoint_on_interrupt=None)
    trainer.learn(8)
    obs, _ = copy_env().reset(seed=0)
    trainer.predict(obs)
    path = trainer.save(tmp_path / "trainer.zip")
    assert set(vars(trainer)) == declared
    loaded = cls.load(path, env=copy_env(), verbose=0)
    loaded.learn(8, reset_num_timesteps=False)
    assert set(vars(loaded)) == declared


def test_the_rollout_carries_its_groups_and_every_step_reads_them():
    trainer = GRPO("tiny", copy_env(), n_envs=6, group_size=3, seed=0, verbose=0)
    batch = trainer.collect_rollouts(trainer._init_callback(None, False))
    assert batch.group_size == 3 and len(batch.seeds) == 6
    assert batch.seeds[:3] == [batch.seeds[0]] * 3 and batch.seeds[3:] == [batch.seeds[3]] * 3
    assert len(set(batch.indices[:3])) == 1 and len(set(batch.indices[3:])) == 1  # one prompt per group
    part = batch.select([3, 4, 5])
    assert part.group_size == 3 and part.seeds == batch.seeds[3:]
    # The advantages follow the batch's layout: as groups of 3, not of the config's size.
    batch.rewards = torch.zeros_like(batch.rewards)
    batch.rewards[:, 0] = torch.tensor([1.0, 0.0, 2.0, 5.0, 5.0, 5.0])
    trainer._prepare(batch)
    assert batch.extra["advantages"][3:].abs().max() == 0  # a group whose replies tied has no signal
    assert batch.extra["advantages"][:3].sum().abs() < 1e-5
    batch.group_size = 1  # a rollout without groups has no baseline for GRPO: refused, not NaN advantages
    with pytest.raises(ValueError, match="group_size=1"):
        trainer._prepare(batch)


def test_minibatches_keep_groups_whole():
    order = minibatch_order(12, 4, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(12))
    for start in range(0, 12, 4):
        group = order[start : start + 4].tolist()
        assert group == list(range(group[0], group[0] + 4)) and group[0] % 4 == 0
    assert doctest.testmod(on_policy).failed == 0
