"""The composite Reward, make_reward and the registry."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from text_gym.errors import RewardError, UnknownNameError
from text_gym.rewards import BLEU, CHRF, REWARDS, Reward, RewardFunction, make_reward, register_reward, reward_names

PROMPTS = ["Say a", "Say b", "Say c"]
OUTPUTS = ["the cat sat", "", "a dog"]
REFERENCES = [["the cat sat"], ["b"], ["a dog", "the dog"]]


def constant_half(prompts, outputs, references):
    return [0.5] * len(outputs)


def returns_nan(prompts, outputs, references):
    return [0.0, math.nan, 0.0][: len(outputs)]


def too_few(prompts, outputs, references):
    return [0.0]


class Length:
    def __call__(self, prompts, outputs, references):
        return np.array([len(out) for out in outputs], dtype=np.int64)


def test_weighted_sum_and_components():
    reward = Reward({"bleu": BLEU(), "half": constant_half}, {"bleu": 2.0, "half": -1.0})
    assert reward.components == ("bleu", "half")
    scores = reward.score(PROMPTS, OUTPUTS, REFERENCES)
    assert list(scores) == ["bleu", "half", "reward"]
    np.testing.assert_allclose(scores["reward"], 2.0 * scores["bleu"] - 0.5)
    np.testing.assert_array_equal(scores["bleu"], [1.0, 0.0, 1.0])
    assert all(values.dtype == np.float64 and values.shape == (3,) for values in scores.values())
    np.testing.assert_array_equal(reward(PROMPTS, OUTPUTS, REFERENCES), scores["reward"])
    assert isinstance(reward, RewardFunction)


def test_make_reward_specs():
    assert make_reward("bleu").components == ("bleu",)
    composite = make_reward({"bleu": 1.0, "chrf": 0.5})
    assert composite.weights == {"bleu": 1.0, "chrf": 0.5}
    assert make_reward(composite) is composite
    assert make_reward(constant_half).components == ("constant_half",)
    assert make_reward(Length()).components == ("Length",)
    assert make_reward(CHRF()).components == ("chrf",)  # the built-ins carry their registered name
    np.testing.assert_array_equal(make_reward(Length())(PROMPTS, OUTPUTS, REFERENCES), [11.0, 0.0, 5.0])
    assert set(reward_names()) >= {"bleu", "chrf", "coherence"}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"'blue'.*\['bleu', 'chrf', 'coherence'"):
        make_reward("blue")
    with pytest.raises(UnknownNameError, match="'bleu'"):
        make_reward({"blue": 1.0})


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ({}, ValueError, "non-empty"),
        ({"bleu": True}, TypeError, "True"),
        ({"bleu": "1"}, TypeError, "'1'"),
        ({"bleu": math.inf}, ValueError, "inf"),
        ({"bleu": math.nan}, ValueError, "nan"),
        (3, TypeError, "got 3"),
        (BLEU, TypeError, "pass an instance"),
    ],
)
def test_bad_specs(spec, error, match):
    with pytest.raises(error, match=match):
        make_reward(spec)


def test_bad_scores_raise_reward_error_naming_the_component():
    with pytest.raises(RewardError, match=r"'returns_nan' returned nan for sample 1"):
        make_reward(returns_nan).score(PROMPTS, OUTPUTS, REFERENCES)
    with pytest.raises(RewardError, match=r"'too_few' returned 1 scores for 3 outputs"):
        make_reward(too_few)(PROMPTS, OUTPUTS, REFERENCES)
    with pytest.raises(ValueError, match="2 prompts, 3 outputs and 3 reference lists"):
        make_reward("bleu").score(PROMPTS[:2], OUTPUTS, REFERENCES)


def test_reward_validation():
    with pytest.raises(ValueError, match="same keys"):
        Reward({"bleu": BLEU()}, {"chrf": 1.0})
    with pytest.raises(ValueError, match="reserved"):
        Reward({"reward": BLEU()}, {"reward": 1.0})
    with pytest.raises(TypeError, match="callable"):
        Reward({"bleu": 1.0}, {"bleu": 1.0})


def test_pickle_round_trip():
    for reward in (make_reward("bleu"), make_reward({"bleu": 1.0, "chrf": 0.5, "coherence": 0.0})):
        clone = pickle.loads(pickle.dumps(reward))
        assert clone.components == reward.components and clone.weights == reward.weights
    clone = pickle.loads(pickle.dumps(make_reward({"bleu": 1.0, "chrf": 0.5})))
    np.testing.assert_array_equal(
        clone(PROMPTS, OUTPUTS, REFERENCES), make_reward({"bleu": 1.0, "chrf": 0.5})(PROMPTS, OUTPUTS, REFERENCES)
    )


def test_register_reward():
    register_reward("test-half", lambda: constant_half)
    try:
        np.testing.assert_array_equal(make_reward({"test-half": 2.0})(PROMPTS, OUTPUTS, REFERENCES), [1.0] * 3)
        with pytest.raises(ValueError, match="already registered"):
            register_reward("test-half", Length)
        register_reward("test-half", Length, overwrite=True)
        assert make_reward("test-half").functions["test-half"].__class__ is Length
    finally:
        REWARDS.pop("test-half", None)
    with pytest.raises(TypeError, match="callable"):
        register_reward("x", 1.0)
