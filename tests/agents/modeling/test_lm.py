"""LMActorCritic: shapes, positions, cached decoding, critics, LoRA reference, save and load."""

from __future__ import annotations

import warnings

import pytest
import torch

from agents.modeling.lm import LMActorCritic
from agents.modeling.tokens import positions_from_mask


def make(**kwargs) -> LMActorCritic:
    actor_critic = LMActorCritic("tiny", device="cpu", **kwargs)
    torch.nn.init.normal_(
        actor_critic.value_head.weight, generator=torch.Generator().manual_seed(0)
    )  # zero-initialised: make values informative
    return actor_critic


def batch(seed: int = 0, width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 250, (3, width), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    mask[1, :1] = 0
    return ids, mask


def test_forward_shapes_and_attributes():
    actor_critic = make()
    ids, mask = batch()
    out = actor_critic(ids, mask)
    assert out.logits.shape == (3, 12, actor_critic.logits_size)
    assert out.values.shape == (3, 12)
    assert out.logits.dtype == out.values.dtype == torch.float32
    assert actor_critic.tokenizer is not None and actor_critic.logits_size == 258


def test_positions_from_mask_counts_real_tokens():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert positions_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert positions_from_mask(mask, 2).tolist() == [[1, 2], [3, 4]]


def test_left_padding_gives_the_unpadded_outputs():
    actor_critic = make()
    ids, mask = batch()
    padded = actor_critic(ids, mask)
    alone = actor_critic(ids[:1, 4:], mask[:1, 4:])
    torch.testing.assert_close(padded.logits[0, 4:], alone.logits[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(padded.values[0, 4:], alone.values[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("critic", ["shared", "separate"])
def test_cached_decoding_matches_full_forward(critic):
    actor_critic = make(critic=critic)
    ids, mask = batch()
    full = actor_critic(ids, mask)
    first = actor_critic(ids[:, :8], mask[:, :8], use_cache=True)
    out = actor_critic(ids[:, 8:9], mask[:, :9], cache=first.cache, use_cache=True)
    out = actor_critic(ids[:, 9:], mask, cache=out.cache, use_cache=True)
    torch.testing.assert_close(out.logits, full.logits[:, 9:], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.values, full.values[:, 9:], atol=1e-5, rtol=1e-4)


def test_separate_critic_has_its_own_trunk_and_can_be_cut():
    actor_critic = make(critic="separate", critic_layers=1)
    assert len(actor_critic.critic_trunk.layers) == 1
    lm_params = {id(p) for p in actor_critic.lm.parameters()}
    assert not any(id(p) in lm_params for p in actor_critic.critic_trunk.parameters())
    ids, mask = batch()
    actor_critic(ids, mask).values.sum().backward()
    assert all(p.grad is None for p in actor_critic.lm.parameters())  # values do not train the actor


def test_lora_trains_adapters_only_and_reference_disables_them():
    # peft reads a transformers attribute that warns; users should not see that on every LoRA run.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        actor_critic = make(lora={"r": 4, "lora_alpha": 8, "init_lora_weights": False})
    trainable = [n for n, p in actor_critic.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("value_head") for n in trainable)
    ids, mask = batch()
    base = LMActorCritic("tiny", device="cpu")(ids, mask).logits
    assert actor_critic.make_reference() is None
    with torch.no_grad():
        assert not torch.allclose(actor_critic(ids, mask).logits, base, atol=1e-4)
        with actor_critic.reference():
            torch.testing.assert_close(actor_critic(ids, mask).logits, base)
    torch.testing.assert_close(actor_critic.reference_logits(ids, mask), base)


def test_make_reference_is_a_frozen_copy():
    actor_critic = make()
    reference = actor_critic.make_reference()
    assert not any(p.requires_grad for p in reference.parameters())
    ids, mask = batch()
    with torch.no_grad():
        for p in actor_critic.lm.parameters():
            p.add_(0.1)
    assert not torch.allclose(actor_critic.reference_logits(ids, mask, reference), actor_critic(ids, mask).logits)
    with pytest.raises(RuntimeError, match="make_reference"):
        with actor_critic.reference():
            pass


def test_gradient_checkpointing_gives_the_same_gradients():
    ids, mask = batch()
    grads = []
    for checkpointing in (False, True):
        actor_critic = make(gradient_checkpointing=checkpointing)
        actor_critic.train()
        out = actor_critic(ids, mask)
        (out.logits.logsumexp(-1).mean() + out.values.mean()).backward()
        grads.append(actor_critic.lm.get_input_embeddings().weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    "options", [{}, {"lora": {"r": 4, "init_lora_weights": False}}, {"critic": "separate", "critic_layers": 1}]
)
def test_save_and_load_round_trip(tmp_path, options):
    actor_critic = make(**options)
    with torch.no_grad():
        for p in actor_critic.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    actor_critic.save_pretrained(tmp_path)
    if "lora" in options:
        assert not (tmp_path / "lm" / "model.safetensors").exists()  # adapters only
    loaded = LMActorCritic.from_pretrained(tmp_path, device="cpu")
    ids, mask = batch()
    with torch.no_grad():
        expected, got = actor_critic(ids, mask), loaded(ids, mask)
    torch.testing.assert_close(got.logits, expected.logits)
    torch.testing.assert_close(got.values, expected.values)
    assert loaded.tokenizer is not None


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="critic must be one of"):
        LMActorCritic("tiny", critic="twin")
    with pytest.raises(ValueError, match="critic_layers"):
        LMActorCritic("tiny", critic_layers=1)
    with pytest.raises(TypeError, match="lora must be a dict"):
        LMActorCritic("tiny", lora=16)
    with pytest.raises(TypeError, match="causal LM"):
        LMActorCritic(torch.nn.Linear(2, 2))
