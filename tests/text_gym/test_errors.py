"""The shared checks refuse NaN, inf, negatives and text flags; user errors are told apart from bugs."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from text_gym.envs import TextGenEnv
from text_gym.errors import (
    DatasetError,
    check_bool,
    check_finite,
    check_non_negative_int,
    is_user_error,
    run_command,
)

BAD_FLOATS = [math.nan, math.inf, -math.inf, "1.0", None, True]


@pytest.mark.parametrize("value", BAD_FLOATS)
def test_check_finite_refuses_nan_inf_and_non_numbers(value):
    with pytest.raises(ValueError, match=r"kl: expected a finite float"):
        check_finite("kl", value)


@pytest.mark.parametrize(("value", "kwargs"), [(-1e-9, {"non_negative": True}), (0.0, {"positive": True})])
def test_check_finite_bounds(value, kwargs):
    with pytest.raises(ValueError, match=r"expected a finite float >"):
        check_finite("lr", value, **kwargs)


def test_check_finite_and_non_negative_int_accept_good_values():
    assert check_finite("x", np.float32(0.5), positive=True) == 0.5 and check_finite("x", -3) == -3.0
    assert check_non_negative_int("n", 0) == 0 and check_non_negative_int("n", np.int64(7)) == 7


@pytest.mark.parametrize("value", [-1, -5, 1.0, "3", True, None])
def test_check_non_negative_int_refuses(value):
    with pytest.raises(ValueError, match=r"n: expected an int >= 0"):
        check_non_negative_int("n", value)


@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_chat_template_must_be_a_bool(value):
    with pytest.raises(TypeError, match=r"chat_template: expected True or False"):
        check_bool("chat_template", value)
    with pytest.raises(TypeError, match=r"chat_template: expected True or False"):
        TextGenEnv(task="copy", tokenizer="tiny", chat_template=value)


def test_chat_template_takes_bools():
    assert not TextGenEnv(task="copy", tokenizer="tiny", chat_template=np.bool_(False)).prompts.use_chat_template


def _raised(function, *args):
    try:
        function(*args)
    except Exception as error:
        return error
    raise AssertionError("expected an error")


def test_user_errors_and_programming_errors_are_told_apart(tmp_path):
    assert is_user_error(_raised(check_finite, "kl", math.nan))  # our validation
    assert is_user_error(_raised(gym.make, "NoSuchEnv-v0"))  # a gymnasium.error.Error
    assert is_user_error(DatasetError("bad file"))
    assert is_user_error(_raised(open, tmp_path / "missing.jsonl"))  # a user's path
    assert not is_user_error(_raised(np.zeros, -1))  # a ValueError inside a library: a bug of ours
    assert not is_user_error(_raised(lambda: {}["key"]))
    assert not is_user_error(_raised(lambda: None.attribute))


def _main(error):
    def main(argv):
        raise error

    return main


def test_run_command_prints_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as stop:
        run_command(_main(DatasetError("the file is empty")), "prog", [])
    assert stop.value.code == 2
    assert capsys.readouterr().err == "prog: error: the file is empty\n"


def test_run_command_debug_and_bugs_keep_the_traceback():
    with pytest.raises(DatasetError):
        run_command(_main(DatasetError("the file is empty")), "prog", ["--debug"])
    with pytest.raises(KeyError):
        run_command(_main(KeyError("bug")), "prog", [])
