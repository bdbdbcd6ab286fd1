"""Supervised warm start: teacher forcing on a task's references before RL, the usual recipe.

An LM that never produces a good reply gives RL nothing to reinforce. A short phase of
supervised fine-tuning on the train split's references (as InstructGPT and the RLHF pipelines
of TRL do before PPO) moves it to where sampling finds rewarded replies::

    trainer = GRPO("smollm2-135m", "TextGen-Translate-v0")
    trainer.warm_start(total_tokens=20_000)      # teacher forcing on train references
    trainer.learn(20_000)                        # then RL

The replies are exactly what the env would accept: the prompt is the env's own encoding (chat
template included), the reply is a reference tokenized without special tokens and cut to the
env's ``max_new_tokens``, ending with end-of-sequence when it fits. The loss is the mean negative
log-likelihood of the reply tokens under the same tempered, vocabulary-limited policy that RL
samples from (:func:`agents.trainers.scoring.score_tokens`). :func:`~agents.trainers.warm_start.warm_start`
gives the trainers their ``warm_start`` method.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from agents.modeling.prepare import adamw
from agents.trainers.rollout import RolloutBatch
from agents.trainers.scoring import score_tokens
from agents.trainers.trainer_state import optimizer_to_tensors, tensors_to_optimizer
from text_gym.errors import check_choice, check_positive_int

__all__ = ["LR_SCHEDULES", "TeacherForcing", "reference_batch", "teacher_forcing"]

LR_SCHEDULES = ("constant", "linear")
"""The warm start's step-size schedules (see :class:`TeacherForcing`)."""


