"""What SequencePPO and GRPO share: the SB3-shaped API, the rollout/update loop, saving, devices.

A trainer here looks like a Stable-Baselines3 algorithm from the outside (``learn``, ``predict``,
``save``/``load``, ``get_env``, ``logger``, ``num_timesteps``, SB3 callbacks) but does its work on
whole sequences: :func:`agents.trainers.rollout.collect_rollout` plays one episode per sub-env with a KV
cache, and each update epoch scores every episode with one forward pass. Subclasses provide
``_prepare(batch)`` (advantages and the like, under ``no_grad``) and ``_loss(batch, ...)`` (the loss
of one micro-batch), as SB3's ``PPO`` overrides ``train`` on top of ``OnPolicyAlgorithm``.

One timestep is one env step, i.e. one generated token, as in SB3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.utils import set_random_seed

from agents.modeling.loading import resolve_device
from agents.modeling.tokens import positions_from_mask
from agents.trainers.callbacks import TokenProgressBar
from agents.trainers.checkpoint import (
    CheckpointError,
    PeriodicCheckpoints,
    archive_path,
    read_archive,
    restore_rng,
    restore_trainer_state,
    rng_state,
    schedule_from_json,
    trainer_state,
    write_archive,
)
from agents.trainers.config import TrainerConfig, build_actor_critic
from agents.trainers.envs import EnvLayout, env_layout, make_trainer_envs
from agents.trainers.interrupts import TrainingInterrupted, catch_signals
from agents.trainers.rollout import RolloutBatch, collect_rollout
from agents.trainers.scoring import score_tokens
from text_gym.errors import check_positive_int

__all__ = ["PeriodicCheckpoints", "TrainerBase", "TrainerConfig", "TrainingInterrupted"]

AUTO = "auto"
"""``learn(checkpoint_on_interrupt=AUTO)``: save to ``<ClassName>_interrupted.zip`` in the working folder."""


class TrainerBase:
    """The SB3-shaped shell of a sequence-level trainer; see the module docstring.

    Args:
        policy: ``agents.LMPolicy`` (the model then comes from ``policy_kwargs["model"]``), a model
            preset name or path (``"tiny"``, ``"smollm2-135m"``), or an ``LMActorCritic``.
        env: A TextGen env, a Gymnasium vector env of them, an env id, or an env factory.
        policy_kwargs: For ``LMActorCritic``: ``model``, ``lora``, ``gradient_checkpointing``...
        env_kwargs: For ``gym.make`` when ``env`` is an id (``tokenizer=``, ``max_new_tokens=``...).
        tensorboard_log: Folder for TensorBoard logs (as in SB3), or None.
        verbose: 0 silent, 1 SB3's stdout table per iteration.
        seed: Seeds python, numpy and torch, the env resets and token sampling.
        device: ``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda"``...
        accelerator: An ``accelerate.Accelerator`` for several processes (see ``agents.train``), or
            None for one process.
        **kwargs: Fields of the trainer's config dataclass (``config_class``).
    """

    config_class: ClassVar[type[TrainerConfig]] = TrainerConfig
    uses_critic: ClassVar[bool] = False

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        policy_kwargs: dict[str, Any] | None = None,
        env_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 1,
        seed: int | None = None,
        device: str | torch.device = "auto",
        accelerator: Any = None,
        **kwargs: Any,
    ) -> None:
        self.config = self.config_class(**kwargs)
        self.policy_kwargs = dict(policy_kwargs or {})
        self.env_kwargs = dict(env_kwargs or {})
        self.tensorboard_log, self.verbose, self.seed = tensorboard_log, verbose, seed
        self.accelerator = accelerator
        self.device = torch.device(accelerator.device) if accelerator is not None else resolve_device(device)
        rank = accelerator.process_index if accelerator is not None else 0
        if seed is not None:
            set_random_seed(seed + rank)
        self._np_random = np.random.default_rng(None if seed is None else seed + rank)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(int(self._np_random.integers(2**31)))

        self.policy = build_actor_critic(policy, self.policy_kwargs, device=self.device)
        self.env_id: str | None = None
        self.env: gym.vector.VectorEnv | None = None
        self.layout: EnvLayout | None = None
        if env is not None:
            self.set_env(env)
        self.bf16 = (
            self.config.bf16
            if self.config.bf16 is not None
            else (self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        )
        self.autocast_dtype = torch.bfloat16 if self.bf16 else None
        if not self.uses_critic:  # no gradient would reach the critic (and DDP rejects unused parameters)
            for module in (self.policy.value_head, self.policy.critic_trunk):
                if module is not None:
                    module.requires_grad_(False)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=self._lr(1.0), weight_decay=self.config.weight_decay)
        self._train_model: torch.nn.Module = self.policy
        self._reference: torch.nn.Module | None = None
        if accelerator is not None:
            self._train_model, self.optimizer = accelerator.prepare(self.policy, self.optimizer)

        self.num_timesteps = 0
        self._total_timesteps = 0
        self._n_updates = 0
        self.iteration = 0
        self._current_progress_remaining = 1.0
        self.ep_info_buffer: deque[float] = deque(maxlen=self.config.stats_window_size)
        self.ep_len_buffer: deque[int] = deque(maxlen=self.config.stats_window_size)
        self._logger: Logger | None = None
        self._custom_logger = False
        self.history: list[dict[str, float]] = []  # one row per iteration: what was logged
        self.supervised_history: list[dict[str, float]] = []  # one row per warm-start step

    # ------------------------------------------------------------------ SB3 API
    def set_env(self, env: Any) -> None:
        """Use ``env`` for the next rollouts (wrapped into a vector env of ``n_envs`` when needed)."""
        vec_env = make_trainer_envs(env, self.config.n_envs, env_kwargs=self.env_kwargs)
        spec = env_layout(vec_env)
        self._check_fits(vec_env, spec)
        self._check_env(vec_env)
        self.env, self.layout = vec_env, spec
        self.env_id = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)

    def _check_fits(self, env: gym.vector.VectorEnv, spec: EnvLayout) -> None:
        """Check that the model can act in ``env`` before any step: logits, eos, context length."""
        sub_envs = getattr(env, "envs", None)
        tokenizer = sub_envs[0].unwrapped.tokenizer if sub_envs else None
        self.policy.check_env(spec.num_actions, tokenizer, spec.max_prompt_tokens + spec.max_new_tokens)

    def _check_env(self, env: gym.vector.VectorEnv) -> None:
        """Hook for subclasses (GRPO checks that groups fit)."""

    def get_env(self) -> gym.vector.VectorEnv | None:
        """The training vector env (what SB3 callbacks read as ``training_env``)."""
        return self.env

    def get_vec_normalize_env(self) -> None:
        """Always None: there is no VecNormalize here (SB3 callbacks ask)."""
        return None

    @property
    def logger(self) -> Logger:
        """SB3's logger; stdout by default, plus TensorBoard when ``tensorboard_log`` is set."""
        if self._logger is None:
            formats = ["stdout"] if self.verbose >= 1 and self._is_main else []
            if self.tensorboard_log and self._is_main:
                formats.append("tensorboard")
            folder = os.path.join(self.tensorboard_log, type(self).__name__) if self.tensorboard_log else None
            self._logger = configure(folder, formats)
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        """Use an SB3 ``Logger``, e.g. ``configure(folder, ["stdout", "csv", "tensorboard"])``."""
        self._logger, self._custom_logger = logger, True

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
    ) -> TrainerBase:
        """Alternate rollouts and updates until ``total_timesteps`` tokens have been generated.

        Args:
            total_timesteps: Generated tokens (env steps) to train for.
            callback: An SB3 callback, a list of them, or a function ``(locals, globals) -> bool``.
            log_interval: Dump the logger every this many iterations.
            tb_log_name: Unused (the TensorBoard folder is fixed by ``tensorboard_log``); SB3 signature.
            reset_num_timesteps: Count from zero; False continues the count of a previous ``learn``.
            progress_bar: Show a tqdm bar over tokens.
            checkpoint_on_interrupt: On SIGINT or SIGTERM, where to save the last complete step
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
        self._start_time = time.perf_counter()
        start_steps = self.num_timesteps
        callback.on_training_start(locals(), globals())
        with catch_signals() as stop:
            while not self._should_stop(total_timesteps, stop):
                callback.on_rollout_start()
                t0 = time.perf_counter()
                before = self._snapshot()
                batch = self._collect(callback, stop)
                if batch is None:  # a callback asked to stop, or a signal came: the partial rollout does not count
                    if stop.signum is not None:
                        self._rewind(before)
                    break
                rollout_s = time.perf_counter() - t0
                self._record_episodes(batch)
                callback.update_locals(locals())
                callback.on_rollout_end()
                self.iteration += 1
                self._current_progress_remaining = max(0.0, 1.0 - self.num_timesteps / total_timesteps)
                t1 = time.perf_counter()
                stats = self.train(batch)
                update_s = time.perf_counter() - t1
                self._log_iteration(batch, stats, rollout_s, update_s, start_steps)
                if log_interval and self.iteration % log_interval == 0:
                    self.logger.dump(step=self.num_timesteps)
                if checkpoints is not None:
                    checkpoints.maybe_save(self)
            if stop.signum is not None:
                self._interrupted(stop.signum, checkpoint_on_interrupt, total_timesteps)
        callback.on_training_end()
        return self

    def warm_start(
        self,
        total_tokens: int | None = None,
        *,
        max_seconds: float | None = None,
        learning_rate: float = 5e-5,
        batch_size: int = 8,
    ) -> list[dict[str, float]]:
        """Supervised warm start: teacher forcing on the training env's references (see :mod:`agents.trainers.supervised`).

        Call it before :meth:`learn`. It trains on the task and split of the training env (its
        first sub-env), with its own AdamW, and logs ``supervised/*`` rows to the logger.

        Args:
            total_tokens: Reference tokens to train on.
            max_seconds: Or a budget of process CPU-seconds (whichever ends first).
            learning_rate: AdamW step size of the warm start.
            batch_size: Samples per optimizer step.

        Returns:
            One row per optimizer step (loss, tokens so far, gradient norm, CPU-seconds).

        Raises:
            TypeError: The training env is not a synchronous vector env (the task must be readable here).
            ValueError: No budget, or one that is not positive.
        """
        from agents.trainers.supervised import teacher_forcing

        if self.accelerator is not None:
            raise ValueError(
                "warm_start runs in one process; got an accelerator. Warm-start first, save, then launch RL."
            )
        sub_envs = getattr(self.env, "envs", None)
        if not sub_envs:
            raise TypeError(
                f"warm_start reads the task of the training env; expected a SyncVectorEnv, got {type(self.env).__name__}."
            )

        def log(row: dict[str, float]) -> None:
            for key, value in row.items():
                self.logger.record(key, value)
            self.logger.dump(step=int(row["supervised/tokens"]))

        rows = teacher_forcing(
            self.policy,
            sub_envs[0].unwrapped,
            total_tokens=total_tokens,
            max_seconds=max_seconds,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_grad_norm=self.config.max_grad_norm,
            temperature=self.config.temperature,
            seed=int(self._np_random.integers(2**31)),
            device=self.device,
            autocast=self._autocast if self.autocast_dtype is not None else None,
            on_step=log,
        )
        self.supervised_history += rows
        return rows

    def _should_stop(self, total_timesteps: int, stop: Any) -> bool:
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

    def _collect(self, callback: BaseCallback, stop: Any = None) -> RolloutBatch | None:
        def on_step(step_locals: dict[str, Any]) -> bool:
            self.num_timesteps += int(step_locals["alive"].sum())
            callback.update_locals(step_locals)
            return bool(callback.on_step()) and (stop is None or stop.signum is None)

        self.policy.eval()
        return collect_rollout(
            self.policy,
            self.env,
            self.layout,
            seeds=self._reset_seeds(self.env.num_envs),
            temperature=self.config.temperature,
            generator=self._generator,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            on_step=on_step,
            with_values=self.uses_critic,
            group_size=self._prompt_group,
        )

    @property
    def _prompt_group(self) -> int:
        """Consecutive envs that share a prompt (GRPO's group size), so its forward is shared."""
        return 1

    def _reset_seeds(self, num_envs: int) -> list[int]:
        """Per-env reset seeds for the next rollout (GRPO repeats one per group)."""
        return [int(s) for s in self._np_random.integers(2**31, size=num_envs)]

    @torch.no_grad()
    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Next token for each observation (SB3's signature; ``state`` is passed through).

        Each call runs the model over the whole observed sequence, as SB3's ``evaluate_policy``
        expects; training and :func:`agents.train.evaluate` use the KV-cached rollout instead.
        """
        del episode_start
        ids = torch.as_tensor(np.asarray(observation["input_ids"]), device=self.device).long()
        mask = torch.as_tensor(np.asarray(observation["attention_mask"]), device=self.device).long()
        single = ids.dim() == 1
        ids, mask = (ids[None], mask[None]) if single else (ids, mask)  # (B, L)
        # Keep the columns from the first real token to the last: the reply's tail is padding.
        used = mask.any(0).nonzero()
        lo, hi = int(used[0]), int(used[-1]) + 1
        ids, mask = ids[:, lo:hi], mask[:, lo:hi]
        last = hi - lo - 1 - mask.flip(1).argmax(1)  # (B,) index of each row's last real token
        self.policy.eval()
        with self._autocast():
            out = self.policy(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask))
        logits = out.logits[torch.arange(len(ids)), last, : self._vocab_limit].float() / self.config.temperature
        if deterministic:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=self._generator).squeeze(-1)
        actions_np = actions.cpu().numpy()
        return (actions_np[0] if single else actions_np), state

    @property
    def _vocab_limit(self) -> int:
        return self.layout.vocab_limit if self.layout is not None else 1 << 62

    # ------------------------------------------------------------------ update machinery
    def train(self, batch: RolloutBatch) -> dict[str, float]:
        """One update on a rollout: ``_prepare`` it, then ``n_epochs`` of minibatch steps."""
        with torch.no_grad():
            prepared = self._prepare(batch)
        self.policy.train()
        self._set_lr(self._lr(self._current_progress_remaining))
        cfg = self.config
        n = len(batch)
        batch_size = min(cfg.batch_size or n, n)
        micro = min(cfg.micro_batch_size or batch_size, batch_size)
        stats: dict[str, list[float]] = defaultdict(list)
        cpu_gen = torch.Generator().manual_seed(int(self._np_random.integers(2**31)))
        stop = False
        for _ in range(cfg.n_epochs):
            # Shuffle whole prompt groups, so micro-batches keep groups together (see _prompt_group).
            unit = self._prompt_group if n % self._prompt_group == 0 else 1
            order = (torch.randperm(n // unit, generator=cpu_gen)[:, None] * unit + torch.arange(unit)).flatten()
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
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
                stop = self._early_stop(stats)
                if stop:
                    break
            if stop:
                break
        return {**prepared, **{key: float(np.mean(values)) for key, values in stats.items()}}

    def _prepare(self, batch: RolloutBatch) -> dict[str, float]:
        """Fill ``batch.extra`` with what ``_loss`` needs (advantages...); return stats to log. Under no_grad."""
        raise NotImplementedError

    def _loss(self, batch: RolloutBatch, norm: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one micro-batch, already divided by the minibatch's ``norm`` (tokens, episodes)."""
        raise NotImplementedError

    def _early_stop(self, stats: dict[str, list[float]]) -> bool:
        """Hook: stop the epochs early (SB3's ``target_kl``)."""
        return False

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
            )

    @torch.no_grad()
    def _reference_logprobs(self, batch: RolloutBatch) -> torch.Tensor:
        """Reply log-probs ``(B, T)`` under the reference policy, scored in micro-batches.

        With LoRA the reference is the same LM with its adapters disabled (no second copy);
        otherwise a frozen copy made on first use.
        """
        if self.policy.lora_config is not None:
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

    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _lr(self, progress_remaining: float) -> float:
        lr = self.config.learning_rate
        return float(lr(progress_remaining)) if callable(lr) else float(lr)

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.logger.record("train/learning_rate", lr)

    # ------------------------------------------------------------------ logging
    @property
    def _is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def _record_episodes(self, batch: RolloutBatch) -> None:
        self.ep_info_buffer.extend(batch.returns.tolist())
        self.ep_len_buffer.extend(batch.lengths.tolist())

    def _log_iteration(
        self, batch: RolloutBatch, stats: dict[str, float], rollout_s: float, update_s: float, start_steps: int
    ) -> None:
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        tokens = int(batch.lengths.sum())
        row = {
            "rollout/ep_rew_mean": float(np.mean(self.ep_info_buffer)),
            "rollout/ep_len_mean": float(np.mean(self.ep_len_buffer)),
            "rollout/batch_rew_mean": float(batch.returns.mean()),
            "time/iterations": self.iteration,
            "time/fps": int((self.num_timesteps - start_steps) / elapsed),
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

    # ------------------------------------------------------------------ interrupts and resume
    def _snapshot(self) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
        """What a rollout changes before it is complete: the step count and the random states."""
        return (self.num_timesteps, *rng_state(self._np_random, self._generator))

    def _rewind(self, snapshot: tuple[int, dict[str, torch.Tensor], dict[str, Any]]) -> None:
        self.num_timesteps, tensors, meta = snapshot
        restore_rng(self._np_random, self._generator, tensors, meta)

    def _interrupted(self, signum: int, where: str | os.PathLike[str] | None, total_timesteps: int) -> None:
        path = None
        if where is not None:
            path = self.save(f"{type(self).__name__}_interrupted.zip" if where == AUTO else where)
        remaining = max(total_timesteps - self.num_timesteps, 1)
        hint = f"{type(self).__name__}.load({str(path)!r}).learn({remaining}, reset_num_timesteps=False)"
        raise TrainingInterrupted(signum, path, hint)

    def _extra_state(self) -> dict[str, Any]:
        """Hook: JSON-able state a subclass keeps across iterations (SequencePPO's KL coefficient)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Hook: restore what :meth:`_extra_state` returned."""

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint that resumes this run exactly; see :mod:`agents.trainers.checkpoint`.

        The archive holds the model (``save_pretrained``), every setting, the optimizer's state,
        every random state (torch, numpy, python, the trainer's and the envs'), the counters, the
        KL controller, the frozen reference when there is one, and the logs' history. It is
        written to exactly ``path`` (``.zip`` added only when ``path`` has no suffix),
        atomically. A setting that cannot be stored (a custom reward function or learning-rate
        schedule) is named in a warning, and :meth:`load` asks for it. Only the main process
        writes under ``accelerate``.

        Returns:
            The path written.
        """
        target = archive_path(path)
        if not self._is_main:
            return target
        state, tensors, unsaved = trainer_state(self)
        if unsaved:
            warnings.warn(
                f"{type(self).__name__}.save({str(target)!r}) cannot store {', '.join(unsaved)}; "
                "pass them again to load().",
                stacklevel=2,
            )
        return write_archive(target, self.policy, state, tensors)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: Any = None, device: str | torch.device = "auto", **kwargs: Any
    ) -> TrainerBase:
        """Rebuild a trainer saved by :meth:`save`, ready to ``learn(..., reset_num_timesteps=False)``.

        Args:
            path: The checkpoint (``.zip`` added only when it has no suffix).
            env: The env to train on; by default the saved env id with the saved env kwargs.
            device: As in the constructor.
            **kwargs: Override saved settings (config fields, ``env_kwargs``, ``verbose``...);
                required for settings the checkpoint could not store.

        Raises:
            FileNotFoundError: No checkpoint at ``path``.
            CheckpointError: It was saved by another trainer class, is incomplete, lacks a
                setting that must be passed again, or needs a tokenizer that is not available.
        """
        target = archive_path(path)
        model, state, tensors = read_archive(target, resolve_device(device))
        if state["class"] != cls.__name__:
            raise CheckpointError(
                f"{target}: expected a saved {cls.__name__}, got a saved {state['class']}; use {state['class']}.load."
            )
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        config = {
            k: schedule_from_json(v) if k == "learning_rate" else v for k, v in state["config"].items() if v is not None
        }
        config.update({k: v for k, v in kwargs.items() if k in fields})
        others = {k: v for k, v in kwargs.items() if k not in fields}
        env_kwargs = {**state.get("env_kwargs", {}), **(others.pop("env_kwargs", None) or {})}
        _check_resumable(target, state, config, env_kwargs, env)
        env = env if env is not None else state.get("env_id")
        others.setdefault("seed", state.get("seed"))
        trainer = cls(model, env, device=device, env_kwargs=env_kwargs or None, **others, **config)
        restore_trainer_state(trainer, state, tensors)
        return trainer


def _check_resumable(
    target: Path, state: dict[str, Any], config: dict[str, Any], env_kwargs: dict[str, Any], env: Any
) -> None:
    """Refuse, with the fix, a load that would silently train with other settings than the saved run."""
    missing = []
    for item in state.get("unsaved", []):
        name = item.split("=", 1)[0]
        if name.startswith("env_kwargs["):
            key = name[len("env_kwargs['") : -2]
            if key not in env_kwargs and env is None:
                missing.append(f"env_kwargs={{{key!r}: ...}} (it was {item.split('=', 1)[1]})")
        elif name not in config:
            missing.append(f"{name}=... (it was {item.split('=', 1)[1]})")
    if missing:
        raise CheckpointError(
            f"{target} was saved with settings that cannot be stored; pass {', '.join(missing)} to load()."
        )
    tokenizer = env_kwargs.get("tokenizer")
    if isinstance(tokenizer, str):
        from text_gym.tokenization import TOKENIZER_PRESETS

        if tokenizer not in TOKENIZER_PRESETS and not Path(tokenizer).is_dir():
            raise CheckpointError(
                f"{target} was trained with tokenizer {tokenizer!r}, which is neither a preset {list(TOKENIZER_PRESETS)} nor a "
                "folder here; pass env_kwargs={'tokenizer': ...} with the same tokenizer."
            )
