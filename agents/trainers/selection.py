"""Checkpoint selection on a validation split: evaluate every few steps, keep the best weights.

What SB3's ``EvalCallback(best_model_save_path=...)`` does for its algorithms, for the warm start
and the RL phase alike, so every arm of a comparison is selected the same way::

    selection = ValidationSelection("TextGen-Translate-v0", {"tokenizer": "smollm2-135m"}, eval_every=5)
    trainer.warm_start(20_000, selection=selection)       # evaluates every 5 optimizer steps
    trainer.learn(20_000, callback=selection.callback())  # and every 5 RL iterations
    selection.restore_best(trainer)                       # the weights that scored best on validation
    selection.best_phase, selection.best_step, selection.best_score

Each evaluation plays the split's prompts greedily with :mod:`agents.evaluation` (the evaluator
every report uses) and records one row in :attr:`ValidationSelection.history`. The best weights
are kept as a CPU copy of the trainable parameters; ties go to the earlier evaluation, so more
training must do strictly better to be chosen. An evaluation before any training (step 0) counts
too: "no training" can win, honestly. The ``test`` split is refused: a model chosen on the split
it is then measured on has seen its answers.

With a ``best_model_save_path``, every evaluation also rewrites ``selection.json`` there (the
rows and the best so far, :meth:`~ValidationSelection.summary`), so a run resumed into the same
folder goes on with them (:meth:`~ValidationSelection.resume`) instead of letting its first
evaluation replace a better ``best_model.zip``.

Training budgets count training only. :attr:`~ValidationSelection.eval_cpu_seconds` is the
process CPU time spent inside evaluations (saving the best model included), which the warm
start's ``max_seconds`` already leaves out and a caller timing ``learn`` subtracts.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from agents.atomic import atomic_write_text
from agents.baselines.lm import GreedyLMAgent
from agents.evaluation import make_eval_envs, play, score_episodes
from agents.trainers.checkpoint import CheckpointError, read_archive
from text_gym.errors import check_positive_int

__all__ = ["ValidationSelection"]

PHASES = ("supervised", "rl")
SELECTION_FILE = "selection.json"
"""Written beside ``best_model.zip`` after every evaluation: what :meth:`ValidationSelection.resume` reads."""


class ValidationSelection:
    """Evaluate a trainer on a validation split on a schedule and keep its best weights.

    Args:
        env_id: A registered TextGen env id.
        env_kwargs: The env's keyword arguments (those of training: task, tokenizer, budget...).
        split: The split to select on; ``"test"`` is refused (the final figures are measured there).
        eval_every: Evaluate every this many optimizer steps of the warm start and RL iterations
            (None: not by steps).
        eval_every_seconds: Or every this many CPU-seconds of training (None: not by time).
            When both are set, whichever comes first; when neither, only explicit :meth:`evaluate` calls.
        metric: The score to maximise: ``"bleu"``, ``"chrf"``, ``"reward"`` or a reward component.
        max_prompts: Evaluate on the split's first this many prompts (None: all).
        best_model_save_path: A folder: each new best is saved there as ``best_model.zip``
            (``trainer.save``, atomic), as SB3's ``EvalCallback`` does. None: kept in memory only.
        batch_size: Episodes played at once.
        verbose: 1 prints a line per evaluation.

    Raises:
        ValueError: ``split`` is ``"test"``, or a schedule or size is not positive.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        *,
        split: str = "validation",
        eval_every: int | None = 5,
        eval_every_seconds: float | None = None,
        metric: str = "bleu",
        max_prompts: int | None = None,
        best_model_save_path: str | os.PathLike[str] | None = None,
        batch_size: int = 16,
        verbose: int = 0,
    ) -> None:
        if split == "test":
            raise ValueError(
                "split: expected a split other than 'test' to select on, got 'test': the final rows are measured on "
                "'test', and a checkpoint chosen by its test score has seen the answers. Use split='validation'."
            )
        if eval_every is not None:
            check_positive_int("eval_every", eval_every, "steps between evaluations; None: not by steps")
        if eval_every_seconds is not None and not 0 < eval_every_seconds < math.inf:
            raise ValueError(
                f"eval_every_seconds: expected a finite positive number or None, got {eval_every_seconds!r}."
            )
        if max_prompts is not None:
            check_positive_int("max_prompts", max_prompts)
        check_positive_int("batch_size", batch_size)
        self.env_id, self.env_kwargs, self.split = env_id, dict(env_kwargs or {}), split
        self.eval_every, self.eval_every_seconds = eval_every, eval_every_seconds
        self.metric, self.verbose = metric, verbose
        self.batch_size = batch_size
        self.best_model_save_path = Path(best_model_save_path) if best_model_save_path is not None else None
        self._envs = make_eval_envs(env_id, self.env_kwargs, split, batch_size)
        size = len(self._envs[0].unwrapped.task)
        self._indices = list(range(size if max_prompts is None else min(max_prompts, size)))
        self._envs = self._envs[: len(self._indices)]
        self.history: list[dict[str, Any]] = []
        self.best_score, self.best_step, self.best_phase = -math.inf, -1, ""
        self.eval_cpu_seconds = 0.0
        self._best_state: dict[str, Any] | None = None
        self._last: dict[str, tuple[int, float]] = {}  # phase -> (step, training CPU-seconds) of its last evaluation

    @property
    def best_model_path(self) -> Path | None:
        """Where the best model is saved (``<best_model_save_path>/best_model.zip``), or None."""
        return None if self.best_model_save_path is None else self.best_model_save_path / "best_model.zip"

    def evaluate(
        self,
        trainer: Any,
        *,
        step: int,
        phase: str,
        train_cpu_seconds: float = math.nan,
        timesteps: int | None = None,
    ) -> float:
        """Score ``trainer.policy`` greedily on the split now; record a row and keep the weights if best.

        Args:
            trainer: A sequence trainer (:class:`~agents.trainers.base.TrainerBase`).
            step: The phase's step count: warm-start optimizer steps, or RL iterations.
            phase: ``"supervised"`` or ``"rl"``.
            train_cpu_seconds: Training CPU-seconds so far, for the row (not counted here).
            timesteps: Tokens trained on so far, for the row (None: the trainer's ``num_timesteps``
                in RL, the warm start's last token count in the supervised phase).

        Returns:
            The score (:attr:`metric`).
        """
        if phase not in PHASES:
            raise ValueError(f"phase: expected one of {list(PHASES)}, got {phase!r}.")
        start = time.process_time()
        policy = trainer.policy
        score = self._score(policy)
        if timesteps is None:
            timesteps = trainer.num_timesteps if phase == "rl" else _supervised_tokens(trainer)
        row = {
            "phase": phase,
            "step": int(step),
            "timesteps": int(timesteps),
            "train_cpu_seconds": float(train_cpu_seconds),
        }
        self.history.append({**row, "score": score})
        self._last[phase] = (int(step), float(train_cpu_seconds))
        if score > self.best_score:  # strictly: a tie keeps the earlier, less trained, model
            self.best_score, self.best_step, self.best_phase = score, int(step), phase
            self._best_state = {
                name: p.detach().to("cpu", copy=True) for name, p in policy.named_parameters() if p.requires_grad
            }
            if self.best_model_path is not None:
                trainer.save(self.best_model_path)
        if self.best_model_save_path is not None:  # after the model: the record never names a best not yet saved
            atomic_write_text(self.best_model_save_path / SELECTION_FILE, json.dumps(self.summary(), indent=2))
        self.eval_cpu_seconds += time.process_time() - start
        if self.verbose:
            print(
                f"[selection] {phase} step {step}: {self.split} {self.metric} {score:.4f} "
                f"(best {self.best_score:.4f} at {self.best_phase} step {self.best_step})",
                flush=True,
            )
        return score

    def _score(self, policy: Any) -> float:
        """The greedy replies' mean :attr:`metric` on the split (the one evaluator's play and scores)."""
        was_training = policy.training
        episodes, _ = play(GreedyLMAgent(policy), self._envs, self._indices, 0, deterministic=True)
        policy.train(was_training)  # the agent put it in eval mode; a warm start goes on training
        metrics = score_episodes(episodes)
        if self.metric not in metrics:
            raise ValueError(f"metric: expected one of {sorted(metrics)}, got {self.metric!r}.")
        return metrics[self.metric]

    def due(self, *, step: int, phase: str, train_cpu_seconds: float) -> bool:
        """Whether the schedule asks for an evaluation now.

        The first call of a phase is due (so step 0, before training, is evaluated), then every
        ``eval_every`` steps or ``eval_every_seconds`` training CPU-seconds after the phase's
        last evaluation, whichever is set and comes first.
        """
        if not self.scheduled:
            return False
        if phase not in self._last:
            return True
        last_step, last_seconds = self._last[phase]
        by_steps = self.eval_every is not None and step - last_step >= self.eval_every
        by_time = self.eval_every_seconds is not None and train_cpu_seconds - last_seconds >= self.eval_every_seconds
        return by_steps or by_time

    def maybe_evaluate(
        self, trainer: Any, *, step: int, phase: str, train_cpu_seconds: float, timesteps: int | None = None
    ) -> float | None:
        """:meth:`evaluate` when :meth:`due`; return the score, or None when it was not due."""
        if not self.due(step=step, phase=phase, train_cpu_seconds=train_cpu_seconds):
            return None
        return self.evaluate(trainer, step=step, phase=phase, train_cpu_seconds=train_cpu_seconds, timesteps=timesteps)

    @property
    def scheduled(self) -> bool:
        """Whether evaluations happen on a schedule (``eval_every`` or ``eval_every_seconds`` is set)."""
        return self.eval_every is not None or self.eval_every_seconds is not None

    def evaluated(self, *, step: int, phase: str) -> bool:
        """Whether the phase's latest evaluation was at ``step`` (so the weights there are scored)."""
        return self._last.get(phase, (None,))[0] == step

    def finish(
        self, trainer: Any, *, step: int, phase: str, train_cpu_seconds: float, timesteps: int | None = None
    ) -> float | None:
        """At the end of a phase: evaluate the last weights, unless there is no schedule or they were just scored."""
        if not self.scheduled or self.evaluated(step=step, phase=phase):
            return None
        return self.evaluate(trainer, step=step, phase=phase, train_cpu_seconds=train_cpu_seconds, timesteps=timesteps)

    def restore_best(self, trainer: Any) -> None:
        """Load the best weights back into ``trainer.policy`` (the optimizer is left as it is).

        Raises:
            RuntimeError: Nothing was evaluated yet.
        """
        if self._best_state is None:
            raise RuntimeError("restore_best: expected at least one evaluation first, got none.")
        for name, param in trainer.policy.named_parameters():
            if name in self._best_state:
                param.data.copy_(self._best_state[name])
        trainer._weights_changed()  # cached keys and values belong to the old weights

    def resume(self, trainer: Any) -> bool:
        """Go on from the selection an earlier run left in ``best_model_save_path``; False when there is none.

        It takes the rows and the best score of ``selection.json`` and the best weights of
        ``best_model.zip`` (read as any checkpoint: checked, never unpickled), so the resumed run
        must beat the earlier best to replace it. Rows after the checkpoint that is resumed (a
        run resumed from an earlier periodic checkpoint) stay: their models were trained and
        scored, and the best of them may still be the one kept. The schedule starts afresh, so
        the resumed weights are evaluated first.

        Raises:
            ValueError: ``selection.json`` is not what this selection writes, selects on another
                split or metric, or does not agree with ``best_model.zip``; the message names the file.
        """
        folder = self.best_model_save_path
        if folder is None or not (folder / SELECTION_FILE).is_file() or self.best_model_path is None:
            return False
        if not self.best_model_path.is_file():
            return False  # no evaluation had saved a model: nothing to beat
        path = folder / SELECTION_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path}: expected the JSON that a selection writes, got unreadable content ({error})."
            ) from None
        history, best = _checked_record(path, record, self.split, self.metric)
        try:
            model, _, _ = read_archive(self.best_model_path, torch.device("cpu"), type(trainer))
        except CheckpointError as error:
            raise ValueError(f"{self.best_model_path}: expected the best model of {path}, got: {error}") from None
        stored = dict(model.named_parameters())
        ours = {name: p for name, p in trainer.policy.named_parameters() if p.requires_grad}
        if any(name not in stored or stored[name].shape != p.shape for name, p in ours.items()):
            raise ValueError(
                f"{self.best_model_path}: expected the weights of this run's model, got a model with other parameters."
            )
        self._best_state = {name: stored[name].detach().clone() for name in ours}
        self.history = history
        self.best_phase, self.best_step, self.best_score = best["phase"], best["step"], best["score"]
        self._last = {}
        return True

    def callback(self, train_cpu_offset: float = 0.0, max_train_cpu_seconds: float | None = None) -> BaseCallback:
        """An SB3 callback for ``trainer.learn``: :meth:`maybe_evaluate` before the first update and
        after each one (phase ``"rl"``, step = iterations), and, on a schedule, the final model at the end.

        Args:
            train_cpu_offset: Added to the training CPU-seconds of ``learn`` (evaluations left
                out) in the rows, e.g. a warm start's, so rows count the run's training from its start.
            max_train_cpu_seconds: Stop ``learn`` once its training CPU-seconds reach this (the
                rollout in progress is dropped, as when any callback stops it); None: no limit.
        """
        if max_train_cpu_seconds is not None and not 0 < max_train_cpu_seconds < math.inf:
            raise ValueError(
                f"max_train_cpu_seconds: expected a finite positive number, got {max_train_cpu_seconds!r}."
            )
        return _SelectionCallback(self, train_cpu_offset, max_train_cpu_seconds)

    def branch(self) -> ValidationSelection:
        """A new selection that starts where this one stands: its rows, its best weights and schedule.

        For two runs that share a beginning (a warm start continued by teacher forcing, or by RL):
        the branch goes on with the second run, so both keep the shared evaluations as candidates.
        It has its own evaluation envs and keeps its best weights in memory only
        (no ``best_model_save_path``); this one is left as it is.
        """
        other = copy.copy(self)
        other.best_model_save_path, other.eval_cpu_seconds = None, 0.0
        other._envs = make_eval_envs(self.env_id, self.env_kwargs, self.split, self.batch_size)[: len(self._indices)]
        other.history = [dict(row) for row in self.history]
        other.best_score, other.best_step, other.best_phase = self.best_score, self.best_step, self.best_phase
        other._last = dict(self._last)
        if self._best_state is not None:
            other._best_state = {name: value.clone() for name, value in self._best_state.items()}
        return other

    def summary(self) -> dict[str, Any]:
        """The selection as JSON: split, metric, the chosen ``phase``, ``step`` and ``score``, the best model's path, every row."""
        return {
            "split": self.split,
            "metric": self.metric,
            "phase": self.best_phase,
            "step": self.best_step,
            "score": self.best_score,
            "best_model": None if self.best_model_path is None else str(self.best_model_path),
            "history": list(self.history),
        }

    def close(self) -> None:
        """Close the evaluation envs."""
        for env in self._envs:
            env.close()


