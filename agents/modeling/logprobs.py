"""Log-probabilities of chosen tokens without materialising ``(B, T, V)`` logits.

A small LM's largest matrix is its LM head: SmolLM2-135M maps 576 hidden units to 49,152
logits, so the float32 logits of a 16 x 33 batch take 100 MB, and log-softmax, temperature,
entropy and their gradients make several copies. Training needs only the log-probability of the
token that was chosen (and, for logging, the entropy), so :func:`token_logprobs` applies the head
to a chunk of positions at a time, reduces each chunk to a ``logsumexp`` and one gathered logit
("selective log-softmax"). Under autograd, every chunk but the last is recomputed in the
backward pass (activation checkpointing) instead of keeping its logits, which costs one more head
projection for those positions and bounds the logits' memory by about two chunks.

:func:`logprobs_from_logits` is the formula itself, for callers that have the logits anyway (a
rollout samples from them); both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["DEFAULT_CHUNK", "logprobs_from_logits", "token_logprobs"]

# Positions per chunk: 256 x 49,152 float32 logits are 50 MB, and a 256-row matmul is still
# large enough to run at full speed on a CPU.
DEFAULT_CHUNK = 256


def logprobs_from_logits(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    temperature: float = 1.0,
    vocab_limit: int | None = None,
    entropy: bool = False,
    entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``tokens`` under ``softmax(logits / temperature)`` over the real vocabulary.

    Args:
        logits: ``(..., V)`` raw logits (any dtype; the math runs in float32).
        tokens: ``(...)`` token ids, all below ``vocab_limit``.
        temperature: Sampling temperature (the same at rollout and update time, so ratios are exact).
        vocab_limit: Ids at or above it are not real tokens and take no probability (None: all).
        entropy: Also return the policy's entropy.
        entropy_grad: Keep the entropy differentiable (an entropy bonus); otherwise it is detached.

    Returns:
        ``(logprobs, entropy)``: ``(...)`` float32 each; entropy is None unless asked for.

    >>> lp, ent = logprobs_from_logits(torch.zeros(1, 4), torch.tensor([1]), vocab_limit=2, entropy=True)
    >>> round(float(lp.exp()), 3), round(float(ent), 3)  # uniform over the 2 real tokens
    (0.5, 0.693)
    """
    tempered = logits[..., :vocab_limit].float()
    if temperature != 1.0:
        tempered = tempered / temperature
    if not entropy_grad and (entropy or (tempered.requires_grad and torch.is_grad_enabled())):
        # The training path: one exp pass for log-probs and entropy, and a backward that writes
        # one (..., V) tensor instead of five (issue 16).
        chosen, ent = _SelectiveLogSoftmax.apply(tempered, tokens.long())
        return chosen, (ent if entropy else None)
    lse = torch.logsumexp(tempered, dim=-1)  # (...)
    # logsumexp + gather instead of log_softmax: one fewer (..., V) tensor kept for backward.
    chosen = tempered.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1) - lse
    if not entropy:
        return chosen, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        probs = torch.softmax(tempered if entropy_grad else tempered.detach(), dim=-1)
        ent = (lse if entropy_grad else lse.detach()) - (probs * tempered).sum(-1)
    return chosen, ent


class _SelectiveLogSoftmax(torch.autograd.Function):
    """``(log_softmax(x)[token], entropy)`` of float32 logits ``x (..., V)``; the entropy is not differentiable.

    The same numbers as ``logsumexp`` and ``softmax`` (tested equal), from one pass of ``exp``
    whose result, the softmax, is all the backward needs: ``d logp / dx = onehot(token) - softmax``.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top = x.amax(-1, keepdim=True)  # (..., 1)
        probs = torch.sub(x, top).exp_()  # (..., V), unnormalised
        total = probs.sum(-1, keepdim=True)  # (..., 1)
        lse = top + total.log()  # (..., 1)
        probs.div_(total)
        chosen = (x.gather(-1, tokens.unsqueeze(-1)) - lse).squeeze(-1)  # (...)
        # sum(p * x) as a batched dot product: no (..., V) product tensor.
        expected = torch.matmul(probs.unsqueeze(-2), x.unsqueeze(-1)).reshape(lse.shape)  # (..., 1)
        ent = (lse - expected).squeeze(-1)
        ctx.mark_non_differentiable(ent)
        ctx.save_for_backward(probs, tokens)
        return chosen, ent

    @staticmethod
    def backward(ctx: Any, grad_chosen: torch.Tensor, _: Any) -> tuple[torch.Tensor, None]:
        probs, tokens = ctx.saved_tensors
        g = grad_chosen.unsqueeze(-1)  # (..., 1)
        grad = probs * -g  # (..., V)
        return grad.scatter_add_(-1, tokens.unsqueeze(-1), g), None


def token_logprobs(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    tokens: torch.Tensor,
    *,
    temperature: float = 1.0,
    vocab_limit: int | None = None,
    entropy: bool = True,
    entropy_grad: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply ``head`` to ``hidden`` chunk by chunk; return the chosen tokens' log-probs (and entropy).

    The same numbers and gradients as ``logprobs_from_logits(head(hidden), tokens, ...)``, with
    the logits of at most two chunks of ``chunk_size`` positions alive at a time, in the forward
    and in the backward pass.

    Args:
        head: The LM head (``nn.Linear(H, V)`` or anything mapping ``(n, H)`` to ``(n, V)``).
        hidden: ``(..., H)`` hidden states of the positions to score (only those: gather them first).
        tokens: ``(...)`` the token chosen at each position.
        temperature: As in :func:`logprobs_from_logits`.
        vocab_limit: As in :func:`logprobs_from_logits`.
        entropy: Also return the entropy.
        entropy_grad: Keep the entropy differentiable.
        chunk_size: Positions per chunk.

    Returns:
        ``(logprobs, entropy)`` of shape ``(...)``, float32; entropy is None unless asked for.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}.")
    shape = tokens.shape
    flat_hidden, flat_tokens = hidden.reshape(-1, hidden.shape[-1]), tokens.reshape(-1)  # (N, H), (N,)

    def chunk(h: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return logprobs_from_logits(head(h), t, temperature, vocab_limit, entropy, entropy_grad)

    chunks = list(zip(flat_hidden.split(chunk_size), flat_tokens.split(chunk_size)))
    parts = []
    for index, (h, t) in enumerate(chunks):
        # Under autograd, every chunk but the last keeps no (n, V) tensor for backward and is
        # recomputed then; the last one's logits are kept: one chunk's worth of memory, and no
        # recomputation at all when everything fits in one chunk.
        if torch.is_grad_enabled() and index < len(chunks) - 1:
            parts.append(checkpoint(chunk, h, t, use_reentrant=False, preserve_rng_state=False))
        else:
            parts.append(chunk(h, t))
    if not parts:  # no position to score
        empty = flat_hidden.new_zeros(shape, dtype=torch.float32)
        return empty, (empty.clone() if entropy else None)
    logprobs = torch.cat([lp for lp, _ in parts]).reshape(shape)
    ent = torch.cat([e for _, e in parts]).reshape(shape) if entropy else None
    return logprobs, ent
