"""A KV cache that grows into preallocated buffers, for decoding a known number of tokens.

transformers' ``DynamicCache`` appends each step's keys and values with ``torch.cat``, which
copies the whole cache of every layer at every step: in a rollout of SmolLM2-135M (16 rows, 32
new tokens) the copies took 14% of each decoding step (issue 16). :func:`preallocate` moves a
cache into buffers with room for ``capacity`` tokens; each step then writes only its new columns,
and the layers hand attention a view of the columns filled so far, the same tensor values that
``torch.cat`` would have built, so the outputs are identical (``tests/modeling/test_growing_cache.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

__all__ = ["GrowingLayer", "can_preallocate", "preallocate"]


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
