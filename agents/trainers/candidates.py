"""A group's replies from beam search: the n-best candidate sets of minimum risk training.

Edunov et al. (2018, "Classical Structured Prediction Losses for Sequence to Sequence
Learning") found sequence-level risk most useful over the model's n-best list: the candidates a
beam search, like the one a user decodes with, would choose among. :func:`beam_candidates`
returns, for every group of ``G`` consecutive rollout rows (one prompt each), the policy's ``G``
best beam-search replies (``num_beams = G``). :func:`~agents.trainers.rollout.collect_rollout`
then plays them through the env token by token (``plan=``), so the env scores them like sampled
replies and the rollout records the policy's log-probabilities of their tokens.
"""

from __future__ import annotations

import torch

from agents.modeling.lm import LMActorCritic
from agents.modeling.prefix import left_align

__all__ = ["NO_TOKEN", "beam_candidates"]

NO_TOKEN = -1
"""Where a planned reply has ended (after its end-of-sequence token)."""


@torch.no_grad()
def beam_candidates(
    policy: LMActorCritic,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    group_size: int,
    max_new_tokens: int,
    eos_token_id: int,
) -> torch.Tensor:
    """The ``group_size`` best beam-search replies to each group's prompt.

    Args:
        policy: The actor-critic whose LM searches (``policy.lm.generate``, no sampling).
        prompt_ids: ``(B, Lp)`` prompts, ``B`` a multiple of ``group_size``; rows ``g*i`` to
            ``g*i + g - 1`` hold one prompt (only the first of each group is read).
        prompt_mask: ``(B, Lp)``, 1 on the real prompt tokens.
        group_size: Candidates per prompt, and the beam width.
        max_new_tokens: The reply budget.
        eos_token_id: The env's end-of-sequence token: a reply stops after it, as the episode does.

    Returns:
        ``(B, max_new_tokens)`` token ids, row ``g*i + j`` being the ``j``-th best reply to group
        ``i``'s prompt (the order of ``generate``), with :data:`NO_TOKEN` after the reply's end.
    """
    if prompt_ids.shape[0] % group_size:
        raise ValueError(f"expected a multiple of group_size={group_size} prompt rows, got {prompt_ids.shape[0]}.")
    ids, mask = left_align(prompt_ids[::group_size], prompt_mask[::group_size])  # (n_prompts, W)
    out = policy.lm.generate(
        input_ids=ids,
        attention_mask=mask,
        num_beams=group_size,
        num_return_sequences=group_size,
        do_sample=False,
        max_new_tokens=max_new_tokens,
        early_stopping=True,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    replies = out[:, ids.shape[1] :]  # (B, <= max_new_tokens)
    plan = torch.full((replies.shape[0], max_new_tokens), NO_TOKEN, dtype=torch.long, device=replies.device)
    plan[:, : replies.shape[1]] = replies
    eos = (plan == eos_token_id).long()  # (B, T)
    return plan.masked_fill(eos.cumsum(1) - eos > 0, NO_TOKEN)  # after the first end-of-sequence
