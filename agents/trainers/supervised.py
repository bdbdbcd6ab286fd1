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
samples from (:func:`agents.trainers.scoring.score_tokens`). :class:`WarmStartMixin` gives the
trainers their ``warm_start`` method.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.trainers.rollout import RolloutBatch
from agents.trainers.scoring import score_tokens
from text_gym.errors import check_positive_int

if TYPE_CHECKING:
    from agents.trainers.selection import ValidationSelection

__all__ = ["WarmStartMixin", "reference_batch", "teacher_forcing"]


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


def teacher_forcing(
    model: torch.nn.Module,
    env: Any,
    *,
    total_tokens: int | None,
    max_seconds: float | None = None,
    learning_rate: float = 5e-5,
    batch_size: int = 8,
    max_grad_norm: float = 1.0,
    temperature: float = 1.0,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    autocast: Callable[[], Any] = contextlib.nullcontext,
    on_step: Callable[[dict[str, float]], None] | None = None,
    excluded_seconds: Callable[[], float] | None = None,
) -> list[dict[str, float]]:
    """Fit ``model`` to the references of ``env``'s task by teacher forcing; return one row per step.

    Samples are visited in a shuffled order, reshuffled each epoch. Training stops once
    ``total_tokens`` reply tokens were trained on, or after ``max_seconds`` of process CPU time,
    whichever comes first. A fresh AdamW is used, so the RL optimizer that follows starts clean.

    Args:
        model: The actor-critic (``agents.modeling.lm.LMActorCritic``).
        env: An unwrapped TextGen env on the split to train on (normally ``"train"``).
        total_tokens: Reply tokens to train on (None: only ``max_seconds`` limits).
        max_seconds: CPU-seconds budget of this process (None: only ``total_tokens`` limits).
        learning_rate: AdamW step size.
        batch_size: Samples per optimizer step.
        max_grad_norm: Gradient clipping.
        temperature: The policy's sampling temperature, so the fitted distribution is the one RL samples.
        seed: Seeds the sample order and reference choice.
        device: Where the model lives.
        autocast: A zero-argument context factory (bf16 autocast on CUDA; none by default).
        on_step: Called with each step's row (``supervised/loss``, ``supervised/tokens``...).
        excluded_seconds: Returns the CPU-seconds spent so far on work that is not training
            (validation inside ``on_step``), which ``max_seconds`` and ``supervised/cpu_seconds`` leave out.

    Raises:
        ValueError: Neither budget is set, or a budget, the learning rate or the batch size is not positive.
    """
    _check_budgets(total_tokens, max_seconds, learning_rate, batch_size)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    vocab_limit = int(env.action_masks().sum())
    batches = _shuffled_batches(env, batch_size, rng, torch.device(device))
    seen, rows, start = 0, [], time.process_time()
    excluded = excluded_seconds or (lambda: 0.0)
    skip = excluded()

    def training_seconds() -> float:
        return time.process_time() - start - (excluded() - skip)

    model.train()
    while _within(total_tokens, seen) and _within(max_seconds, training_seconds()):
        batch = next(batches)
        loss, grad_norm = _fit_step(model, optimizer, batch, temperature, vocab_limit, max_grad_norm, autocast)
        seen += int(batch.response_mask.sum())
        row = {"supervised/loss": loss, "supervised/tokens": float(seen), "supervised/grad_norm": grad_norm}
        rows.append({**row, "supervised/cpu_seconds": training_seconds()})
        if on_step is not None:
            on_step(rows[-1])
    model.eval()
    return rows


def _within(budget: float | None, used: float) -> bool:
    return budget is None or used < budget


def _shuffled_batches(
    env: Any, batch_size: int, rng: np.random.Generator, device: torch.device
) -> Iterator[RolloutBatch]:
    """Endless reference batches of ``env``'s task, in an order reshuffled every epoch."""
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            order += rng.permutation(len(env.task)).tolist()
        indices, order = order[:batch_size], order[batch_size:]
        yield reference_batch(env, indices, rng, device)


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


