"""``warm_start`` for the trainers: teacher forcing with ``learn``'s protection, selection and KL reference.

:func:`warm_start` (what ``trainer.warm_start`` calls) runs
:class:`~agents.trainers.supervised.TeacherForcing` step by step on the training env's task: a
progress bar and a log line per interval, periodic checkpoints, a saved checkpoint on
SIGINT/SIGTERM that ``warm_start()`` finishes exactly, validation selection
(:class:`~agents.trainers.selection.ValidationSelection`) and, with a KL penalty, the warm-started
weights as the reference policy.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from agents.trainers.callbacks import WarmStartBar
from agents.trainers.interrupts import catch_signals
from agents.trainers.persistence import AUTO, interrupted
from agents.trainers.reference import make_reference
from agents.trainers.supervised import TeacherForcing
from text_gym.errors import check_positive_int

if TYPE_CHECKING:
    from agents.trainers.selection import ValidationSelection

__all__ = ["resume", "warm_start"]


def warm_start(
    trainer: Any,
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
    """Supervised warm start: teacher forcing on the training env's references (see the module docstring).

    ``trainer.warm_start(...)`` calls it; call it before ``learn``. It trains on the task and split of the training env (its
    first sub-env), with its own AdamW. It has ``learn``'s protection: on SIGINT or SIGTERM it
    finishes the step in progress, saves (the checkpoint records how far the warm start got)
    and raises :class:`~agents.trainers.interrupts.TrainingInterrupted`; ``checkpoints`` saves
    every few minutes. On a trainer loaded from such a checkpoint, ``warm_start()`` without a
    budget continues it where it stopped, exactly. With a KL penalty (GRPO's ``beta``, PPO's
    ``kl_coef``), the warm-started weights become the reference policy (a frozen copy, saved
    with the trainer).

    Args:
        total_tokens: Reference tokens to train on.
        max_seconds: Or a budget of process CPU-seconds (whichever ends first).
        learning_rate: AdamW step size of the warm start.
        batch_size: Samples per optimizer step.
        lr_schedule: ``"constant"``, or ``"linear"``: the step size falls to 0 over the budget.
        progress_bar: Show a tqdm bar over reference tokens.
        log_interval: With ``verbose >= 1``, print one line every this many steps (and at the
            end); every step's row goes to the logger's file outputs (CSV, TensorBoard).
        checkpoint_on_interrupt: Where a signal saves, as in ``learn`` (None: nowhere).
        checkpoints: A :class:`~agents.trainers.periodic.PeriodicCheckpoints`, or None.
        selection: Evaluate on validation before the first step, on its schedule, and after the
            last step, keeping the best weights (phase ``"supervised"``; the step counts this
            trainer's warm-start steps). The CPU budget counts training steps only, so the
            evaluations' time is left out.

    Returns:
        One row per optimizer step of this call (loss, tokens so far, gradient norm, CPU-seconds).

    Raises:
        TypeError: The training env is not a synchronous vector env (the task must be readable here).
        ValueError: No budget, or one that is not positive; or a budget while a loaded warm start is in progress.
        TrainingInterrupted: A signal stopped the warm start; the message says how to resume.
    """
    env = _warm_start_env(trainer)
    check_positive_int("log_interval", log_interval)
    if trainer._warm_start_run is not None and (total_tokens is not None or max_seconds is not None):
        raise ValueError(
            f"expected no budget: this trainer has a warm start in progress ({trainer.warm_start_progress} tokens "
            "done, loaded from a checkpoint); call warm_start() without one to finish it."
        )
    if trainer._warm_start_run is None:
        seed = int(trainer._np_random.integers(2**31))
        kwargs = {"max_seconds": max_seconds, "learning_rate": learning_rate, "batch_size": batch_size}
        kwargs["lr_schedule"] = lr_schedule
        trainer._warm_start_run = TeacherForcing(trainer.policy, total_tokens=total_tokens, seed=seed, **kwargs)
    run, rows = trainer._warm_start_run, []
    first = len(trainer.supervised_history)  # optimizer steps of earlier warm starts
    if selection is not None and run.steps == 0:
        selection.maybe_evaluate(trainer, step=first, phase="supervised", train_cpu_seconds=0.0, timesteps=0)
    fit = {"temperature": trainer.config.temperature, "max_grad_norm": trainer.config.max_grad_norm}
    fit |= {"autocast": trainer._autocast, "device": trainer.device}
    stopping = "finishing the warm-start step in progress, then saving a checkpoint."
    with catch_signals(stopping) as stop, WarmStartBar(progress_bar, run.total_tokens, run.tokens) as bar:
        while not run.done and stop.signum is None:
            rows.append(run.step(trainer.policy, env, **fit))
            trainer.supervised_history.append(rows[-1])
            bar.update(run.tokens)
            _log_supervised_step(trainer, rows[-1], bar.write if run.done or run.steps % log_interval == 0 else None)
            _select(trainer, selection, rows[-1], finish=False)
            if checkpoints is not None and not run.done:  # a finished warm start is saved by what follows
                checkpoints.maybe_save(trainer)
        trainer._weights_changed()
        if stop.signum is not None:
            interrupted(trainer, stop.signum, checkpoint_on_interrupt, 0, then="warm_start() to finish the warm start")
    trainer._warm_start_run = None
    if trainer._kl_penalized:  # the KL to the warm-started model, not to the untrained one
        trainer._reference = make_reference(trainer.policy)
    if rows:  # the last weights are a candidate too
        _select(trainer, selection, rows[-1], finish=True)
    return rows


def _select(trainer: Any, selection: ValidationSelection | None, row: dict[str, float], finish: bool) -> None:
    """Let ``selection`` evaluate after a warm-start step (if due; always when ``finish``)."""
    if selection is None:
        return
    seconds, tokens = row["supervised/cpu_seconds"], int(row["supervised/tokens"])
    step = len(trainer.supervised_history)
    method = selection.finish if finish else selection.maybe_evaluate
    method(trainer, step=step, phase="supervised", train_cpu_seconds=seconds, timesteps=tokens)


def _warm_start_env(trainer: Any) -> Any:
    if trainer.accelerator is not None:
        raise ValueError("warm_start runs in one process; got an accelerator. Warm-start first, save, then launch RL.")
    sub_envs = getattr(trainer.env, "envs", None)
    if not sub_envs:
        raise TypeError(
            f"warm_start reads the task of the training env; expected a SyncVectorEnv, got {type(trainer.env).__name__}."
        )
    return sub_envs[0].unwrapped


def resume(trainer: Any, record: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Rebuild the warm start in progress that a checkpoint stored (:meth:`TeacherForcing.state`)."""
    budget = {k: record[k] for k in ("total_tokens", "max_seconds", "learning_rate", "batch_size")}
    # A checkpoint from before the schedule existed warmed up at a constant step size.
    run = TeacherForcing(trainer.policy, **budget, lr_schedule=record.get("lr_schedule", "constant"))
    run.load_state(record, tensors, len(_warm_start_env(trainer).task))
    trainer._warm_start_run = run


def _log_supervised_step(trainer: Any, row: dict[str, float], write: Callable[[str], None] | None) -> None:
    """Write one warm-start row to the logger's files, at its token count, and a line with ``write`` if given."""
    for key, value in row.items():
        trainer.logger.record(key, value, exclude=("stdout", "log"))
    with warnings.catch_warnings():  # SB3's stdout writer warns when every key is excluded from it
        warnings.filterwarnings("ignore", message="Tried to write empty key-value dict")
        trainer.logger.dump(step=int(row["supervised/tokens"]))
    if write is not None and trainer.verbose >= 1 and trainer._is_main:
        run = trainer._warm_start_run
        total = f"/{run.total_tokens}" if run.total_tokens else ""
        write(
            f"warm start: {int(row['supervised/tokens'])}{total} tokens, step {run.steps}, "
            f"loss {row['supervised/loss']:.4f}, grad norm {row['supervised/grad_norm']:.3f}, "
            f"{row['supervised/cpu_seconds']:.1f} CPU-s"
        )
