"""Token helpers every agent shares: positions, real-token columns, and choosing the next token.

Batches follow the env's observation layout: a left-padded prompt, then the reply, then right
padding, with ``attention_mask`` 1 on real tokens (see :class:`text_gym.envs.TextGenEnv`). Each
helper here exists once; the SB3 policy, the trainers and the baseline agents all call it.
"""

from __future__ import annotations

import torch

__all__ = ["first_real_column", "last_real_index", "positions_from_mask", "sample_tokens", "top_k_top_p"]


def positions_from_mask(attention_mask: torch.Tensor, num_new: int | None = None) -> torch.Tensor:
    """Return ``(B, num_new)`` position ids: the cumulative count of real tokens, minus one.

    Padding gets position 0 (it is masked anyway). With a KV cache, ``attention_mask`` covers the
    cached and the new tokens, and only the last ``num_new`` positions are returned.

    >>> positions_from_mask(torch.tensor([[0, 0, 1, 1, 1]])).tolist()
    [[0, 0, 0, 1, 2]]
    """
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, L)
    return positions if num_new is None else positions[:, -num_new:]


def first_real_column(attention_mask: torch.Tensor) -> int:
    """The first column that holds a real token in some row: the columns before it are all padding.

    >>> first_real_column(torch.tensor([[0, 0, 1], [0, 1, 1]]))
    1
    """
    mask = torch.as_tensor(attention_mask)
    return int(mask.bool().any(0).long().argmax()) if mask.numel() else 0


def last_real_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` column of each row's last real token (the token whose logits choose the next one).

    >>> last_real_index(torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])).tolist()
    [2, 3]
    """
    mask = torch.as_tensor(attention_mask).bool()
    return mask.shape[-1] - 1 - mask.flip(-1).long().argmax(-1)


def sample_tokens(
    logits: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Choose one token per row of ``(B, V)`` logits: the argmax, or a sample from their softmax.

    Temperature and filtering (:func:`top_k_top_p`) are applied by the caller beforehand; the
    generator makes samples reproducible and must live on ``logits``' device.
    """
    if deterministic:
        return logits.argmax(-1)
    # Inverse-CDF sampling: one uniform draw per row. torch.multinomial draws one exponential per
    # vocabulary entry on CPU (49,152 per row for SmolLM2), 6% of a GRPO iteration in a profile.
    cdf = torch.softmax(logits.float(), -1).cumsum(-1)  # (B, V)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]  # (B, 1)
    # The first token whose cumulative probability exceeds u: never one of probability 0.
    return torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1).squeeze(-1)  # (B,)


def top_k_top_p(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and the top-p nucleus to ``-inf``; ``logits`` is ``(B, V)``.

    ``top_k=0`` and ``top_p=1.0`` keep every token. A token is dropped when the tokens ranked
    above it already reach ``top_p``, so the most likely token always stays (Holtzman et al. 2020).
    """
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = drop_sorted.scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits
