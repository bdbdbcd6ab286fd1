"""Scripted agents that read the episode's task sample: the reference (a ceiling) and copy-the-input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baselines.base import Agent, Observation
from text_gym.tasks import Sample


class ScriptedAgent(Agent):
    """Emit a text fixed by the episode's task sample, token by token, then end-of-sequence.

    The agent reads the sample through the env: ``reset(info)`` must be called with each
    episode's reset info (its ``"index"``), as :func:`agents.evaluation.play` does. Subclasses
    choose the text with :meth:`reply_for`.

    Args:
        env: The env (or a list of them, one per row of a batch); wrappers are fine.
    """

    deterministic = True

    def __init__(self, env: gym.Env | Sequence[gym.Env]) -> None:
        self.envs = list(env) if isinstance(env, (list, tuple)) else [env]
        self._replies: dict[int, list[int]] = {}

    def reply_for(self, sample: Sample) -> str:
        """The text to emit for ``sample``."""
        raise NotImplementedError

    def reset(self, infos: dict[str, Any] | Sequence[dict[str, Any]], rows: Sequence[int] | None = None) -> None:
        infos = [infos] if isinstance(infos, dict) else list(infos)
        for row, info in zip(rows if rows is not None else range(len(infos)), infos):
            if "index" not in info:
                raise ValueError(
                    f"{type(self).__name__}.reset expects the env's reset info with an 'index', got keys {sorted(info)}."
                )
            env = self.envs[row].unwrapped
            tokens = env.tokenizer(self.reply_for(env.task[int(info["index"])]), add_special_tokens=False)["input_ids"]
            self._replies[row] = list(tokens) + [int(env.eos_token_id)]

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        actions = []
        for row in range(len(observations["input_ids"])):
            reply = self._replies.get(row)
            if reply is None:
                raise RuntimeError(
                    f"{type(self).__name__}: no episode started in row {row}; call reset(info) after env.reset()."
                )
            actions.append(reply.pop(0) if len(reply) > 1 else reply[0])  # eos stays for any extra step
        return np.asarray(actions, dtype=np.int64)


class ReferenceAgent(ScriptedAgent):
    """Emit the episode's first reference: a task's ceiling (at the env's reply budget)."""

    def reply_for(self, sample: Sample) -> str:
        return sample.references[0]


class CopyPromptAgent(ScriptedAgent):
    """Reply with the input unchanged: the sample's ``source`` when it names one, else its prompt.

    The trivial baseline of any transformation task: a trained agent that does not beat it has
    learned to copy. The prompt is copied as the user wrote it, without the chat template.
    """

    def reply_for(self, sample: Sample) -> str:
        return sample.source
