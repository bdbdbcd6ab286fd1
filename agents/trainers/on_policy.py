"""The on-policy loop every trainer shares, as SB3's ``OnPolicyAlgorithm``: collect a rollout, train on it, log.

:class:`OnPolicyTrainer` owns ``learn``: each iteration :meth:`~OnPolicyTrainer.collect_rollouts`
plays one episode per sub-env (:func:`agents.trainers.rollout.collect_rollout`), then
:meth:`~OnPolicyTrainer.train` runs epochs of shuffled minibatches with gradient accumulation and
clipping, and the iteration is logged and, when asked, checkpointed. As SB3's ``PPO`` overrides
``train``, an algorithm overrides two hooks:

- ``_prepare(batch)``: under ``no_grad``, put what the loss needs into ``batch.extra``
  (advantages, returns, reference log-probs) and return statistics to log;
- ``_loss(batch, norm)``: the loss of one micro-batch, already divided by its minibatch's
  token and episode counts, so accumulated micro-batches sum to the minibatch's mean.

The group layout (GRPO's replies per prompt) is data: the rollout's ``RolloutBatch.group_size``,
which the minibatch order, the scoring and the advantages read.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback

from agents.trainers import persistence
from agents.trainers.base import TrainerBase
from agents.trainers.callbacks import TokenProgressBar
from agents.trainers.interrupts import Stop, catch_signals
from agents.trainers.periodic import PeriodicCheckpoints
from agents.trainers.persistence import AUTO
from agents.trainers.reference import reference_logprobs
from agents.trainers.rollout import RolloutBatch, collect_rollout
from agents.trainers.scoring import score_tokens
from text_gym.errors import check_positive_int

__all__ = ["OnPolicyTrainer", "minibatch_order"]


def minibatch_order(n: int, group_size: int, generator: torch.Generator) -> torch.Tensor:
    """A shuffled order of ``n`` episodes that keeps consecutive groups of ``group_size`` whole.

    >>> minibatch_order(6, 2, torch.Generator().manual_seed(0)).tolist()  # groups (0, 1), (2, 3), (4, 5)
    [4, 5, 0, 1, 2, 3]
    """
    unit = group_size if n % group_size == 0 else 1
    return (torch.randperm(n // unit, generator=generator)[:, None] * unit + torch.arange(unit)).flatten()


class OnPolicyTrainer(TrainerBase):
    """A trainer with the on-policy loop; subclasses provide ``_prepare`` and ``_loss`` (see the module docstring).

    Args: as :class:`~agents.trainers.base.TrainerBase`.
    """

    # ------------------------------------------------------------------ the loop
    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
        checkpoint_on_interrupt: str | os.PathLike[str] | None = AUTO,
        checkpoints: PeriodicCheckpoints | None = None,
    ) -> OnPolicyTrainer:
        """Alternate rollouts and updates until at least ``total_timesteps`` tokens have been generated.

        A rollout is never cut short to meet the budget (its episodes would be incomplete), so
        ``learn`` stops at the first iteration boundary at or after ``total_timesteps``: it
        usually generates a little more, up to one rollout (``n_envs * max_new_tokens`` tokens).
        ``num_timesteps`` counts what was generated; the progress bar stops at the budget.

        Args:
            total_timesteps: Generated tokens (env steps) to train for, at least.
            callback: An SB3 callback, a list of them, or a function ``(locals, globals) -> bool``.
            log_interval: Dump the logger every this many iterations.
            tb_log_name: Unused (the TensorBoard folder is fixed by ``tensorboard_log``); SB3 signature.
            reset_num_timesteps: Count from zero; False continues the count of a previous ``learn``.
            progress_bar: Show a tqdm bar over tokens.
            checkpoint_on_interrupt: On SIGINT or SIGTERM, where to save the last complete iteration
                (``"auto"``: ``<ClassName>_interrupted.zip`` in the working folder; None: nowhere)
                before raising :class:`~agents.trainers.interrupts.TrainingInterrupted`.
            checkpoints: Save every few minutes between iterations (:class:`PeriodicCheckpoints`).

        Returns:
            self

        Raises:
            ValueError: ``total_timesteps`` is not a positive int, or there is no env.
            TrainingInterrupted: A signal stopped training; the message says how to resume.
        """
        del tb_log_name
        if self.env is None:
            raise ValueError("expected an env to learn on, got None: pass one to the constructor or call set_env(env).")
        check_positive_int("total_timesteps", total_timesteps, "tokens to generate")
        if reset_num_timesteps:
            self.num_timesteps, self.iteration = 0, 0
        total_timesteps = int(total_timesteps) + (0 if reset_num_timesteps else self.num_timesteps)
        self._total_timesteps = total_timesteps
        callback = self._init_callback(callback, progress_bar)
        self._start_time, self._start_steps = time.perf_counter(), self.num_timesteps
        callback.on_training_start(locals(), globals())
        with catch_signals() as stop:
            while not self._should_stop(total_timesteps, stop):
                if not self._iterate(callback, stop, total_timesteps):
                    break
                if log_interval and self.iteration % log_interval == 0:
                    self.logger.dump(step=self.num_timesteps)
                if checkpoints is not None:
                    checkpoints.maybe_save(self)
            if stop.signum is not None:
                persistence.interrupted(self, stop.signum, checkpoint_on_interrupt, total_timesteps)
        callback.on_training_end()
        return self

    def _iterate(self, callback: BaseCallback, stop: Stop, total_timesteps: int) -> bool:
        """One rollout, then one update; False when a callback or a signal cut the rollout short.

        A rollout cut short by a signal does not count: its steps and random draws are rewound,
        so a checkpoint saved now resumes exactly where the last complete iteration ended.
        """
        callback.on_rollout_start()
        start = time.perf_counter()
        before = persistence.snapshot(self)
        batch = self.collect_rollouts(callback, stop)
        if batch is None:
            if stop.signum is not None:
                persistence.rewind(self, before)
            return False
        rollout_s = time.perf_counter() - start
        self._record_episodes(batch)
        callback.update_locals(locals())
        callback.on_rollout_end()
        self.iteration += 1
        self._current_progress_remaining = max(0.0, 1.0 - self.num_timesteps / total_timesteps)
        start = time.perf_counter()
        stats = self.train(batch)
        self._log_iteration(batch, stats, rollout_s, time.perf_counter() - start)
        return True

    # ------------------------------------------------------------------ rollouts
    def _should_stop(self, total_timesteps: int, stop: Stop) -> bool:
        """Whether to end ``learn`` before the next iteration; under ``accelerate`` every rank agrees.

        Ranks count their own tokens, and episodes end at different lengths, so one rank can reach
        ``total_timesteps`` an iteration before another; if it stopped alone, the others would wait
        forever in the next gradient all-reduce. So all stop once any one is done (or signalled).
        """
        done = self.num_timesteps >= total_timesteps or stop.signum is not None
        if self.accelerator is None:
            return done
        flags = self.accelerator.gather(torch.tensor([float(done)], device=self.device))
        return bool(flags.max().item())

    def _init_callback(self, callback: Any, progress_bar: bool) -> BaseCallback:
        # As SB3's BaseAlgorithm._init_callback, with a bar that counts tokens.
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar and self._is_main:
            callback = CallbackList([callback, TokenProgressBar()])
        callback.init_callback(self)  # type: ignore[arg-type]
        return callback

    def collect_rollouts(self, callback: BaseCallback, stop: Stop | None = None) -> RolloutBatch | None:
        """One episode per sub-env; None when a callback or a signal cut it short.

        Consecutive groups of ``group_size`` envs are reset with one seed, so each group draws one
        prompt (GRPO; 1 elsewhere); the batch records the group size and the seeds.
        """

        def on_step(step_locals: dict[str, Any]) -> bool:
            self.num_timesteps += int(step_locals["alive"].sum())
            callback.update_locals(step_locals)
            return bool(callback.on_step()) and (stop is None or stop.signum is None)

        self.policy.eval()
        group_seeds = [int(s) for s in self._np_random.integers(2**31, size=self.env.num_envs // self.group_size)]
        return collect_rollout(
            self.policy,
            self.env,
            self.layout,
            seeds=[seed for seed in group_seeds for _ in range(self.group_size)],
            temperature=self.config.temperature,
            generator=self._generator,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            on_step=on_step,
            with_values=self.uses_critic,
            group_size=self.group_size,
            plan=self._reply_plan(),
        )

    def _reply_plan(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """Where a rollout's replies come from: None samples them from the policy; a subclass may plan them
        (``collect_rollout``'s ``plan``, as GRPO's ``candidates="beam"`` does)."""
        return None

    # ------------------------------------------------------------------ the update
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
            order = minibatch_order(n, batch.group_size, cpu_gen)
            for start in range(0, n, batch_size):
                self._minibatch_step(batch, order[start : start + batch_size], stats)
                stop = self._early_stop(stats)
                if stop:
                    break
            if stop:
                break
        self._weights_changed()
        return {**prepared, **{key: float(np.mean(values)) for key, values in stats.items()}}

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
                group_size=batch.group_size if self.accelerator is None else 1,
                pack=self.accelerator is None,
            )

    def _reference_logprobs(self, batch: RolloutBatch) -> torch.Tensor:
        """Reply log-probs ``(B, T)`` under the KL reference (:mod:`agents.trainers.reference`).

        Without LoRA the frozen copy is made on first use, unless a warm start made it already.
        """
        if self._reference is None and self.policy.lora_config is None:
            self._reference = self.policy.make_reference()
        step = self.config.micro_batch_size or self.config.batch_size or len(batch)
        return reference_logprobs(self.policy, self._reference, batch, self._score, step)

    # ------------------------------------------------------------------ logging
    def _record_episodes(self, batch: RolloutBatch) -> None:
        self.ep_info_buffer.extend(batch.returns.tolist())
        self.ep_len_buffer.extend(batch.lengths.tolist())

    def _log_iteration(self, batch: RolloutBatch, stats: dict[str, float], rollout_s: float, update_s: float) -> None:
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        tokens = int(batch.lengths.sum())
        row = {
            "rollout/ep_rew_mean": float(np.mean(self.ep_info_buffer)),
            "rollout/ep_len_mean": float(np.mean(self.ep_len_buffer)),
            "rollout/batch_rew_mean": float(batch.returns.mean()),
            "time/iterations": self.iteration,
            "time/fps": int((self.num_timesteps - self._start_steps) / elapsed),
            "time/tokens_per_s_iteration": tokens / max(rollout_s + update_s, 1e-9),
            "time/rollout_s": rollout_s,
            "time/update_s": update_s,
            "time/time_elapsed": int(elapsed),
            "time/total_timesteps": self.num_timesteps,
            "train/n_updates": self._n_updates,
            **{f"train/{key}": value for key, value in stats.items()},
        }
        for key, value in row.items():
            self.logger.record(key, value)
        self.history.append({key: float(value) for key, value in row.items()})
