"""Score the reply tokens of a rollout under the current policy: log-probs, values, entropy.

One forward pass over prompt + reply per micro-batch; GRPO's groups, which share a prompt, run the
prompt once and repeat its KV cache. What scoring needs from a model and from a batch are the two
small protocols here (:class:`ActorCritic`, :class:`Episodes`), so this module imports neither the
model nor :mod:`agents.trainers.rollout`, which imports it.

The KV-cache helpers that rollouts and scoring share live here too: :func:`repeat_cache` (a
group's prompt cache for each of its replies) and :func:`preallocate`. transformers'
``DynamicCache`` appends each step's keys and values with ``torch.cat``, which copies the whole
cache of every layer at every step: in a rollout of SmolLM2-135M (16 rows, 32 new tokens) a
decoding step took 178 ms with it and 128 ms without (issue 16). :func:`preallocate` moves a cache
into buffers with room for every token still to come (:class:`GrowingLayer`); each step writes
only its new columns, and attention gets a view of the columns filled so far, the same values that
``torch.cat`` would have built, so the outputs are identical.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Protocol

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from agents.modeling.logprobs import DEFAULT_CHUNK, logprobs_from_logits, token_logprobs
from agents.modeling.packing import DEFAULT_ROW_TOKENS, can_pack, pack_episodes, packed_hidden_states
from agents.modeling.tokens import positions_from_mask

__all__ = [
    "ActorCritic",
    "Episodes",
    "GrowingLayer",
    "can_preallocate",
    "critic_values",
    "masked_log_softmax_gather",
    "packed_prefill",
    "preallocate",
    "repeat_cache",
    "score_tokens",
    "shared_prompt_groups",
]

# Reply positions per chunk of the LM head when scoring a rollout: 512 x 49,152 float32 logits are
# 100 MB, and a batch of 16 replies of 32 tokens is one chunk, which is never recomputed (issue 16:
# chunks of 256 recomputed half of GRPO's head projection, 4% of an iteration, and its peak memory
# did not grow). The SB3 policy keeps DEFAULT_CHUNK: 512 positions in one chunk raised the README
# recipe's peak by 230 MB.
SCORE_CHUNK = 2 * DEFAULT_CHUNK


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
        compute_logits: bool = True,
    ) -> Any:  # an object with .logits (B, L, V) (None without compute_logits), .hidden (B, L, H), .values (B, L) or None, .cache
        ...

    def get_output_embeddings(self) -> Any: ...  # the LM head, (..., H) -> (..., V)


class Episodes(Protocol):
    """What scoring reads from a batch of episodes (:class:`~agents.trainers.rollout.RolloutBatch` has it)."""

    prompt_ids: torch.Tensor  # (B, Lp) left-padded
    prompt_mask: torch.Tensor  # (B, Lp)
    response_ids: torch.Tensor  # (B, T) right-padded
    response_mask: torch.Tensor  # (B, T) 1 on real reply tokens

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


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are the filled part of buffers ``(B, heads, capacity, head_dim)``.

    Args:
        keys: ``(B, heads, L, head_dim)`` the cached keys so far.
        values: The cached values, shaped as ``keys``.
        capacity: Columns to allocate, at least ``L`` plus the tokens still to come.
        repeats: Repeat every row this many times (``DynamicLayer.batch_repeat_interleave``), in
            the same copy.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int, repeats: int = 1) -> None:
        super().__init__()
        length = keys.shape[-2]
        if capacity < length:
            raise ValueError(f"capacity: expected at least the {length} cached tokens, got {capacity}.")
        self.lazy_initialization(keys, values)
        self._buffers = []
        for tensor in (keys, values):
            b, heads, _, dim = tensor.shape
            buffer = tensor.new_empty((b * repeats, heads, capacity, dim))  # (B', heads, capacity, dim)
            buffer[:, :, :length] = tensor.repeat_interleave(repeats, 0) if repeats > 1 else tensor
            self._buffers.append(buffer)
        self.length = length
        self.keys, self.values = (buffer[:, :, :length] for buffer in self._buffers)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Write the new columns after the filled ones; return the keys and values filled so far."""
        end = self.length + key_states.shape[-2]
        if end > self._buffers[0].shape[2]:
            raise RuntimeError(f"GrowingLayer is full: {end} tokens for a capacity of {self._buffers[0].shape[2]}.")
        key_buffer, value_buffer = self._buffers
        key_buffer[:, :, self.length : end] = key_states
        value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = key_buffer[:, :, :end], value_buffer[:, :, :end]
        return self.keys, self.values


