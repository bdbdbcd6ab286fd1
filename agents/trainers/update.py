"""One update on a rollout: epochs of shuffled minibatches, gradient accumulation, clipping.

:class:`UpdateMixin` is the half of :class:`~agents.trainers.base.TrainerBase` that SB3 puts in
``PPO.train``, written once for every sequence trainer. An algorithm fills in two hooks:

- ``_prepare(batch)``: under ``no_grad``, put what the loss needs into ``batch.extra``
  (advantages, returns, reference log-probs) and return statistics to log;
- ``_loss(batch, norm)``: the loss of one micro-batch, already divided by its minibatch's
  token and episode counts, so accumulated micro-batches sum to the minibatch's mean.

It also scores replies under the current policy (:meth:`_score`) and under the frozen reference
(:meth:`_reference_logprobs`), which the losses of both algorithms use.
"""

from __future__ import annotations

import contextlib
import copy
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from agents.trainers.rollout import RolloutBatch
from agents.trainers.scoring import score_tokens

__all__ = ["UpdateMixin"]


class UpdateMixin:
    """The update half of a trainer (mixed into :class:`~agents.trainers.base.TrainerBase`).

    It reads the trainer's ``config``, ``policy``, ``optimizer``, ``accelerator`` and random
    generator, and calls the trainer's ``_weights_changed`` after the optimizer steps
    (:class:`~agents.trainers.predict.PredictMixin` then drops its KV cache).
    """

    def train(self, batch: RolloutBatch) -> dict[str, float]:
        """One update on a rollout: ``_prepare`` it, then ``n_epochs`` of minibatch steps."""
        with torch.no_grad():
            prepared = self._prepare(batch)
        self.policy.train()
        self._set_lr(self._lr(self._current_progress_remaining))
        cfg, n = self.config, len(batch)
        batch_size = min(cfg.batch_size or n, n)
        stats: dict[str, list[float]] = defaultdict(list)
        cpu_gen = torch.Generator().manual_seed(int(self._np_random.integers(2**31)))
        stop = False
        for _ in range(cfg.n_epochs):
            order = self._minibatch_order(n, cpu_gen)
            for start in range(0, n, batch_size):
                self._minibatch_step(batch, order[start : start + batch_size], stats)
                stop = self._early_stop(stats)
                if stop:
                    break
            if stop:
                break
        self._weights_changed()
        return {**prepared, **{key: float(np.mean(values)) for key, values in stats.items()}}

    def _minibatch_order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A shuffled order of ``n`` episodes that keeps prompt groups whole (see ``_prompt_group``)."""
        unit = self._prompt_group if n % self._prompt_group == 0 else 1
        return (torch.randperm(n // unit, generator=generator)[:, None] * unit + torch.arange(unit)).flatten()

    def _minibatch_step(self, batch: RolloutBatch, rows: torch.Tensor, stats: dict[str, list[float]]) -> None:
        """One optimizer step on episodes ``rows``, accumulated over micro-batches; appends to ``stats``."""
        cfg = self.config
        micro = min(cfg.micro_batch_size or len(rows), len(rows))
        norm = {
            "tokens": float(batch.response_mask[rows.to(self.device)].sum().clamp(min=1)),
            "episodes": float(len(rows)),
        }
        self.optimizer.zero_grad(set_to_none=True)
        for part in rows.split(micro):
            loss, info = self._loss(batch.select(part), norm)
            (self.accelerator.backward(loss) if self.accelerator is not None else loss.backward())
            for key, value in info.items():
                stats[key].append(value)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        if self.accelerator is not None:
            grad_norm = self.accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        stats["grad_norm"].append(float(grad_norm))
        self.optimizer.step()
        self._n_updates += 1

    # ------------------------------------------------------------------ hooks
    def _prepare(self, batch: RolloutBatch) -> dict[str, float]:
        """Fill ``batch.extra`` with what ``_loss`` needs (advantages...); return stats to log. Under no_grad."""
        raise NotImplementedError

    def _loss(self, batch: RolloutBatch, norm: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one micro-batch, already divided by the minibatch's ``norm`` (tokens, episodes)."""
        raise NotImplementedError

    def _early_stop(self, stats: dict[str, list[float]]) -> bool:
        """Hook: stop the epochs early (SB3's ``target_kl``)."""
        return False

    # ------------------------------------------------------------------ scoring
    def _score(
        self, batch: RolloutBatch, model: Any = None, with_values: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """One forward over prompt + reply: log-probs ``(B, T)``, values ``(B, T)`` or None, entropy ``(B, T)``."""
        with self._autocast():
            return score_tokens(
                model if model is not None else self._train_model,
                batch,
                temperature=self.config.temperature,
                vocab_limit=self._vocab_limit,
                with_values=with_values,
                group_size=self._prompt_group if self.accelerator is None else 1,
                pack=self.accelerator is None,
            )

    @property
    def _kl_penalized(self) -> bool:
        """Hook: whether the loss penalises the KL to the reference policy (GRPO's ``beta``, PPO's ``kl_coef``)."""
        return False

    def _make_reference(self) -> torch.nn.Module:
        """A frozen copy of the policy's LM as it is now (eval mode, no gradients).

        It becomes the KL reference after a warm start (see ``warm_start``): RL is then held near
        what the warm start learned, not near the untrained model. With LoRA the adapters are
        merged into the copy's weights (one plain LM, as without LoRA), because disabling the
        adapters, the reference before any warm start, gives the base model, not the warm-started one.
        """
        if self.policy.lora_config is None:
            return self.policy.make_reference()
        return copy.deepcopy(self.policy.lm).merge_and_unload().eval().requires_grad_(False)

    @torch.no_grad()
    def _reference_logprobs(self, batch: RolloutBatch) -> torch.Tensor:
        """Reply log-probs ``(B, T)`` under the reference policy, scored in micro-batches.

        The reference is the frozen copy in ``_reference`` when there is one (made after a warm
        start, or on first use without LoRA); else, with LoRA, the same LM with its adapters
        disabled (no second copy).
        """
        if self._reference is None and self.policy.lora_config is not None:
            context, model = self.policy.reference(), self.policy
        else:
            if self._reference is None:
                self._reference = self.policy.make_reference()
            context, model = contextlib.nullcontext(), self._reference
        n, width = len(batch), batch.response_ids.shape[1]
        step = self.config.micro_batch_size or self.config.batch_size or n
        parts = []
        with context:
            for rows in torch.arange(n).split(step):
                logprobs, _, _ = self._score(batch.select(rows), model=model)
                parts.append(torch.nn.functional.pad(logprobs, (0, width - logprobs.shape[1])))
        return torch.cat(parts) * batch.response_mask

    # ------------------------------------------------------------------ learning rate
    def _lr(self, progress_remaining: float) -> float:
        lr = self.config.learning_rate
        return float(lr(progress_remaining)) if callable(lr) else float(lr)

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.logger.record("train/learning_rate", lr)
