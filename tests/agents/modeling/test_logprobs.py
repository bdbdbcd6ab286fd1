"""Chunked selective log-softmax against the plain path: full logits, then log_softmax."""

from __future__ import annotations

import pytest
import torch

from agents.modeling.lm import LMActorCritic
from agents.modeling.logprobs import logprobs_from_logits, token_logprobs
from agents.trainers.rollout import RolloutBatch
from agents.trainers.scoring import score_tokens


def plain(logits: torch.Tensor, tokens: torch.Tensor, temperature: float, vocab_limit: int):
    logp = (logits[..., :vocab_limit].float() / temperature).log_softmax(-1)
    return logp.gather(-1, tokens[..., None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
@pytest.mark.parametrize("entropy_grad", [False, True])
def test_token_logprobs_match_the_plain_path_with_gradients(chunk_size, entropy_grad):
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 20)
    hidden = torch.randn(2, 5, 8, requires_grad=True)
    tokens = torch.randint(0, 15, (2, 5))
    expected, expected_ent = plain(head(hidden), tokens, 0.7, 15)
    (expected.sum() + expected_ent.sum() * entropy_grad).backward()
    grads = [hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()]
    hidden.grad = head.weight.grad = head.bias.grad = None

    got, ent = token_logprobs(
        head, hidden, tokens, temperature=0.7, vocab_limit=15, chunk_size=chunk_size, entropy_grad=entropy_grad
    )
    assert got.shape == ent.shape == (2, 5) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ent, expected_ent, atol=1e-6, rtol=1e-6)
    assert ent.requires_grad == entropy_grad
    (got.sum() + ent.sum() * entropy_grad).backward()
    for a, b in zip([hidden.grad, head.weight.grad, head.bias.grad], grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_token_logprobs_without_grad_and_on_no_positions():
    head = torch.nn.Linear(4, 6)
    with torch.no_grad():
        got, ent = token_logprobs(head, torch.randn(3, 4), torch.tensor([0, 5, 2]), chunk_size=2)
    assert not got.requires_grad and got.shape == ent.shape == (3,)
    empty, empty_ent = token_logprobs(head, torch.randn(0, 4), torch.zeros(0, dtype=torch.long))
    assert empty.shape == empty_ent.shape == (0,)
    with pytest.raises(ValueError, match="chunk_size"):
        token_logprobs(head, torch.randn(3, 4), torch.tensor([0, 1, 2]), chunk_size=0)


def test_logprobs_from_logits_is_the_formula_of_the_rollout():
    logits = torch.randn(3, 10)
    tokens = torch.tensor([1, 4, 7])
    got, ent = logprobs_from_logits(logits, tokens, 1.3, 8, entropy=True)
    expected, expected_ent = plain(logits, tokens, 1.3, 8)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(ent, expected_ent)


def test_logprobs_from_logits_fused_backward_matches_log_softmax():
    # The training path (one exp pass, hand-written backward) on (B, T, V) logits, against autograd's log_softmax.
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 12, requires_grad=True)
    tokens = torch.randint(0, 9, (2, 3))
    weights = torch.randn(2, 3)
    expected, expected_ent = plain(logits, tokens, 0.8, 9)
    (expected * weights).sum().backward()
    expected_grad, logits.grad = logits.grad.clone(), None
    got, ent = logprobs_from_logits(logits, tokens, 0.8, 9, entropy=True)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ent, expected_ent.detach(), atol=1e-6, rtol=1e-6)
    assert got.requires_grad and not ent.requires_grad
    (got * weights).sum().backward()
    torch.testing.assert_close(logits.grad, expected_grad, atol=1e-6, rtol=1e-6)
    without_grad, _ = logprobs_from_logits(logits.detach(), tokens, 0.8, 9)  # the rollout's path: logsumexp
    torch.testing.assert_close(without_grad, got.detach(), atol=1e-6, rtol=1e-6)


def episodes(model: LMActorCritic) -> RolloutBatch:
    """Three left-padded prompts, right-padded replies of lengths 4, 2 and 3."""
    gen = torch.Generator().manual_seed(0)
    prompt_ids = torch.randint(3, 60, (3, 5), generator=gen)
    prompt_mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    response_ids = torch.randint(3, 45, (3, 4), generator=gen)
    response_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    response_ids = response_ids * response_mask  # pad id 0 after each reply
    zeros = torch.zeros(3, 4)
    return RolloutBatch(prompt_ids, prompt_mask, response_ids, response_mask, logprobs=zeros, rewards=zeros)


