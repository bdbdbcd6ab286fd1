"""Errors raised by text_gym.

Every project error subclasses :class:`gymnasium.error.Error`, so ``except gymnasium.error.Error``
catches them, and also the matching built-in (``ValueError``, ``ImportError``) so plain Python
code can handle them without importing text_gym.
"""

from __future__ import annotations

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
