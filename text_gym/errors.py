"""Errors raised by text_gym, the shared argument checks, and which errors a command line reports in one line.

Every project error subclasses :class:`gymnasium.error.Error`, so ``except gymnasium.error.Error``
catches them, and also the matching built-in (``ValueError``, ``ImportError``) so plain Python
code can handle them without importing text_gym.

**User errors.** The command lines (``python -m agents.train``, ``python -m
benchmarks.leaderboard``) print a user error as one line, ``<prog>: error: <message>``, and exit
with status 2, as argparse does; ``--debug`` shows the traceback instead. A user error
(:func:`is_user_error`) is:

- a :class:`gymnasium.error.Error` (every text_gym error, and Gymnasium's own, such as an
  unknown env id);
- a ``ValueError`` or ``TypeError`` raised by this project's code (``text_gym``, ``agents``,
  ``benchmarks``): its argument and data checks, whose messages say "expected X, got Y";
- ``FileNotFoundError``, ``NotADirectoryError``, ``IsADirectoryError`` or ``PermissionError``:
  a path the user gave.

Anything else is a programming error and keeps its traceback: ``KeyError``, ``AttributeError``,
``RuntimeError``, an ``AssertionError``, and a ``ValueError`` or ``TypeError`` raised inside a
library (torch, numpy, transformers), where the message would not say what the user should fix.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from gymnasium import error as gym_error


class TextGymError(gym_error.Error):
    """Base class of every text_gym error."""


class UnknownNameError(TextGymError, ValueError):
    """A task, reward, tokenizer or model name that is not registered; the message lists the known ones."""


class DatasetError(TextGymError, ValueError):
    """A dataset that is empty or malformed; the message names the file and line where known."""


class MissingAssetError(TextGymError, ImportError):
    """An optional asset or package is not installed; the message names the install command."""


class RewardError(TextGymError, ValueError):
    """A reward function returned something unusable (wrong length, NaN, infinite)."""


class PromptTooLongError(TextGymError, ValueError):
    """A tokenized prompt does not fit in ``max_prompt_tokens``."""


def check_positive_int(name: str, value: object, what: str = "") -> int:
    """Return ``value`` as an int if it is a positive integer (not a bool); else raise ``ValueError``.

    The one check behind every size, budget and count argument, so they all fail alike:
    ``"n_envs: expected a positive int, got 0."``; ``what`` adds what the number counts.

    >>> check_positive_int("n_envs", 4)
    4
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        detail = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected a positive int{detail}, got {value!r}.")
    return int(value)


def check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    """Raise ``ValueError`` naming the choices unless ``value`` is one of them."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}.")


def check_non_negative_int(name: str, value: object, what: str = "") -> int:
    """Return ``value`` as an int if it is an integer >= 0 (not a bool); else raise ``ValueError``.

    For counts where 0 means none or "off"; ``what`` says so in the message.

    >>> check_non_negative_int("warm_start_tokens", 0)
    0
    >>> check_non_negative_int("warm_start_tokens", -5, "0: none")
    Traceback (most recent call last):
    ValueError: warm_start_tokens: expected an int >= 0 (0: none), got -5.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        detail = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected an int >= 0{detail}, got {value!r}.")
    return int(value)


def check_finite(name: str, value: object, *, positive: bool = False, non_negative: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number (not a bool); else raise ``ValueError``.

    NaN passes every ``<`` and ``>`` test as false, so ``if x < 0: raise`` lets it through: this
    is the one check behind every float setting. ``positive`` asks for ``> 0``, ``non_negative``
    for ``>= 0``.

    >>> check_finite("kl", 0.0, non_negative=True)
    0.0
    >>> check_finite("kl", float("nan"), non_negative=True)
    Traceback (most recent call last):
    ValueError: kl: expected a finite float >= 0, got nan.
    """
    bound = " > 0" if positive else " >= 0" if non_negative else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a finite float{bound}, got {type(value).__name__} {value!r}.")
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0) or (non_negative and number < 0):
        raise ValueError(f"{name}: expected a finite float{bound}, got {value!r}.")
    return number


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool (or a NumPy bool); else raise ``TypeError``.

    A string such as ``"no"`` is truthy, so a flag given as text would silently mean True.

    >>> check_bool("chat_template", "no")
    Traceback (most recent call last):
    TypeError: chat_template: expected True or False, got str 'no'.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}.")
    return bool(value)


_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
_OUR_PACKAGES = tuple(Path(__file__).resolve().parents[1] / name for name in ("text_gym", "agents", "benchmarks"))


def is_user_error(error: BaseException) -> bool:
    """Whether a command line reports ``error`` in one line (see the module docstring) or with its traceback."""
    if isinstance(error, (gym_error.Error, *_PATH_ERRORS)):
        return True
    if not isinstance(error, (ValueError, TypeError)):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    raised_in = Path(frames[-1].filename).resolve() if frames else None
    return raised_in is not None and any(raised_in.is_relative_to(package) for package in _OUR_PACKAGES)


@contextlib.contextmanager
def user_errors_exit(prog: str, debug: bool = False) -> Iterator[None]:
    """Turn a user error (:func:`is_user_error`) inside the block into ``<prog>: error: <message>`` and exit 2.

    With ``debug``, or for any other error, the exception propagates with its traceback.
    """
    try:
        yield
    except Exception as error:
        if debug or not is_user_error(error):
            raise
        print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def run_command(main: Callable[[list[str]], object], prog: str, argv: Sequence[str] | None = None) -> None:
    """Run a command line's ``main(argv)``, reporting user errors in one line unless ``--debug`` is in ``argv``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with user_errors_exit(prog, debug="--debug" in argv):
        main(argv)
