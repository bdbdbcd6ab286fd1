"""SB3 callbacks made for the sequence trainers, and the warm start's progress bar."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["TokenProgressBar", "WarmStartBar"]


class TokenProgressBar(BaseCallback):
    """A tqdm bar over generated tokens (SB3's own bar assumes every sub-env steps every time).

    ``learn`` finishes the rollout that crosses its budget, so the token count ends a little
    past ``total_timesteps``. The bar stops at its total (tqdm drops the total, and the bar,
    once the count passes it) and says at the end how many tokens were generated in all.
    """

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._total = self.locals["total_timesteps"]
        start = min(self.model.num_timesteps, self._total)
        self._bar = tqdm(total=self._total, initial=start, unit="tok", dynamic_ncols=True)
        self._postfix: dict[str, str] = {}

    def _on_step(self) -> bool:
        shown = min(self.model.num_timesteps, self._total)
        if shown > self._bar.n:
            self._bar.update(shown - self._bar.n)
        return True

    def _on_rollout_end(self) -> None:
        ep = self.model.ep_info_buffer
        if ep:
            self._postfix["reward"] = f"{np.mean(ep):.3f}"
            self._bar.set_postfix(self._postfix, refresh=False)

    def _on_training_end(self) -> None:
        if self.model.num_timesteps > self._total:  # the last rollout ran past the budget
            self._postfix["generated"] = f"{self.model.num_timesteps}tok"
            self._bar.set_postfix(self._postfix, refresh=False)
        self._bar.close()


class WarmStartBar:
    """A tqdm bar over a warm start's reference tokens (a context manager); does nothing when not ``enabled``."""

    def __init__(self, enabled: bool, total: int | None, done: int) -> None:
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=done, unit="tok", desc="warm start", dynamic_ncols=True)

    def __enter__(self) -> WarmStartBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, tokens: int) -> None:
        """Show ``tokens`` done in all."""
        if self._bar is not None and tokens > self._bar.n:
            self._bar.update(tokens - self._bar.n)
