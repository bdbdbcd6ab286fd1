"""Outputs at the last real token of observations, and the shared-prefix trick for training.

An SB3 minibatch holds single steps, but steps of one episode are prefixes of each other: the
observation at step ``t`` is the one at step ``t + 1`` minus its last token. A causal LM's output
at a position depends only on the tokens up to it, so one forward pass over the longest
observation of an episode gives the outputs of all its shorter ones (gathered at their last
positions). :func:`grouped_last_token_outputs` does that; :func:`last_token_outputs` is the naive
path (one sequence per row), which it must match.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.modeling.lm import LMActorCritic
from agents.modeling.logprobs import token_logprobs
from agents.modeling.tokens import last_real_index


def left_align(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens to the right end (order kept) and drop all-padding columns.

    Positions come from the mask's cumulative sum, so a causal LM gives the same outputs for the
    real tokens; the last column then holds every row's last real token.

    >>> left_align(torch.tensor([[0, 5, 6, 0]]), torch.tensor([[0, 1, 1, 0]]))[0].tolist()
    [[5, 6]]
    """
    mask = attention_mask.long()
    order = torch.argsort(mask, dim=1, stable=True)  # (B, S): padding first, then real tokens in order
    ids, mask = input_ids.long().gather(1, order), mask.gather(1, order)
    width = max(int(mask.sum(1).max()), 1)
    return ids[:, -width:], mask[:, -width:]  # (B, W)


def last_token_outputs(
    actor_critic: LMActorCritic, input_ids: torch.Tensor, attention_mask: torch.Tensor, use_cache: bool = False
) -> tuple[torch.Tensor, torch.Tensor, Any, torch.Tensor]:
    """Run each observation whole; return ``logits (B, V)`` and ``values (B,)`` at its last real token.

    Also returns the KV cache (``use_cache=True``, else ``None``) and its ``(B, W)`` attention mask.
    """
    ids, mask = left_align(input_ids, attention_mask)
    out = actor_critic(ids, mask, use_cache=use_cache, logits_to_keep=1)
    return out.logits[:, -1], out.values[:, -1], out.cache, mask


def group_by_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign each observation to a longest observation that extends it.

    Row ``r`` extends row ``c`` when ``c``'s real tokens sit at the same slots in ``r`` and ``r``
    has no other real token before ``c``'s last one, so ``c``'s real tokens are the first ones of
    ``r``'s. Identical rows extend each other; the lowest index represents them. An all-padding
    row has no prefix to share: only identical rows extend it.

    Args:
        input_ids: ``(B, S)`` observations.
        attention_mask: ``(B, S)``.

    Returns:
        ``roots (G,)``: the rows that no other row extends (strictly), and ``group (B,)``: for each
        row, the index into ``roots`` of a root that extends it.
    """
    ids, mask = input_ids.long(), attention_mask.long()
    batch, width = mask.shape
    lengths = mask.sum(1)  # (B,)
    # (B, S): the slots up to each row's last real token (all of them for an all-padding row)
    upto_last = torch.arange(width, device=mask.device)[None, :] <= last_real_index(mask)[:, None]
    # extends[c, r]: row r extends row c. Shapes broadcast to (B_c, B_r, S).
    same_tokens = ((ids[:, None] == ids[None]) | (mask[:, None] == 0)).all(-1)
    same_slots = ((mask[:, None] == mask[None]) | ~upto_last[:, None]).all(-1)
    covers = (mask[None] >= mask[:, None]).all(-1)
    extends = same_tokens & same_slots & covers  # (B_c, B_r)
    index = torch.arange(batch, device=mask.device)
    longer = (lengths[None] > lengths[:, None]) | ((lengths[None] == lengths[:, None]) & (index[None] < index[:, None]))
    strictly = extends & longer  # strictly[c, r]: r extends c and ranks above it
    roots = (~strictly.any(1)).nonzero().squeeze(1)  # (G,)
    # Each row's first root that extends it; a row extends itself, so roots map to themselves.
    group = extends[:, roots].float().argmax(1)  # (B,)
    return roots, group


def grouped_last_token_hidden(
    actor_critic: LMActorCritic, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's hidden state ``(B, H)`` and the value ``(B,)`` at each row's last real token.

    One trunk pass per prefix group (see the module docstring); differentiable.
    """
    ids, mask = input_ids.long(), attention_mask.long()
    roots, group = group_by_prefix(ids, mask)
    root_ids, root_mask = left_align(ids[roots], mask[roots])  # (G, W)
    actor_hidden, critic_hidden, _ = actor_critic.trunk(root_ids, root_mask)  # (G, W, H)
    # A row's last token is token number len(row) of its root, which left_align put at this column:
    width, root_len = root_mask.shape[1], root_mask.sum(1)  # (G,)
    column = width - root_len[group] + mask.sum(1) - 1  # (B,)
    values = actor_critic.value_head(critic_hidden[group, column].float()).squeeze(-1)  # (B,)
    return actor_hidden[group, column], values


def grouped_last_token_outputs(
    actor_critic: LMActorCritic, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`last_token_outputs` (without a cache), with one forward pass per prefix group.

    Returns:
        ``logits (B, V)`` and ``values (B,)``, differentiable.
    """
    hidden, values = grouped_last_token_hidden(actor_critic, input_ids, attention_mask)
    return actor_critic.get_output_embeddings()(hidden).float(), values


def grouped_action_logprobs(
    actor_critic: LMActorCritic,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    actions: torch.Tensor,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Values ``(B,)``, log-probs of ``actions (B,)`` and entropies ``(B,)`` of observations, differentiable.

    What an SB3 update needs, from :func:`grouped_last_token_hidden` and the chunked head of
    :func:`agents.modeling.logprobs.token_logprobs`: no ``(B, V)`` logits are kept for the
    backward pass (a minibatch of 512 steps would keep 100 MB of them per copy with SmolLM2).
    """
    hidden, values = grouped_last_token_hidden(actor_critic, input_ids, attention_mask)
    log_prob, entropy = token_logprobs(
        actor_critic.get_output_embeddings(), hidden, actions.long(), temperature=temperature, entropy_grad=True
    )
    return values, log_prob, entropy
