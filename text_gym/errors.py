"""Errors raised by text_gym.

Every project error subclasses :class:`gymnasium.error.Error`, so ``except gymnasium.error.Error``
catches them, and also the matching built-in (``ValueError``, ``ImportError``) so plain Python
code can handle them without importing text_gym.
"""

from __future__ import annotations

import numbers

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
