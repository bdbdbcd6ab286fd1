"""Shared settings for the agents tests."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

# The tiny models do microsecond-sized matmuls; extra threads only spin (and the test machines
# are shared), which made a 128-step PPO run 10x slower.
torch.set_num_threads(1)


class KeepRollouts(BaseCallback):
    """Keeps every rollout's batch (its advantages are filled in by the update that follows)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.batches.append(self.locals["batch"])


@pytest.fixture
def kept_rollouts() -> KeepRollouts:
    """A callback that keeps every rollout's batch: ``learn(n, callback=kept_rollouts)``, then ``.batches``."""
    return KeepRollouts()
