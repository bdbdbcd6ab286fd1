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
samples from (:func:`agents.trainers.scoring.score_tokens`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from agents.trainers.rollout import RolloutBatch
from agents.trainers.scoring import score_tokens

__all__ = ["reference_batch", "teacher_forcing"]


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
    autocast: Callable[[], Any] | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
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
        autocast: A zero-argument context factory (bf16 on CUDA), or None.
        on_step: Called with each step's row (``supervised/loss``, ``supervised/tokens``...).

    Raises:
        ValueError: Neither budget is set, or a budget, the learning rate or the batch size is not positive.
    """
    if total_tokens is None and max_seconds is None:
        raise ValueError("Expected total_tokens or max_seconds (or both) to bound the warm start, got neither.")
    for name, value in (
        ("total_tokens", total_tokens),
        ("max_seconds", max_seconds),
        ("learning_rate", learning_rate),
        ("batch_size", batch_size),
    ):
        if value is not None and (isinstance(value, bool) or not np.isfinite(value) or value <= 0):
            raise ValueError(f"{name}: expected a finite positive number, got {value!r}.")
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    vocab_limit = int(env.action_masks().sum())
    order: list[int] = []
    seen, rows, start = 0, [], time.process_time()
    model.train()
    while (total_tokens is None or seen < total_tokens) and (
        max_seconds is None or time.process_time() - start < max_seconds
    ):
        if len(order) < batch_size:
            order += rng.permutation(len(env.task)).tolist()
        indices, order = order[:batch_size], order[batch_size:]
        batch = reference_batch(env, indices, rng, torch.device(device))
        with autocast() if autocast is not None else torch.enable_grad():
            logprobs, _, _ = score_tokens(model, batch, temperature=temperature, vocab_limit=vocab_limit)  # (B, T)
        mask = batch.response_mask.float()
        loss = -(logprobs * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        seen += int(mask.sum())
        rows.append(
            {
                "supervised/loss": loss.item(),
                "supervised/tokens": float(seen),
                "supervised/grad_norm": float(grad_norm),
                "supervised/cpu_seconds": time.process_time() - start,
            }
        )
        if on_step is not None:
            on_step(rows[-1])
    model.eval()
    return rows
