"""The KL reference: the frozen policy that GRPO's ``beta`` and SequencePPO's ``kl_coef`` hold training near.

Without LoRA the reference is a frozen copy of the LM, made on first use (the untrained model) or
after a warm start (the warm-started one) and saved with checkpoints. With LoRA and no warm start
it is the same LM with its adapters disabled, so no second copy exists; after a warm start it is a
copy with the adapters merged (:func:`make_reference`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import torch

from agents.trainers.rollout import RolloutBatch

__all__ = ["make_reference", "reference_logprobs"]

Scorer = Callable[..., tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]


def make_reference(policy: Any) -> torch.nn.Module:
    """A frozen copy of ``policy``'s LM as it is now (eval mode, no gradients).

    It becomes the KL reference after a warm start: RL is then held near what the warm start
    learned, not near the untrained model. With LoRA the adapters are merged into the copy's
    weights (one plain LM, as without LoRA), because disabling the adapters, the reference before
    any warm start, gives the base model, not the warm-started one.
    """
    if policy.lora_config is None:
        return policy.make_reference()
    return copy.deepcopy(policy.lm).merge_and_unload().eval().requires_grad_(False)


@torch.no_grad()
def reference_logprobs(
    policy: Any, reference: torch.nn.Module | None, batch: RolloutBatch, score: Scorer, rows_per_pass: int
) -> torch.Tensor:
    """Reply log-probs ``(B, T)`` under the reference, scored ``rows_per_pass`` episodes at a time.

    Args:
        policy: The trainer's ``LMActorCritic``; with LoRA and ``reference=None`` it is scored with
            its adapters disabled.
        reference: The frozen copy (:func:`make_reference`), or None for the LoRA case above.
        batch: The rollout.
        score: The trainer's scorer, ``score(batch, model=...) -> (logprobs, values, entropy)``.
        rows_per_pass: Episodes per forward (the trainer's micro-batch).
    """
    if reference is None:
        context, model = policy.reference(), policy
    else:
        context, model = contextlib.nullcontext(), reference
    n, width = len(batch), batch.response_ids.shape[1]
    parts = []
    with context:
        for rows in torch.arange(n).split(rows_per_pass):
            logprobs, _, _ = score(batch.select(rows), model=model)
            parts.append(torch.nn.functional.pad(logprobs, (0, width - logprobs.shape[1])))
    return torch.cat(parts) * batch.response_mask