def can_preallocate(cache: Any) -> bool:
    """Whether :func:`preallocate` takes ``cache``: a ``DynamicCache`` of ``DynamicLayer`` layers, or a tuple of them."""
    if isinstance(cache, tuple):
        return all(can_preallocate(part) for part in cache)
    layers = getattr(cache, "layers", None)
    return isinstance(cache, DynamicCache) and bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def preallocate(cache: Any, capacity: int, repeats: int = 1) -> Any:
    """The same cache in :class:`GrowingLayer` buffers of ``capacity`` columns, rows repeated ``repeats`` times.

    Args:
        cache: A ``DynamicCache`` of ``DynamicLayer`` layers, or a tuple of them (an actor and a
            separate critic, as ``agents.modeling.lm.LMActorCritic`` returns).
        capacity: Tokens the cache must hold: those cached plus those still to decode.
        repeats: As in :class:`GrowingLayer` (GRPO's replies to one prompt share its cache).

    Returns:
        A ``DynamicCache`` (or a tuple of them) that the models update in place.
    """
    if isinstance(cache, tuple):
        return tuple(preallocate(part, capacity, repeats) for part in cache)
    if not can_preallocate(cache):
        raise TypeError(
            "preallocate: expected a DynamicCache of full-attention DynamicLayer layers, "
            f"got {type(cache).__name__} with {[type(layer).__name__ for layer in getattr(cache, 'layers', [])]}."
        )
    out = DynamicCache()
    out.layers = [GrowingLayer(layer.keys, layer.values, capacity, repeats) for layer in cache.layers]
    return out


@torch.no_grad()
def packed_prefill(
    model: ActorCritic, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, row_tokens: int = DEFAULT_ROW_TOKENS
) -> tuple[torch.Tensor, torch.Tensor | None, Any] | None:
    """Run left-padded prompts without their padding; return what a padded forward with ``use_cache`` would.

    A rollout's first forward runs every prompt, padded to the longest: a quarter of SequencePPO's
    prefill was padding (issue 16). Here the real tokens run packed (:func:`pack_episodes`, no
    replies, the prompts' shared first tokens once per row), and each prompt's keys and values go
    back to its row of the left-padded layout (the padding columns hold copies of real ones, which
    the attention mask hides).

    Args:
        model: The actor-critic.
        prompt_ids: ``(n, Lp)`` left-padded prompts.
        prompt_mask: ``(n, Lp)``.
        row_tokens: As in :func:`pack_episodes`.

    Returns:
        ``(logits (n, 1, V), values (n, 1) or None, cache)`` at each prompt's last token, the cache
        ``(n, heads, Lp, head_dim)`` per layer, as a ``DynamicCache`` (or an (actor, critic) pair);
        None when the model or the cache cannot be packed (then run the padded prompts).
    """
    n = prompt_ids.shape[0]
    reply = torch.ones(
        n, 1, dtype=torch.long, device=prompt_ids.device
    )  # a 1-token reply: index = the last prompt token
    if not can_pack(model, SimpleNamespace(prompt_mask=prompt_mask, response_mask=reply)):
        return None
    packed = pack_episodes(prompt_ids, prompt_mask, reply, reply, 1, row_tokens)
    inputs = {"position_ids": packed.position_ids, "use_cache": True, "compute_logits": False}
    out = model(packed.input_ids, packed.attention_mask, **inputs)  # hidden (R, W, H), values (R, W) or None
    if not can_preallocate(out.cache):
        return None
    last, columns = packed.index[:, 0], packed.prompt_columns  # (n,) each prompt's last token, (n, Lp) every one
    for cache in out.cache if isinstance(out.cache, tuple) else (out.cache,):
        for layer in cache.layers:
            rows, heads, length, dim = layer.keys.shape
            layer.keys, layer.values = (
                x.transpose(1, 2).reshape(rows * length, heads, dim)[columns].transpose(1, 2)  # (n, heads, Lp, dim)
                for x in (layer.keys, layer.values)
            )
    logits = _output_head(model)(out.hidden.flatten(0, 1)[last][:, None]).float()  # (n, 1, V), as forward's heads
    values = critic_values(out)
    return logits, (values.flatten()[last][:, None] if values is not None else None), out.cache


