"""The model's side of a rollout: KV-cached decoding, one forward per step over the newest tokens.

:func:`~agents.trainers.rollout.collect_rollout` owns the env loop; a :class:`Decoder` runs the
prompts once (once per group when envs share one, packed without padding when the model allows),
then one token per env per step, with the cache growing in place.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.modeling.prepare import autocast
from agents.modeling.tokens import positions_from_mask
from agents.trainers.scoring import (
    ActorCritic,
    can_preallocate,
    critic_values,
    packed_prefill,
    preallocate,
    repeat_cache,
    shared_prompt_groups,
)

__all__ = ["Decoder"]


class Decoder:
    """The model's side of a rollout: a KV cache over the batch, one forward per step over the newest tokens.

    The first forward runs the prompts (once per group when consecutive envs share one, see
    :func:`~agents.trainers.scoring.shared_prompt_groups`), packed without their padding when the
    model allows (:func:`~agents.trainers.scoring.packed_prefill`); each later one runs the token
    each env just received, at the position after the tokens in the cache, which then grows in
    place (:func:`~agents.trainers.scoring.preallocate`).
    """

    def __init__(
        self,
        model: ActorCritic,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        group_size: int,
        autocast_dtype: torch.dtype | None,
        max_new_tokens: int,
    ) -> None:
        self.model, self.group_size = model, group_size
        self.capacity = prompt_ids.shape[1] + max_new_tokens  # the cache's columns: prompt and every reply token
        self.share = shared_prompt_groups(prompt_ids, prompt_mask, group_size)
        self.prompt_lengths = prompt_mask.sum(1)  # (B,)
        self.mask = prompt_mask  # (B, L): the cached tokens and the ones fed next
        self.step_ids, self.step_positions = prompt_ids, positions_from_mask(prompt_mask)  # (B, Lp) each
        self.cache: Any = None
        self.first = True  # the next forward runs the prompts
        self.autocast = autocast(prompt_ids.device, autocast_dtype)

    def next_outputs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run what was fed since the last call; return the logits ``(B, V)`` and values ``(B,)`` (or None) after it."""
        first, self.first = self.first, False
        rows = slice(None, None, self.group_size) if self.share and first else slice(None)  # one prompt per group
        with self.autocast:
            prefilled = packed_prefill(self.model, self.step_ids[rows], self.mask[rows]) if first else None
            if prefilled is not None:  # the prompts without their padding
                logits, values, self.cache = prefilled
            else:
                out = self.model(
                    input_ids=self.step_ids[rows],
                    attention_mask=self.mask[rows],
                    cache=self.cache,
                    position_ids=self.step_positions[rows],
                    use_cache=True,
                    logits_to_keep=1,
                )
                logits, values, self.cache = out.logits, critic_values(out), out.cache
        if first:
            repeats = self.group_size if self.share else 1
            if can_preallocate(self.cache):  # each later step then writes its column, no torch.cat of the cache
                self.cache = preallocate(self.cache, self.capacity, repeats)
            elif repeats > 1:
                self.cache = repeat_cache(self.cache, repeats)
        if self.share and first:
            logits = logits.repeat_interleave(self.group_size, 0)
            values = values.repeat_interleave(self.group_size, 0) if values is not None else None
        return logits[:, -1], (values[:, -1] if values is not None else None)

    def feed(self, action: torch.Tensor, t: int) -> None:
        """Queue reply token ``t`` of every env, ``action (B,)``, for the next forward."""
        self.step_ids = action[:, None]  # (B, 1): the cache holds everything before it
        self.step_positions = (self.prompt_lengths + t)[:, None]  # (B, 1)
        self.mask = torch.cat([self.mask, torch.ones_like(self.step_ids)], dim=1)
