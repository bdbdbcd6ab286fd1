"""The preallocated KV cache gives exactly the outputs of transformers' DynamicCache."""

from __future__ import annotations

import pytest
import torch

from agents.modeling.lm import LMActorCritic
from agents.modeling.tokens import positions_from_mask
from agents.trainers.scoring import GrowingLayer, can_preallocate, packed_prefill, preallocate


@pytest.fixture(scope="module", params=["shared", "separate"])
def model(request) -> LMActorCritic:
    torch.manual_seed(0)
    model = LMActorCritic("tiny", device="cpu", dtype=torch.float32, critic=request.param).eval()
    torch.nn.init.normal_(model.value_head.weight, std=0.1)  # a zero head would hide the values
    return model


def decode(model: LMActorCritic, grow: bool, steps: int = 5, repeats: int = 1) -> list[torch.Tensor]:
    """Greedy decoding from two left-padded prompts; the logits and values of every step."""
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = (ids > 0).long()
    outputs = []
    with torch.no_grad():
        out = model(ids, mask, position_ids=positions_from_mask(mask), use_cache=True, logits_to_keep=1)
        cache = out.cache
        if repeats > 1 or grow:
            assert can_preallocate(cache)
            cache = preallocate(cache, ids.shape[1] + steps, repeats) if grow else _repeat(cache, repeats)
        mask = mask.repeat_interleave(repeats, 0)
        logits, values = out.logits.repeat_interleave(repeats, 0), out.values.repeat_interleave(repeats, 0)
        for _ in range(steps):
            outputs += [logits[:, -1], values[:, -1]]
            token = logits[:, -1].argmax(-1, keepdim=True) + torch.arange(len(mask))[:, None]  # (B, 1): rows differ
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            out = model(token, mask, cache=cache, position_ids=positions_from_mask(mask, 1), use_cache=True)
            cache, logits, values = out.cache, out.logits, out.values
    return outputs


def _repeat(cache, repeats):
    for part in cache if isinstance(cache, tuple) else (cache,):
        part.batch_repeat_interleave(repeats)
    return cache


@pytest.mark.parametrize("repeats", [1, 3])
def test_preallocated_cache_decodes_exactly_as_dynamic_cache(model, repeats):
    plain, grown = decode(model, grow=False, repeats=repeats), decode(model, grow=True, repeats=repeats)
    for a, b in zip(plain, grown, strict=True):
        assert torch.equal(a, b)


def test_growing_layer_checks_its_capacity():
    keys = torch.zeros(2, 1, 3, 4)
    with pytest.raises(ValueError, match="capacity: expected at least the 3 cached tokens, got 2"):
        GrowingLayer(keys, keys, capacity=2)
    layer = GrowingLayer(keys, keys, capacity=4)
    k, _ = layer.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))
    assert k.shape == (2, 1, 4, 4) and layer.get_seq_length() == 4 and bool((k[:, :, 3] == 1).all())
    with pytest.raises(RuntimeError, match="full"):
        layer.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))


def test_preallocate_refuses_other_caches():
    assert not can_preallocate(None)
    with pytest.raises(TypeError, match="expected a DynamicCache"):
        preallocate(object(), 4)


@pytest.mark.parametrize(
    ("ids", "row_tokens"),
    [
        ([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12], [0, 0, 0, 0, 13]], 512),
        ([[0, 5, 6, 7, 8], [5, 6, 7, 9, 10], [0, 0, 5, 6, 11]], 512),  # 5, 6 shared by all: run once
        ([[0, 5, 6, 7, 8], [5, 6, 7, 9, 10], [0, 0, 5, 6, 11]], 2),  # once in each of several rows
    ],
)
def test_packed_prefill_gives_the_padded_prefill_and_decoding(model, ids, row_tokens):
    ids = torch.tensor(ids)
    mask = (ids > 0).long()
    with torch.no_grad():
        padded = model(ids, mask, position_ids=positions_from_mask(mask), use_cache=True, logits_to_keep=1)
        logits, values, cache = packed_prefill(model, ids, mask, row_tokens)
        torch.testing.assert_close(logits, padded.logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values, padded.values, atol=1e-5, rtol=1e-5)
        token, mask = torch.tensor([[20], [21], [22]]), torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1)
        steps = [
            model(token, mask, cache=c, position_ids=positions_from_mask(mask, 1), use_cache=True)
            for c in (padded.cache, preallocate(cache, 6))
        ]
    torch.testing.assert_close(steps[0].logits, steps[1].logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(steps[0].values, steps[1].values, atol=1e-5, rtol=1e-5)