def reference_batch(env: Any, indices: list[int], rng: np.random.Generator, device: torch.device) -> RolloutBatch:
    """Prompts and references of task samples ``indices``, laid out like a rollout of ``env``.

    Each sample contributes one of its references, drawn with ``rng``.

    Args:
        env: An unwrapped TextGen env (its task, prompt encoder, tokenizer and budget are used).
        indices: Task sample indices.
        rng: Picks the reference of samples that have several.
        device: Where the tensors go.
    """
    prompts = [env.prompts.encode(env.task[i].prompt) for i in indices]
    replies = []
    for i in indices:
        references = env.task[i].references
        text = references[int(rng.integers(len(references)))]
        ids = list(env.tokenizer(text, add_special_tokens=False)["input_ids"]) + [env.eos_token_id]
        replies.append(ids[: env.max_new_tokens])  # the env truncates at its budget, eos or not
    width_p, width_r = max(map(len, prompts)), max(map(len, replies))
    b = len(indices)
    prompt_ids = torch.full((b, width_p), env.pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros(b, width_p, dtype=torch.long)
    response_ids = torch.full((b, width_r), env.pad_token_id, dtype=torch.long)
    response_mask = torch.zeros(b, width_r, dtype=torch.long)
    for row, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
        prompt_ids[row, width_p - len(prompt) :] = torch.as_tensor(prompt)  # left-padded, as the env
        prompt_mask[row, width_p - len(prompt) :] = 1
        response_ids[row, : len(reply)] = torch.as_tensor(reply)
        response_mask[row, : len(reply)] = 1
    zeros = torch.zeros(b, width_r)
    return RolloutBatch(
        prompt_ids.to(device),
        prompt_mask.to(device),
        response_ids.to(device),
        response_mask.to(device),
        logprobs=zeros.to(device),
        rewards=zeros.to(device),
    )


class TeacherForcing:
    """A warm start in steps: its budget, its own AdamW, where the shuffled sample order stands.

    Everything :func:`teacher_forcing` needs to stop after any step and continue later exactly:
    :meth:`state` is what a checkpoint stores (JSON and tensors), :meth:`load_state` puts it back.
    Samples are visited in a shuffled order, reshuffled each epoch; a fresh AdamW is used, so the
    RL optimizer that follows starts clean.

    Args:
        model: The actor-critic whose trainable weights the AdamW steps.
        total_tokens: Reply tokens to train on (None: only ``max_seconds`` limits).
        max_seconds: CPU-seconds budget (None: only ``total_tokens`` limits).
        learning_rate: AdamW step size.
        batch_size: Samples per optimizer step.
        seed: Seeds the sample order and reference choice.
        lr_schedule: ``"constant"``, or ``"linear"``: the step size falls linearly from
            ``learning_rate`` to 0 over the budget (the larger of the fractions of ``total_tokens``
            and ``max_seconds`` used), as TRL's ``SFTTrainer`` does by default.

    Raises:
        ValueError: Neither budget is set, or a budget, the learning rate, the batch size or the
            schedule is not usable.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        total_tokens: int | None,
        max_seconds: float | None = None,
        learning_rate: float = 5e-5,
        batch_size: int = 8,
        seed: int | None = None,
        lr_schedule: str = "constant",
    ) -> None:
        _check_budgets(total_tokens, max_seconds, learning_rate, batch_size)
        check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
        self.total_tokens, self.max_seconds = total_tokens, max_seconds
        self.learning_rate, self.batch_size, self.lr_schedule = learning_rate, batch_size, lr_schedule
        self.rng = np.random.default_rng(seed)
        self.order: list[int] = []  # the rest of this epoch's shuffled sample indices
        self.tokens, self.steps, self.cpu_seconds = 0, 0, 0.0  # done so far, in every process
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = adamw(params, lr=learning_rate, weight_decay=0.0)

    @property
    def done(self) -> bool:
        """Whether a budget is used up."""
        return not (_within(self.total_tokens, self.tokens) and _within(self.max_seconds, self.cpu_seconds))

    @property
    def current_learning_rate(self) -> float:
        """The step size of the next step: ``learning_rate``, times the budget left with ``lr_schedule="linear"``."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        used = max(self.tokens / (self.total_tokens or math.inf), self.cpu_seconds / (self.max_seconds or math.inf))
        return self.learning_rate * max(0.0, 1.0 - used)

    def step(self, model: torch.nn.Module, env: Any, **fit: Any) -> dict[str, float]:
        """One optimizer step on the next batch of ``env``'s references; return its row.

        ``fit``: ``temperature``, ``max_grad_norm``, ``autocast`` and ``device``, as in :func:`teacher_forcing`.
        """
        start = time.process_time()
        if len(self.order) < self.batch_size:
            self.order += self.rng.permutation(len(env.task)).tolist()
        indices, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        batch = reference_batch(env, indices, self.rng, torch.device(fit["device"]))
        vocab_limit = int(env.action_masks().sum())
        for group in self.optimizer.param_groups:
            group["lr"] = self.current_learning_rate
        model.train()
        loss, grad_norm = _fit_step(
            model, self.optimizer, batch, fit["temperature"], vocab_limit, fit["max_grad_norm"], fit["autocast"]
        )
        model.eval()
        self.tokens += int(batch.response_mask.sum())
        self.steps += 1
        self.cpu_seconds += time.process_time() - start
        return {
            "supervised/loss": loss,
            "supervised/tokens": float(self.tokens),
            "supervised/grad_norm": grad_norm,
            "supervised/cpu_seconds": self.cpu_seconds,
            "supervised/learning_rate": self.optimizer.param_groups[0]["lr"],
        }

    def state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """What a checkpoint stores: ``(json, tensors)`` (the AdamW moments as ``warm_start.optimizer.*``)."""
        tensors, meta = optimizer_to_tensors(self.optimizer)
        record = {
            "total_tokens": self.total_tokens,
            "max_seconds": self.max_seconds,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "lr_schedule": self.lr_schedule,
            "tokens": self.tokens,
            "steps": self.steps,
            "cpu_seconds": self.cpu_seconds,
            "order": self.order,
            "rng": self.rng.bit_generator.state,
            "optimizer": meta,
        }
        return record, {f"warm_start.{name}": value for name, value in tensors.items()}

    def load_state(self, record: dict[str, Any], tensors: dict[str, torch.Tensor], task_size: int) -> None:
        """Put back what :meth:`state` returned (``task_size`` bounds the stored sample order)."""
        if not all(isinstance(i, int) and 0 <= i < task_size for i in record["order"]):
            raise ValueError(f"warm_start.order: expected sample indices below {task_size}, got others.")
        self.order = list(record["order"])
        self.tokens, self.steps, self.cpu_seconds = record["tokens"], record["steps"], record["cpu_seconds"]
        self.rng.bit_generator.state = record["rng"]
        ours = {k.removeprefix("warm_start."): v for k, v in tensors.items() if k.startswith("warm_start.")}
        tensors_to_optimizer(self.optimizer, ours, record["optimizer"])


def teacher_forcing(
    model: torch.nn.Module,
    env: Any,
    *,
    total_tokens: int | None,
    max_seconds: float | None = None,
    learning_rate: float = 5e-5,
    batch_size: int = 8,
    lr_schedule: str = "constant",
    max_grad_norm: float = 1.0,
    temperature: float = 1.0,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    autocast: Callable[[], Any] = contextlib.nullcontext,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Fit ``model`` to the references of ``env``'s task by teacher forcing; return one row per step.

    Training stops once ``total_tokens`` reply tokens were trained on, or after ``max_seconds`` of
    process CPU time, whichever comes first (see :class:`TeacherForcing`, which this runs to the end).

    Args:
        model: The actor-critic (``agents.modeling.lm.LMActorCritic``).
        env: An unwrapped TextGen env on the split to train on (normally ``"train"``).
        total_tokens: Reply tokens to train on (None: only ``max_seconds`` limits).
        max_seconds: CPU-seconds budget of this process (None: only ``total_tokens`` limits).
        learning_rate: AdamW step size.
        batch_size: Samples per optimizer step.
        lr_schedule: ``"constant"`` or ``"linear"`` (to 0 over the budget; see :class:`TeacherForcing`).
        max_grad_norm: Gradient clipping.
        temperature: The policy's sampling temperature, so the fitted distribution is the one RL samples.
        seed: Seeds the sample order and reference choice.
        device: Where the model lives.
        autocast: A zero-argument context factory (bf16 autocast on CUDA; none by default).
        on_step: Called with each step's row (``supervised/loss``, ``supervised/tokens``...).

    Raises:
        ValueError: Neither budget is set, or a budget, the learning rate or the batch size is not positive.
    """
    run = TeacherForcing(
        model,
        total_tokens=total_tokens,
        max_seconds=max_seconds,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        lr_schedule=lr_schedule,
    )
    fit = {"temperature": temperature, "max_grad_norm": max_grad_norm, "autocast": autocast, "device": device}
    rows = []
    while not run.done:
        rows.append(run.step(model, env, **fit))
        if on_step is not None:
            on_step(rows[-1])
    return rows


def _within(budget: float | None, used: float) -> bool:
    return budget is None or used < budget


def _fit_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    temperature: float,
    vocab_limit: int,
    max_grad_norm: float,
    autocast: Callable[[], Any],
) -> tuple[float, float]:
    """One optimizer step on the mean NLL of ``batch``'s reply tokens; return the loss and the gradient norm."""
    with torch.enable_grad(), autocast():
        logprobs, _, _ = score_tokens(model, batch, temperature=temperature, vocab_limit=vocab_limit)  # (B, T)
    mask = batch.response_mask.float()
    loss = -(logprobs * mask).sum() / mask.sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return loss.item(), float(grad_norm)


def _check_budgets(total_tokens: int | None, max_seconds: float | None, learning_rate: float, batch_size: int) -> None:
    """Raise ``ValueError`` naming the first budget or setting of :func:`teacher_forcing` that is not usable."""
    if total_tokens is None and max_seconds is None:
        raise ValueError("Expected total_tokens or max_seconds (or both) to bound the warm start, got neither.")
    if total_tokens is not None:
        check_positive_int("total_tokens", total_tokens, "reference tokens to train on")
    check_positive_int("batch_size", batch_size, "samples per optimizer step")
    for name, value in (("max_seconds", max_seconds), ("learning_rate", learning_rate)):
        if value is not None and (isinstance(value, bool) or not np.isfinite(value) or value <= 0):
            raise ValueError(f"{name}: expected a finite positive number, got {value!r}.")
