"""SB3 callbacks made for the sequence trainers, and the warm start's progress bar."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["TokenProgressBar", "WarmStartBar"]


class TokenProgressBar(BaseCallback):
    """A tqdm bar over generated tokens (SB3's own bar assumes every sub-env steps every time).

    ``learn`` finishes the rollout that crosses its budget, so the token count ends a little
    past ``total_timesteps`` (up to one rollout, ``n_envs * max_new_tokens``). The bar says so
    from the start (``whole rollouts: up to +N``), and once the count passes the budget its
    total grows with it, so that at the end it shows the tokens that really ran.
    """

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._total = self.locals["total_timesteps"]
        start = min(self.model.num_timesteps, self._total)
        self._bar = tqdm(total=self._total, initial=start, unit="tok", dynamic_ncols=True)
        layout, env = self.model.layout, self.model.env
        self._postfix: dict[str, str] = {}
        if layout is not None and env is not None:
            self._postfix["whole rollouts"] = f"up to +{env.num_envs * layout.max_new_tokens}tok"
            self._bar.set_postfix(self._postfix)

    def _on_step(self) -> bool:
        count = self.model.num_timesteps
        if count > self._bar.total:  # the last rollout runs past the budget: the total is what really runs
            self._bar.total = count
        if count > self._bar.n:
            self._bar.update(count - self._bar.n)
        return True

    def _on_rollout_end(self) -> None:
        ep = self.model.ep_info_buffer
        if ep:
            self._postfix["reward"] = f"{np.mean(ep):.3f}"
            self._bar.set_postfix(self._postfix, refresh=False)

    def _on_training_end(self) -> None:
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
        """Show ``tokens`` done in all (the last batch may pass the budget: the total follows)."""
        if self._bar is None:
            return
        if self._bar.total is not None and tokens > self._bar.total:
            self._bar.total = tokens
        if tokens > self._bar.n:
            self._bar.update(tokens - self._bar.n)

    def write(self, line: str) -> None:
        """Print ``line`` above the bar (or just print it)."""
        if self._bar is None:
            print(line, flush=True)
        else:
            self._bar.write(line)
