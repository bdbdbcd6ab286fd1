"""Every float setting of the trainer configs refuses NaN and inf, and every count refuses negatives."""

from __future__ import annotations

import math

import pytest

from agents.trainers.grpo import GRPOConfig
from agents.trainers.sequence_ppo import SequencePPOConfig

NAN, INF = math.nan, math.inf
SHARED = ["learning_rate", "max_grad_norm", "temperature", "weight_decay"]
GRPO_FLOATS = [*SHARED, "clip_range", "clip_range_high", "beta"]
PPO_FLOATS = [*SHARED, "gamma", "gae_lambda", "clip_range", "clip_range_vf", "vf_coef", "kl_coef", "kl_target"]
PPO_FLOATS += ["target_kl"]


@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize(
    ("config", "name"), [(GRPOConfig, n) for n in GRPO_FLOATS] + [(SequencePPOConfig, n) for n in PPO_FLOATS]
)
def test_float_settings_refuse_nan_and_inf(config, name, value):
    with pytest.raises(ValueError, match=name):
        config(**{name: value})


@pytest.mark.parametrize(
    ("config", "name"), [(GRPOConfig, "beta"), (SequencePPOConfig, "kl_coef"), (SequencePPOConfig, "weight_decay")]
)
def test_coefficients_refuse_negatives(config, name):
    with pytest.raises(ValueError, match=rf"{name}: expected a finite float >= 0, got -0.1"):
        config(**{name: -0.1})


@pytest.mark.parametrize("value", [0, -5, 2.5])
def test_the_kl_horizon_is_a_positive_count(value):
    with pytest.raises(ValueError, match="kl_horizon: expected a positive int"):
        SequencePPOConfig(kl_horizon=value)


def test_good_settings_still_build():
    assert GRPOConfig(beta=0.0, clip_range_high=0.28).beta == 0.0
    assert SequencePPOConfig(kl_coef=0.0, clip_range_vf=None, kl_target=None, target_kl=0.02).kl_coef == 0.0