def _checked_record(path: Path, record: Any, split: str, metric: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of a ``selection.json`` and its best row, checked like any input; ``ValueError`` if not usable."""
    if not isinstance(record, dict) or not isinstance(record.get("history"), list) or not record["history"]:
        raise ValueError(f"{path}: expected an object with a non-empty 'history' list, got {type(record).__name__}.")
    if (record.get("split"), record.get("metric")) != (split, metric):
        raise ValueError(
            f"{path}: expected a selection on split {split!r} by {metric!r}, got split {record.get('split')!r} by "
            f"{record.get('metric')!r}; resume with the same --selection-split, or into another --out."
        )
    history = []
    for row in record["history"]:
        ok = isinstance(row, dict) and row.get("phase") in PHASES
        ok = ok and all(isinstance(row.get(k), int) and not isinstance(row.get(k), bool) for k in ("step", "timesteps"))
        ok = ok and all(isinstance(row.get(k), (int, float)) for k in ("score", "train_cpu_seconds"))
        if not ok or not math.isfinite(row["score"]):
            raise ValueError(
                f"{path}: expected rows with phase, step, timesteps, train_cpu_seconds and a finite score, got {row!r}."
            )
        history.append({k: row[k] for k in ("phase", "step", "timesteps", "train_cpu_seconds", "score")})
    best = max(history, key=lambda row: row["score"])  # the first of equal scores, as evaluate keeps it
    if (record.get("phase"), record.get("step"), record.get("score")) != (best["phase"], best["step"], best["score"]):
        raise ValueError(
            f"{path}: its best ({record.get('phase')} step {record.get('step')}) is not the best of its rows."
        )
    return history, best


def _supervised_tokens(trainer: Any) -> int:
    """Reference tokens of the trainer's finished warm starts."""
    history = trainer.supervised_history
    return int(history[-1]["supervised/tokens"]) if history else 0


class _SelectionCallback(BaseCallback):
    """Runs a :class:`ValidationSelection` during ``learn`` (see :meth:`ValidationSelection.callback`)."""

    def __init__(self, selection: ValidationSelection, train_cpu_offset: float, budget: float | None) -> None:
        super().__init__()
        self.selection, self.offset, self.budget = selection, train_cpu_offset, budget

    def _on_training_start(self) -> None:
        self._cpu_start, self._eval_start = time.process_time(), self.selection.eval_cpu_seconds

    def train_cpu_seconds(self) -> float:
        """Training CPU-seconds of this ``learn`` so far (evaluations left out), plus the offset."""
        evaluating = self.selection.eval_cpu_seconds - self._eval_start
        return self.offset + time.process_time() - self._cpu_start - evaluating

    def _on_rollout_start(self) -> None:  # the previous iteration's update is done
        self.selection.maybe_evaluate(
            self.model, step=self.model.iteration, phase="rl", train_cpu_seconds=self.train_cpu_seconds()
        )

    def _on_step(self) -> bool:
        return self.budget is None or self.train_cpu_seconds() - self.offset < self.budget

    def _on_training_end(self) -> None:
        self.selection.finish(
            self.model, step=self.model.iteration, phase="rl", train_cpu_seconds=self.train_cpu_seconds()
        )
