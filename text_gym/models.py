"""Deprecated: model loading moved to :mod:`agents.modeling.loading` in 0.2; removed in 0.3.

The envs need tokenizers (:mod:`text_gym.tokenization`), never models, so loading models now lives
with the agents. The SmolLM2 conversion both share is :func:`text_gym.assets.smollm2_checkpoint`.
Nothing in ``text_gym`` imports this module; it exists only so that 0.1 code keeps working.
"""

from __future__ import annotations

from agents._moved import warn_moved
from agents.modeling.loading import *  # noqa: F403
from agents.modeling.loading import __all__ as _moved_names
from text_gym.assets import smollm2_checkpoint

warn_moved("text_gym.models", "agents.modeling.loading", skip=(__file__,))

__all__ = [*_moved_names, "smollm2_checkpoint"]
