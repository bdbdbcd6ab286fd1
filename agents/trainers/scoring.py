"""Score the reply tokens of a rollout under the current policy: log-probs, values, entropy.

One forward pass over prompt + reply per micro-batch; GRPO's groups, which share a prompt, run the
prompt once and repeat its KV cache. What scoring needs from a model and from a batch are the two
small protocols here (:class:`ActorCritic`, :class:`Episodes`), so this module imports neither the
model nor :mod:`agents.trainers.rollout`, which imports it.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from agents.modeling.tokens import positions_from_mask

__all__ = [
    "ActorCritic",
    "Episodes",
    "critic_values",
    "masked_log_softmax_gather",
    "repeat_cache",
    "score_tokens",
    "shared_prompt_groups",
]


class ActorCritic(Protocol):
    """What rollouts and scoring need from a model (``agents.modeling.lm.LMActorCritic`` provides it)."""

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: Any = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> Any:  # an object with .logits (B, L, V), .values (B, L) or None, .cache
        ...


class Episodes(Protocol):
    """What scoring reads from a batch of episodes (:class:`~agents.trainers.rollout.RolloutBatch` has it)."""

    prompt_ids: torch.Tensor  # (B, Lp) left-padded
    prompt_mask: torch.Tensor  # (B, Lp)
    response_ids: torch.Tensor  # (B, T) right-padded

    @property
    def input_ids(self) -> torch.Tensor: ...  # (B, Lp + T)

    @property
    def attention_mask(self) -> torch.Tensor: ...  # (B, Lp + T)


def shared_prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, group_size: int) -> bool:
    """True when consecutive groups of ``group_size`` rows hold the same prompt (GRPO's layout)."""
    b = prompt_ids.shape[0]
    if group_size <= 1 or b % group_size:
        return False
    ids = prompt_ids.view(b // group_size, group_size, -1)
    mask = prompt_mask.view(b // group_size, group_size, -1)
    return bool((ids == ids[:, :1]).all() and (mask == mask[:, :1]).all())


def critic_values(out: Any) -> torch.Tensor | None:
    """The critic's ``(B, L)`` values in a model output, or None when the model has no critic."""
    # A transformers ModelOutput is a dict, so its .values is a method, not a critic's values.
    values = getattr(out, "values", None)
    return values if isinstance(values, torch.Tensor) else None


def repeat_cache(cache: Any, repeats: int) -> Any:
    """Repeat every row of a KV cache ``repeats`` times (differentiably); handles (actor, critic) pairs."""
    if isinstance(cache, tuple):
        return tuple(repeat_cache(c, repeats) for c in cache)
    cache.batch_repeat_interleave(repeats)
    return cache


def masked_log_softmax_gather(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, vocab_limit: int
) -> torch.Tensor:
    """Log-probs of ``tokens`` under ``softmax(logits / temperature)`` over the real vocabulary.

    Args:
        logits: ``(..., V)`` raw logits (any dtype; the math runs in float32).
        tokens: ``(...)`` token ids, all below ``vocab_limit``.
        temperature: Sampling temperature (the same at rollout and update time, so ratios are exact).
        vocab_limit: Ids at or above it are not real tokens and take no probability.

    Returns:
        ``(...)`` float32 log-probs.
    """
    return _logprobs(logits, tokens, temperature, vocab_limit)[0]


def _logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, vocab_limit: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log-probs of tokens, tempered logits, their logsumexp)``, so callers can reuse the last two."""
    tempered = logits[..., :vocab_limit].float() / temperature
    lse = torch.logsumexp(tempered, dim=-1)
    # logsumexp + gather instead of log_softmax: one fewer (..., V) tensor kept for backward.
    return tempered.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - lse, tempered, lse


def score_tokens(
    model: ActorCritic,
    batch: Episodes,
    *,
    temperature: float = 1.0,
    vocab_limit: int,
    with_values: bool = False,
    group_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Score every reply token of a batch with one forward pass over prompt + reply.

    The logits at column ``Lp - 1 + t`` predict reply token ``t``, and the value there is
    ``V(s_t)``, the same state the rollout valued before choosing that token.

    With ``group_size > 1`` and groups that share their prompt (GRPO), the prompt runs once per
    group with gradients, and its KV cache is repeated for the replies: the same outputs and
    gradients as running every row whole, for ``1 / group_size`` of the prompt's compute.

    Returns:
        ``(logprobs, values, entropy)``: ``(B, T)`` float32 log-probs of the reply tokens,
        ``(B, T)`` values or None, and ``(B, T)`` policy entropy (detached, for logging).
    """
    t = batch.response_ids.shape[1]
    logits, values = None, None
    if t > 1 and shared_prompt_groups(batch.prompt_ids, batch.prompt_mask, group_size):
        logits, values = _score_shared_prompts(model, batch, group_size)
    if logits is None:
        mask = batch.attention_mask  # (B, Lp + T)
        # Only the T + 1 last positions: the (L, V) projection of prompt positions is never needed.
        out = model(
            input_ids=batch.input_ids,
            attention_mask=mask,
            position_ids=positions_from_mask(mask),
            logits_to_keep=t + 1,
        )
        logits, values = out.logits[:, :-1], critic_values(out)  # (B, T, V): column t predicts reply token t
        values = values[:, :-1] if values is not None else None
    logprobs, tempered, lse = _logprobs(logits, batch.response_ids, temperature, vocab_limit)  # (B, T)
    with torch.no_grad():
        tempered, lse = tempered.detach(), lse.detach()
        entropy = lse - (torch.exp(tempered - lse.unsqueeze(-1)) * tempered).sum(-1)  # (B, T), for logging
    values = values.float() if with_values and values is not None else None
    return logprobs, values, entropy


def _score_shared_prompts(
    model: ActorCritic, batch: Episodes, group_size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Prompt once per group (with its cache repeated), then all replies: ``(B, T, V)``, ``(B, T)``."""
    firsts = slice(None, None, group_size)
    prompt_mask = batch.prompt_mask[firsts]  # (n, Lp)
    head = model(
        input_ids=batch.prompt_ids[firsts],
        attention_mask=prompt_mask,
        position_ids=positions_from_mask(prompt_mask),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = getattr(head, "cache", None)
    if cache is None:  # e.g. gradient checkpointing turns the cache off: score rows whole instead
        return None, None
    cache = repeat_cache(cache, group_size)
    replies = batch.response_ids[:, :-1]  # (B, T - 1): each predicts the next reply token
    mask = batch.attention_mask[:, :-1]  # (B, Lp + T - 1)
    positions = batch.prompt_mask.sum(1, keepdim=True) + torch.arange(
        replies.shape[1], device=replies.device
    )  # (B, T - 1)
    tail = model(input_ids=replies, attention_mask=mask, cache=cache, position_ids=positions, use_cache=True)
    logits = torch.cat([head.logits.repeat_interleave(group_size, 0), tail.logits], dim=1)  # (B, T, V)
    values = critic_values(head)
    if values is not None:
        values = torch.cat([values.repeat_interleave(group_size, 0), critic_values(tail)], dim=1)  # (B, T)
    return logits, values
