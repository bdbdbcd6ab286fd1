"""A one-time warning when SB3's update settings will be expensive for a language model.

PPO's defaults (``n_epochs=10``, ``batch_size=64``) suit small MLPs. With an LM, each pass over
a rollout costs a forward and a backward pass of the whole model over every episode prefix in
each minibatch, and small minibatches share few prefixes
(:func:`~agents.modeling.prefix.grouped_last_token_outputs`). The policy cannot read the
algorithm's settings, but it sees what they do: :class:`UpdateCost` counts the steps a rollout
collected and the steps the update evaluates, and warns once the update starts a second pass.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

__all__ = ["ExpensiveUpdateWarning", "UpdateCost"]


class ExpensiveUpdateWarning(UserWarning):
    """SB3's update makes several passes over the rollout with a language model policy."""


@dataclass
class UpdateCost:
    """Steps collected by the last rollout and evaluated by the current update (see the module docstring)."""

    collected: int = 0  # steps the policy chose since the last update
    rollout: int = 0  # steps of the rollout the current update trains on
    evaluated: int = 0  # steps evaluated by the current update so far
    minibatch: int = 0  # the update's first minibatch size
    warned: bool = False

    def on_rollout_step(self, n: int) -> None:
        """The policy chose actions for ``n`` envs during a rollout."""
        self.collected += n

    def on_update_start(self) -> None:
        """SB3 switched the policy to training mode: an update of the rollout just collected begins."""
        if self.collected:
            self.rollout, self.collected = self.collected, 0
        self.evaluated, self.minibatch = 0, 0

    def on_minibatch(self, n: int) -> None:
        """The update evaluated a minibatch of ``n`` steps; warn the first time a second pass starts."""
        self.minibatch = self.minibatch or n
        self.evaluated += n
        if self.warned or not self.rollout or self.evaluated <= self.rollout:
            return
        self.warned = True
        warnings.warn(
            f"The update is making more than one pass (n_epochs > 1) over a rollout of {self.rollout} steps, in "
            f"minibatches of {self.minibatch}. With a language model each pass costs a forward and a backward pass of "
            "the LM over every episode in each minibatch; PPO's defaults (n_epochs=10, batch_size=64) take hours on a "
            "CPU. For a CPU: n_epochs=1, batch_size=n_steps * n_envs (one minibatch shares each episode's forward "
            "pass between its steps), and policy_kwargs={'gradient_checkpointing': True} to bound memory. "
            "This warning is shown once.",
            ExpensiveUpdateWarning,
            stacklevel=3,
        )