def masked_log_softmax_gather(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, vocab_limit: int
) -> torch.Tensor:
    """Log-probs of ``tokens`` under ``softmax(logits / temperature)`` over the real vocabulary.

    :func:`agents.modeling.logprobs.logprobs_from_logits`, the formula that scoring applies chunk by
    chunk, for callers that hold the logits (a rollout samples from them).

    Args:
        logits: ``(..., V)`` raw logits (any dtype; the math runs in float32).
        tokens: ``(...)`` token ids, all below ``vocab_limit``.
        temperature: Sampling temperature (the same at rollout and update time, so ratios are exact).
        vocab_limit: Ids at or above it are not real tokens and take no probability.

    Returns:
        ``(...)`` float32 log-probs.
    """
    return logprobs_from_logits(logits, tokens, temperature, vocab_limit)[0]


def score_tokens(
    model: ActorCritic,
    batch: Episodes,
    *,
    temperature: float = 1.0,
    vocab_limit: int,
    with_values: bool = False,
    group_size: int = 1,
    chunk_size: int = SCORE_CHUNK,
    pack: bool = True,
    row_tokens: int = DEFAULT_ROW_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Score every reply token of a batch with one forward pass over prompt + reply.

    The hidden state at column ``Lp - 1 + t`` predicts reply token ``t``, and the value there is
    ``V(s_t)``, the same state the rollout valued before choosing that token. The LM head runs only
    on the real reply tokens (not the prompt, not the padding after a reply's end), a chunk of
    positions at a time (:func:`agents.modeling.logprobs.token_logprobs`), so no ``(B, T, V)``
    logits exist, in the forward or in the backward pass.

    With ``group_size > 1`` and groups that share their prompt (GRPO), the prompt runs once per
    group with gradients, and its KV cache is repeated for the replies: the same outputs and
    gradients as running every row whole, for ``1 / group_size`` of the prompt's compute.

    With ``pack`` (the default), the real tokens are packed into rows with no padding and each
    group's prompt once (:mod:`agents.modeling.packing`), when the model's attention takes a 4D
    mask (``sdpa``); otherwise, or with ``pack=False`` (a model wrapped by ``accelerate``), the
    padded layout above runs. Both give the same numbers and gradients.

    Args:
        model: The actor-critic (``LMOutput.hidden`` with ``compute_logits=False``), or a
            transformers causal LM (the frozen reference): its decoder, then its head.
        batch: The episodes.
        temperature: The policy's sampling temperature.
        vocab_limit: Ids at or above it are not real tokens.
        with_values: Return the critic's values.
        group_size: Consecutive rows that may share their prompt (see above).
        chunk_size: Reply positions whose logits exist at a time.
        pack: Score the packed real tokens (see above).
        row_tokens: Tokens per packed row (see :func:`agents.modeling.packing.pack_episodes`).

    Returns:
        ``(logprobs, values, entropy)``: ``(B, T)`` float32 log-probs of the reply tokens (0 on
        padding), ``(B, T)`` values or None, and ``(B, T)`` policy entropy (detached, for logging;
        0 on padding).
    """
    t = batch.response_ids.shape[1]
    hidden, values = None, None
    shared = shared_prompt_groups(batch.prompt_ids, batch.prompt_mask, group_size)
    if pack and can_pack(model, batch):
        hidden, values = packed_hidden_states(_hidden_states, model, batch, group_size if shared else 1, row_tokens)
    elif t > 1 and shared:
        hidden, values = _score_shared_prompts(model, batch, group_size)
    if hidden is None:
        mask = batch.attention_mask  # (B, Lp + T)
        # Only the T + 1 last positions: the prompt's hidden states are never needed.
        hidden, values, _ = _hidden_states(
            model, t + 1, input_ids=batch.input_ids, attention_mask=mask, position_ids=positions_from_mask(mask)
        )
        hidden = hidden[:, :-1]  # (B, T, H): column t predicts reply token t
        values = values[:, :-1] if values is not None else None
    real = batch.response_mask.bool()  # (B, T)
    chosen, entropy = token_logprobs(
        _output_head(model),
        hidden[real],  # (N, H): the real reply tokens only
        batch.response_ids[real],
        temperature=temperature,
        vocab_limit=vocab_limit,
        chunk_size=chunk_size,
    )
    zeros = torch.zeros(real.shape, dtype=torch.float32, device=real.device)
    logprobs = zeros.masked_scatter(real, chosen)  # (B, T), differentiable in chosen
    entropy = zeros.masked_scatter(real, entropy.detach())
    values = values.float() if with_values and values is not None else None
    return logprobs, values, entropy


def _hidden_states(model: ActorCritic, keep: int, **inputs: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """Run the trunk; return the last ``keep`` hidden states ``(B, keep, H)``, values or None, and the cache."""
    decoder = getattr(model, "get_decoder", None)
    if decoder is not None:  # a transformers causal LM: its decoder without the head
        out = decoder()(**inputs)
        return out.last_hidden_state[:, -keep:], None, getattr(out, "cache", None)
    out = model(**inputs, logits_to_keep=keep, compute_logits=False)
    return out.hidden, critic_values(out), getattr(out, "cache", None)


def _output_head(model: Any) -> Any:
    """The LM head of ``model`` (through a ``DistributedDataParallel`` wrapper's ``module``)."""
    return getattr(model, "module", model).get_output_embeddings()


def _score_shared_prompts(
    model: ActorCritic, batch: Episodes, group_size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Prompt once per group (with its cache repeated), then all replies: hidden ``(B, T, H)``, values ``(B, T)``."""
    firsts = slice(None, None, group_size)
    prompt_mask = batch.prompt_mask[firsts]  # (n, Lp)
    head_hidden, head_values, cache = _hidden_states(
        model,
        1,
        input_ids=batch.prompt_ids[firsts],
        attention_mask=prompt_mask,
        position_ids=positions_from_mask(prompt_mask),
        use_cache=True,
    )
    if cache is None:  # e.g. gradient checkpointing turns the cache off: score rows whole instead
        return None, None
    cache = repeat_cache(cache, group_size)
    replies = batch.response_ids[:, :-1]  # (B, T - 1): each predicts the next reply token
    mask = batch.attention_mask[:, :-1]  # (B, Lp + T - 1)
    positions = batch.prompt_mask.sum(1, keepdim=True) + torch.arange(
        replies.shape[1], device=replies.device
    )  # (B, T - 1)
    tail_hidden, tail_values, _ = _hidden_states(
        model,
        replies.shape[1],
        input_ids=replies,
        attention_mask=mask,
        cache=cache,
        position_ids=positions,
        use_cache=True,
    )
    hidden = torch.cat([head_hidden.repeat_interleave(group_size, 0), tail_hidden], dim=1)  # (B, T, H)
    values = None
    if head_values is not None and tail_values is not None:
        values = torch.cat([head_values.repeat_interleave(group_size, 0), tail_values], dim=1)  # (B, T)
    return hidden, values
