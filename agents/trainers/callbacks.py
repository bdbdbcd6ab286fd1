"""SB3 callbacks made for the sequence trainers."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["TokenProgressBar"]


class TokenProgressBar(BaseCallback):
    """A tqdm bar over generated tokens (SB3's own bar assumes every sub-env steps every time)."""

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self.locals["total_timesteps"], initial=self.model.num_timesteps, unit="tok", dynamic_ncols=True
        )
        self._seen = self.model.num_timesteps

    def _on_step(self) -> bool:
        self._bar.update(self.model.num_timesteps - self._seen)
        self._seen = self.model.num_timesteps
        return True

    def _on_rollout_end(self) -> None:
        ep = self.model.ep_info_buffer
        if ep:
            self._bar.set_postfix(reward=f"{np.mean(ep):.3f}", refresh=False)

    def _on_training_end(self) -> None:
        self._bar.close()