class WarmStartMixin:
    """``warm_start`` for a trainer (mixed into :class:`~agents.trainers.base.TrainerBase`).

    It reads the trainer's ``policy``, ``env``, ``config``, random generator and logger, and calls
    its ``_weights_changed`` when done.
    """

    def warm_start(
        self,
        total_tokens: int | None = None,
        *,
        max_seconds: float | None = None,
        learning_rate: float = 5e-5,
        batch_size: int = 8,
        selection: ValidationSelection | None = None,
    ) -> list[dict[str, float]]:
        """Supervised warm start: teacher forcing on the training env's references (see the module docstring).

        Call it before :meth:`learn`. It trains on the task and split of the training env (its
        first sub-env), with its own AdamW, and logs ``supervised/*`` rows to the logger. With a
        KL penalty (GRPO's ``beta``, PPO's ``kl_coef``), the warm-started weights become the
        reference policy (a frozen copy, saved with the trainer).

        Args:
            total_tokens: Reference tokens to train on.
            max_seconds: Or a budget of process CPU-seconds (whichever ends first).
            learning_rate: AdamW step size of the warm start.
            batch_size: Samples per optimizer step.
            selection: Evaluate on validation before the first step, on its schedule, and after the
                last step, keeping the best weights (phase ``"supervised"``; the step counts this
                trainer's warm-start steps). ``max_seconds`` leaves its CPU time out.

        Returns:
            One row per optimizer step (loss, tokens so far, gradient norm, CPU-seconds).

        Raises:
            TypeError: The training env is not a synchronous vector env (the task must be readable here).
            ValueError: No budget, or one that is not positive.
        """
        if self.accelerator is not None:
            raise ValueError(
                "warm_start runs in one process; got an accelerator. Warm-start first, save, then launch RL."
            )
        sub_envs = getattr(self.env, "envs", None)
        if not sub_envs:
            raise TypeError(
                f"warm_start reads the task of the training env; expected a SyncVectorEnv, got {type(self.env).__name__}."
            )
        first = len(self.supervised_history)  # optimizer steps of earlier warm starts
        eval_start = selection.eval_cpu_seconds if selection is not None else 0.0
        if selection is not None:
            selection.maybe_evaluate(self, step=first, phase="supervised", train_cpu_seconds=0.0, timesteps=0)
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
            autocast=self._autocast,
            on_step=self._warm_start_step(selection, first),
            excluded_seconds=(lambda: selection.eval_cpu_seconds - eval_start) if selection is not None else None,
        )
        self._weights_changed()
        if self._kl_penalized:  # the KL to the warm-started model, not to the untrained one
            self._reference = self._make_reference()
        self.supervised_history += rows
        if selection is not None and rows:  # the last weights are a candidate too
            seconds, tokens = rows[-1]["supervised/cpu_seconds"], int(rows[-1]["supervised/tokens"])
            selection.finish(
                self, step=first + len(rows), phase="supervised", train_cpu_seconds=seconds, timesteps=tokens
            )
        return rows

    def _warm_start_step(self, selection: ValidationSelection | None, first: int) -> Callable[[dict[str, float]], None]:
        """The warm start's ``on_step``: log the row, then let ``selection`` evaluate if it is due."""
        step = first

        def on_step(row: dict[str, float]) -> None:
            nonlocal step
            self._log_supervised_step(row)
            step += 1
            if selection is not None:
                seconds, tokens = row["supervised/cpu_seconds"], int(row["supervised/tokens"])
                selection.maybe_evaluate(
                    self, step=step, phase="supervised", train_cpu_seconds=seconds, timesteps=tokens
                )

        return on_step

    def _log_supervised_step(self, row: dict[str, float]) -> None:
        """Write one warm-start row to the trainer's logger, at its token count."""
        for key, value in row.items():
            self.logger.record(key, value)
        self.logger.dump(step=int(row["supervised/tokens"]))
