"""What SequencePPO and GRPO share: the SB3-shaped API and the rollout/update loop.

A trainer here looks like a Stable-Baselines3 algorithm from the outside (``learn``, ``predict``,
``save``/``load``, ``get_env``, ``logger``, ``num_timesteps``, SB3 callbacks) but does its work on
whole sequences: :func:`agents.trainers.rollout.collect_rollout` plays one episode per sub-env with
a KV cache, and each update epoch scores every episode with one forward pass. As SB3's ``PPO``
overrides ``train`` on top of ``OnPolicyAlgorithm``, a subclass provides ``_prepare(batch)``
(advantages and the like, under ``no_grad``) and ``_loss(batch, ...)`` (the loss of one
micro-batch). ``TrainerBase`` itself holds the settings, the env and the ``learn`` loop; each
other concern is a mixin in its own module: the update that calls those hooks
(:class:`~agents.trainers.update.UpdateMixin`), ``predict``
(:class:`~agents.trainers.predict.PredictMixin`), ``warm_start``
(:class:`~agents.trainers.warm_start.WarmStartMixin`), and ``save``/``load`` with the rewind
behind safe interrupts (:class:`~agents.trainers.persistence.PersistenceMixin`).

One timestep is one env step, i.e. one generated token, as in SB3.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections import deque
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import set_random_seed

from agents.modeling.loading import resolve_device
from agents.modeling.prepare import adamw
from agents.trainers.callbacks import TokenProgressBar
from agents.trainers.config import TrainerConfig, build_actor_critic
from agents.trainers.envs import EnvLayout, env_layout, make_trainer_envs
from agents.trainers.interrupts import Stop, TrainingInterrupted, catch_signals
from agents.trainers.loggers import make_logger
from agents.trainers.periodic import PeriodicCheckpoints
from agents.trainers.persistence import AUTO, PersistenceMixin
from agents.trainers.predict import PredictMixin
from agents.trainers.rollout import RolloutBatch, collect_rollout
from agents.trainers.update import UpdateMixin
from agents.trainers.warm_start import WarmStartMixin
from text_gym.errors import check_positive_int

__all__ = ["AUTO", "PeriodicCheckpoints", "TrainerBase", "TrainerConfig", "TrainingInterrupted"]


class TrainerBase(UpdateMixin, PredictMixin, WarmStartMixin, PersistenceMixin):
    """The SB3-shaped shell of a sequence-level trainer; see the module docstring.

    Args:
        policy: ``agents.LMPolicy`` (the model then comes from ``policy_kwargs["model"]``), a model
            preset name or path (``"tiny"``, ``"smollm2-135m"``), or an ``LMActorCritic``.
        env: A TextGen env, a Gymnasium vector env of them, an env id, or an env factory.
        policy_kwargs: For ``LMActorCritic``: ``model``, ``lora``, ``gradient_checkpointing``...
        env_kwargs: For ``gym.make`` when ``env`` is an id (``tokenizer=``, ``max_new_tokens=``...).
        tensorboard_log: Folder for TensorBoard logs (as in SB3), or None.
        verbose: 0 silent, 1 SB3's stdout table per iteration.
        seed: Seeds python, numpy and torch, the env resets, token sampling and :meth:`predict`.
        device: ``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda"``...
        accelerator: An ``accelerate.Accelerator`` for several processes (see ``agents.train``), or
            None for one process. Each process adds its rank to ``seed``, so each rolls out other
            prompts, and gradients are averaged.
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
        self._seed_everything()  # before the model is built: a model made from scratch draws its weights
        self.policy = build_actor_critic(policy, self.policy_kwargs, device=self.device)
        self.env_id: str | None = None
        self.env: gym.vector.VectorEnv | None = None
        self.layout: EnvLayout | None = None
        if env is not None:
            self.set_env(env)
        bf16 = self.config.bf16
        self.bf16 = bf16 if bf16 is not None else (self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        self.autocast_dtype = torch.bfloat16 if self.bf16 else None
        self._setup_optimizer()

        self.num_timesteps = 0
        self._total_timesteps = 0
        self._n_updates = 0
        self.iteration = 0
        self._current_progress_remaining = 1.0
        self.ep_info_buffer: deque[float] = deque(maxlen=self.config.stats_window_size)
        self.ep_len_buffer: deque[int] = deque(maxlen=self.config.stats_window_size)
        self._logger: Logger | None = None
        self._custom_logger = False
        self.run_id = uuid.uuid4().hex  # kept by save/load: periodic checkpoints prune only this run's files
        self.history: list[dict[str, float]] = []  # one row per iteration: what was logged
        self.supervised_history: list[dict[str, float]] = []  # one row per warm-start step

    def _seed_everything(self) -> None:
        """Seed python, numpy and torch, and the trainer's own generators, with ``seed + rank``."""
        seed = None if self.seed is None else self.seed + self._rank
        if seed is not None:
            set_random_seed(seed)
        self._np_random = np.random.default_rng(seed)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(int(self._np_random.integers(2**31)))

    def _setup_optimizer(self) -> None:
        """AdamW over the trainable weights; under ``accelerate``, the model and optimizer are wrapped."""
        if not self.uses_critic:  # no gradient would reach the critic (and DDP rejects unused parameters)
            for module in (self.policy.value_head, self.policy.critic_trunk):
                if module is not None:
                    module.requires_grad_(False)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = adamw(params, lr=self._lr(1.0), weight_decay=self.config.weight_decay)
        self._train_model: torch.nn.Module = self.policy
        self._reference: torch.nn.Module | None = None
        if self.accelerator is not None:
            self._train_model, self.optimizer = self.accelerator.prepare(self.policy, self.optimizer)

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
            self._logger = make_logger(folder, formats)  # not SB3's configure: it makes a temporary folder
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        """Use an SB3 ``Logger``, e.g. ``make_logger(folder, ["stdout", "csv", "tensorboard"])``.

        :func:`agents.trainers.loggers.make_logger` builds the same loggers as SB3's ``configure``,
        without its temporary folder, and can continue the ``progress.csv`` of a resumed run.
        """
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
                self._interrupted(stop.signum, checkpoint_on_interrupt, total_timesteps)
        callback.on_training_end()
        return self

    def _iterate(self, callback: BaseCallback, stop: Stop, total_timesteps: int) -> bool:
        """One rollout, then one update; False when a callback or a signal cut the rollout short.

        A rollout cut short by a signal does not count: its steps and random draws are rewound,
        so a checkpoint saved now resumes exactly where the last complete iteration ended.
        """
        callback.on_rollout_start()
        start = time.perf_counter()
        before = self._snapshot()
        batch = self._collect(callback, stop)
        if batch is None:
            if stop.signum is not None:
                self._rewind(before)
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

    def _collect(self, callback: BaseCallback, stop: Stop | None = None) -> RolloutBatch | None:
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

    @property
    def _vocab_limit(self) -> int:
        return self.layout.vocab_limit if self.layout is not None else 1 << 62

    # ------------------------------------------------------------------ devices and logging
    @property
    def _rank(self) -> int:
        return self.accelerator.process_index if self.accelerator is not None else 0

    @property
    def _is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

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
