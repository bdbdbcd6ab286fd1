"""Shared settings for the agents tests."""

from __future__ import annotations

import torch

# The tiny models do microsecond-sized matmuls; extra threads only spin (and the test machines
# are shared), which made a 128-step PPO run 10x slower.
torch.set_num_threads(1)
