"""The SB3-shaped shell of a sequence-level trainer: settings, model, env, logger, and the public API.

A trainer here looks like a Stable-Baselines3 algorithm from the outside (``learn``, ``predict``,
``save``/``load``, ``get_env``, ``logger``, ``num_timesteps``, SB3 callbacks) but does its work on
whole sequences. As SB3 splits ``BaseAlgorithm`` from ``OnPolicyAlgorithm``, :class:`TrainerBase`
holds what every trainer has (every attribute is declared in ``__init__``), and
:class:`~agents.trainers.on_policy.OnPolicyTrainer` owns the loop (rollout, update, log). The other
concerns are plain modules whose functions take the trainer, and the methods here are one-line
delegations to them: ``save``/``load`` (:mod:`~agents.trainers.persistence`), ``warm_start``
(:mod:`~agents.trainers.warm_start`); ``predict`` asks a :class:`~agents.trainers.predict.Predictor`
the trainer holds.

One timestep is one env step, i.e. one generated token, as in SB3.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import set_random_seed

from agents.modeling.loading import resolve_device
from agents.modeling.prepare import adamw
from agents.trainers import persistence, warm_start
from agents.trainers.config import TrainerConfig, build_actor_critic
from agents.trainers.envs import EnvLayout, env_layout, make_trainer_envs
from agents.trainers.interrupts import TrainingInterrupted
from agents.trainers.loggers import make_logger
from agents.trainers.periodic import PeriodicCheckpoints
from agents.trainers.persistence import AUTO
from agents.trainers.predict import Predictor
from agents.trainers.supervised import TeacherForcing

if TYPE_CHECKING:
    from agents.trainers.selection import ValidationSelection

__all__ = ["AUTO", "PeriodicCheckpoints", "TrainerBase", "TrainerConfig", "TrainingInterrupted"]

T = TypeVar("T", bound="TrainerBase")


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
        # Seeded before the model is built: a model made from scratch draws its weights.
        self._np_random, self._generator = self._seeded_generators()
        self.policy = build_actor_critic(policy, self.policy_kwargs, device=self.device)
        self.group_size = 1  # consecutive envs reset with one seed, so they share a prompt (GRPO: its group_size)
        self.env_id: str | None = None
        self.env: gym.vector.VectorEnv | None = None
        self.layout: EnvLayout | None = None
        if env is not None:
            self.set_env(env)
        bf16 = self.config.bf16
        self.bf16 = bf16 if bf16 is not None else (self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        self.autocast_dtype = torch.bfloat16 if self.bf16 else None
        self.optimizer, self._train_model = self._make_optimizer()
        self._reference: torch.nn.Module | None = None  # the frozen KL reference (agents.trainers.reference)
        self.predictor = Predictor(self.policy, self.config.temperature, None if seed is None else seed + self._rank)
        self._warm_start_run: TeacherForcing | None = None  # set while a warm start is in progress

        self.num_timesteps = 0
        self._total_timesteps = 0
        self._n_updates = 0
        self.iteration = 0
        self._current_progress_remaining = 1.0
        self._start_time, self._start_steps = 0.0, 0  # set by learn, for the logged fps
        self.ep_info_buffer: deque[float] = deque(maxlen=self.config.stats_window_size)
        self.ep_len_buffer: deque[int] = deque(maxlen=self.config.stats_window_size)
        self._logger: Logger | None = None
        self._custom_logger = False
        self.run_id = uuid.uuid4().hex  # kept by save/load: periodic checkpoints prune only this run's files
        self.history: list[dict[str, float]] = []  # one row per iteration: what was logged
        self.supervised_history: list[dict[str, float]] = []  # one row per warm-start step

    def _seeded_generators(self) -> tuple[np.random.Generator, torch.Generator]:
        """Seed python, numpy and torch with ``seed + rank``; return the trainer's own numpy and torch generators."""
        seed = None if self.seed is None else self.seed + self._rank
        if seed is not None:
            set_random_seed(seed)
        np_random = np.random.default_rng(seed)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(np_random.integers(2**31)))
        return np_random, generator

    def _make_optimizer(self) -> tuple[torch.optim.Optimizer, torch.nn.Module]:
        """AdamW over the trainable weights, and the model to train; under ``accelerate``, both wrapped."""
        if not self.uses_critic:  # no gradient would reach the critic (and DDP rejects unused parameters)
            for module in (self.policy.value_head, self.policy.critic_trunk):
                if module is not None:
                    module.requires_grad_(False)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        optimizer = adamw(params, lr=self._lr(1.0), weight_decay=self.config.weight_decay)
        if self.accelerator is None:
            return optimizer, self.policy
        model, optimizer = self.accelerator.prepare(self.policy, optimizer)
        return optimizer, model

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

    # ------------------------------------------------------------------ save, load, predict, warm start
    def save(self, path: str | os.PathLike[str], *, resumable: bool = True) -> Path:
        """Write a checkpoint that resumes this run exactly; see :mod:`agents.trainers.checkpoint`.

        The archive holds the model (``save_pretrained``), every setting, the optimizer's state,
        every random state (torch, numpy, python, the trainer's and the envs'), the counters, the
        KL controller, the frozen reference when there is one, and the logs' history. It is
        written to exactly ``path`` (``.zip`` added only when ``path`` has no suffix),
        atomically. A setting that cannot be stored (a custom reward function or learning-rate
        schedule) is named in a warning, and :meth:`load` asks for it. Only the main process
        writes under ``accelerate``. Stray temporaries of killed saves beside ``path`` are removed.

        Args:
            path: Where to write.
            resumable: False writes the weights, settings, counters and logs only (about a third
                of the size with AdamW): :meth:`load` reads it, and training from it goes on
                with a fresh optimizer and random states, not exactly where it stopped.

        Returns:
            The path written.
        """
        return persistence.save(self, path, resumable=resumable)

    def save_or_rescue(self, path: str | os.PathLike[str], *, resumable: bool = True) -> Path:
        """:meth:`save`, or to a printed fallback when that fails (:func:`agents.trainers.persistence.save_or_rescue`)."""
        return persistence.save_or_rescue(self, path, resumable=resumable)

    @classmethod
    def load(
        cls: type[T], path: str | os.PathLike[str], env: Any = None, device: str | torch.device = "auto", **kwargs: Any
    ) -> T:
        """Rebuild a trainer saved by :meth:`save`, ready to ``learn(..., reset_num_timesteps=False)``.

        Args:
            path: The checkpoint (``.zip`` added only when it has no suffix).
            env: The env to train on; by default the saved env id with the saved env kwargs.
            device: As in the constructor.
            **kwargs: Override saved settings (config fields, ``env_kwargs``, ``verbose``...);
                required for settings the checkpoint could not store.

        Raises:
            FileNotFoundError: No checkpoint at ``path``.
            CheckpointError: It was saved by another trainer class, is incomplete, damaged or
                hostile (a stored env id with a ``module:`` part, settings out of range: see
                :mod:`agents.trainers.checkpoint_checks`), lacks a setting that must be passed
                again, or needs a tokenizer that is not available. The message names the member.
        """
        return persistence.load(cls, path, env, device, **kwargs)

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Next token for one observation (a scalar action) or a batch of them (``(B,)``); SB3's signature.

        The policy acts as :class:`~agents.baselines.SamplingLMAgent` does: a KV cache holds each
        env's sequence, so a step of an episode runs one new token, not the whole observation.
        Sampling is at the trainer's temperature, over the env's real tokens (and
        ``action_masks`` when given, as in sb3-contrib's ``MaskablePPO``), from a generator
        seeded by ``seed`` and apart from training's: calling ``predict`` never changes a
        training run. The cache is dropped whenever the weights change (``learn``, ``train``,
        ``warm_start``); after editing ``trainer.policy`` by hand, call
        ``trainer._weights_changed()``.

        Args:
            observation: A TextGen observation, ``input_ids`` ``(S,)``, or a batch, ``(B, S)``.
            state: Passed through (the policy is not recurrent).
            episode_start: Unused: the cache compares token contents, so it sees resets itself.
            deterministic: The most likely token instead of a sample.
            action_masks: ``(V,)`` or ``(B, V)`` allowed tokens, or None.

        Returns:
            ``(action, state)``: an ``np.int64`` for one observation, ``(B,)`` for a batch.
        """
        del episode_start
        with self._autocast():
            return self.predictor.predict(observation, state, deterministic, action_masks, self.layout)

    def warm_start(
        self,
        total_tokens: int | None = None,
        *,
        max_seconds: float | None = None,
        learning_rate: float = 5e-5,
        batch_size: int = 8,
        lr_schedule: str = "constant",
        progress_bar: bool = False,
        log_interval: int = 10,
        checkpoint_on_interrupt: str | os.PathLike[str] | None = AUTO,
        checkpoints: Any = None,
        selection: ValidationSelection | None = None,
    ) -> list[dict[str, float]]:
        """Supervised warm start on the training env's references; see :func:`agents.trainers.warm_start.warm_start`."""
        return warm_start.warm_start(
            self,
            total_tokens,
            max_seconds=max_seconds,
            learning_rate=learning_rate,
            batch_size=batch_size,
            lr_schedule=lr_schedule,
            progress_bar=progress_bar,
            log_interval=log_interval,
            checkpoint_on_interrupt=checkpoint_on_interrupt,
            checkpoints=checkpoints,
            selection=selection,
        )

    @property
    def warm_start_progress(self) -> int | None:
        """Reference tokens done by the warm start in progress (saved, say, on Ctrl-C), or None when none is."""
        return None if self._warm_start_run is None else self._warm_start_run.tokens

    def _resume_warm_start(self, record: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild the warm start in progress that a checkpoint stored (called by ``load``)."""
        warm_start.resume(self, record, tensors)

    def _weights_changed(self) -> None:
        """The policy's weights just changed: drop what :meth:`predict` cached with the old ones."""
        self.predictor.weights_changed()

    # ------------------------------------------------------------------ hooks
    def _extra_state(self) -> dict[str, Any]:
        """Hook: JSON-able state a subclass keeps across iterations (SequencePPO's KL coefficient)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Hook: restore what :meth:`_extra_state` returned."""

    @property
    def _kl_penalized(self) -> bool:
        """Hook: whether the loss penalises the KL to the reference policy (GRPO's ``beta``, PPO's ``kl_coef``)."""
        return False

    # ------------------------------------------------------------------ devices and settings
    @property
    def _vocab_limit(self) -> int:
        return self.layout.vocab_limit if self.layout is not None else 1 << 62

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

    def _lr(self, progress_remaining: float) -> float:
        lr = self.config.learning_rate
        return float(lr(progress_remaining)) if callable(lr) else float(lr)

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.logger.record("train/learning_rate", lr)
