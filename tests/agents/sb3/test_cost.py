"""LMPolicy warns once when SB3's update makes several passes over a rollout."""

from __future__ import annotations

import warnings

import pytest
from stable_baselines3 import PPO

from agents import LMPolicy
from agents.sb3.cost import ExpensiveUpdateWarning, UpdateCost


def make_ppo(env, n_epochs: int) -> PPO:
    kwargs = {"n_steps": 8, "batch_size": 8, "n_epochs": n_epochs, "seed": 0, "device": "cpu"}
    return PPO(LMPolicy, env, policy_kwargs={"model": "tiny"}, **kwargs)


def test_several_epochs_warn_once(make_env):
    model = make_ppo(make_env(), n_epochs=3)
    with pytest.warns(ExpensiveUpdateWarning, match=r"rollout of 16 steps, in minibatches of 8") as caught:
        model.learn(32)  # two rollouts and updates: one warning
    assert sum(issubclass(w.category, ExpensiveUpdateWarning) for w in caught) == 1


def test_one_epoch_does_not_warn(make_env):
    model = make_ppo(make_env(), n_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExpensiveUpdateWarning)
        model.learn(32)
    # Not a deaf counter: the last update evaluated its 16 steps (8 per env) exactly once, in minibatches of 8.
    cost = model.policy.update_cost
    assert (cost.rollout, cost.evaluated, cost.minibatch, cost.warned) == (16, 16, 8, False)


def test_update_cost_counts_passes_per_rollout():
    cost = UpdateCost()
    for _ in range(4):
        cost.on_rollout_step(2)
    cost.on_update_start()
    cost.on_minibatch(4)
    cost.on_minibatch(4)  # one pass over the 8 steps: fine
    assert not cost.warned
    with pytest.warns(ExpensiveUpdateWarning):
        cost.on_minibatch(4)
    cost.on_update_start()  # set_training_mode(True) again without a rollout: same rollout size
    assert cost.rollout == 8 and cost.evaluated == 0