@pytest.mark.parametrize("reference", [False, True])
def test_score_tokens_equals_full_logits_log_softmax(reference):
    torch.manual_seed(0)
    policy = LMActorCritic("tiny", device="cpu", dtype=torch.float32)
    model = policy.make_reference().requires_grad_(True) if reference else policy
    batch = episodes(policy)
    ids, mask = batch.input_ids, batch.attention_mask
    positions = mask.cumsum(1).clamp(min=1) - 1
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, 4:-1]  # (B, T, V)
    expected, expected_ent = plain(logits, batch.response_ids, 0.9, 50)
    real = batch.response_mask.bool()
    expected[real].sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    got, _, ent = score_tokens(model, batch, temperature=0.9, vocab_limit=50, chunk_size=4)
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent[real], expected_ent[real].detach(), atol=1e-5, rtol=1e-5)
    assert (got[~real] == 0).all() and (ent[~real] == 0).all()
    got[real].sum().backward()
    assert grads and set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        if name in grads:
            torch.testing.assert_close(p.grad, grads[name], atol=1e-5, rtol=1e-4)


def test_micro_batches_drop_padding_columns_and_score_the_same():
    policy = LMActorCritic("tiny", device="cpu", dtype=torch.float32)
    batch = episodes(policy)
    part = batch.select([1, 2])  # prompts of 5 and 4 tokens, replies of 2 and 3: one padding column each side
    assert part.prompt_ids.shape[1] == 5 and part.response_ids.shape[1] == 3
    part_rows = batch.select([2])
    assert part_rows.prompt_ids.shape[1] == 4 and part_rows.response_ids.shape[1] == 3
    with torch.no_grad():
        whole, _, _ = score_tokens(policy, batch, vocab_limit=50)
        trimmed, _, _ = score_tokens(policy, part_rows, vocab_limit=50)
    torch.testing.assert_close(trimmed[0], whole[2, :3], atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
def test_token_logprobs_under_bf16_autocast_on_cuda():
    head = torch.nn.Linear(64, 1000, device="cuda")
    hidden = torch.randn(300, 64, device="cuda", requires_grad=True)
    tokens = torch.randint(0, 1000, (300,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        expected, _ = plain(head(hidden), tokens, 1.0, 1000)
        got, _ = token_logprobs(head, hidden, tokens, chunk_size=128)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)
    got.sum().backward()
    assert torch.isfinite(hidden.grad).all()


def test_sample_tokens_draws_from_the_softmax_and_never_a_masked_token():
    from agents.modeling.tokens import sample_tokens

    logits = torch.log(torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0])).repeat(20_000, 1)  # -inf on tokens 1 and 4
    generator = torch.Generator().manual_seed(0)
    draws = sample_tokens(logits, generator=generator)
    counts = torch.bincount(draws, minlength=5).float() / len(draws)
    assert counts[1] == counts[4] == 0
    torch.testing.assert_close(counts, torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0]), atol=0.015, rtol=0)
    again = sample_tokens(logits, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)  # reproducible from the generator


def test_shared_prompts_score_the_same_through_a_transformers_reference():
    policy = LMActorCritic("tiny", device="cpu", dtype=torch.float32)
    reference = policy.make_reference()
    batch = episodes(policy)
    rows = torch.tensor([0, 0, 2, 2])  # two groups of two replies to one prompt
    batch.prompt_ids, batch.prompt_mask = batch.prompt_ids[rows], batch.prompt_mask[rows]
    batch.response_ids = torch.stack(
        [batch.response_ids[0], batch.response_ids[1], batch.response_ids[2], batch.response_ids[0]]
    )
    batch.response_mask = torch.stack(
        [batch.response_mask[0], batch.response_mask[1], batch.response_mask[2], batch.response_mask[0]]
    )
    with torch.no_grad():
        shared, _, shared_ent = score_tokens(reference, batch, vocab_limit=50, group_size=2)
        plain_rows, _, plain_ent = score_tokens(reference, batch, vocab_limit=50, group_size=1)
    torch.testing.assert_close(shared, plain_rows, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared_ent, plain_ent, atol=1e-5, rtol=1e-5)
