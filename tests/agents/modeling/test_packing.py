"""Packed scoring (agents/modeling/packing.py) against the padded path: log-probs, values, entropy, gradients."""

from __future__ import annotations

import pytest
import torch

from agents.modeling.lm import LMActorCritic
from agents.modeling.packing import _fill_rows, can_pack, pack_episodes
from agents.trainers.rollout import RolloutBatch
from agents.trainers.scoring import score_tokens


def batch_of(rows: list[tuple[list[int], list[int]]], prompt_width: int = 6, reply_width: int = 5) -> RolloutBatch:
    """Left-padded prompts and right-padded replies (pad id 0) from ``(prompt, reply)`` token lists."""
    b = len(rows)
    prompt_ids, prompt_mask = (
        torch.zeros(b, prompt_width, dtype=torch.long),
        torch.zeros(b, prompt_width, dtype=torch.long),
    )
    response_ids, response_mask = (
        torch.zeros(b, reply_width, dtype=torch.long),
        torch.zeros(b, reply_width, dtype=torch.long),
    )
    for r, (prompt, reply) in enumerate(rows):
        prompt_ids[r, prompt_width - len(prompt) :], prompt_mask[r, prompt_width - len(prompt) :] = (
            torch.tensor(prompt),
            1,
        )
        if reply:
            response_ids[r, : len(reply)], response_mask[r, : len(reply)] = torch.tensor(reply), 1
    zeros = torch.zeros(b, reply_width)
    return RolloutBatch(prompt_ids, prompt_mask, response_ids, response_mask, logprobs=zeros, rewards=zeros)


GROUPED = [  # two prompts, three replies each, of every length from 1 to 5
    ([5, 6, 7], [8, 9, 10, 11, 12]),
    ([5, 6, 7], [13, 14]),
    ([5, 6, 7], [15]),
    ([20, 21, 22, 23, 24, 25], [26, 27, 28]),
    ([20, 21, 22, 23, 24, 25], [29, 30, 31, 32]),
    ([20, 21, 22, 23, 24, 25], [33, 34, 35, 36, 37]),
]
MIXED = [([40], [41, 42, 43]), ([44, 45, 46, 47], [48]), ([49, 3, 4], [5, 6, 7, 8, 9])]  # every prompt its own
PREFIXED = [  # prompts that share their first tokens (a chat template's system turn), in groups of 2
    ([5, 6, 7, 8], [9, 10, 11]),
    ([5, 6, 7, 8], [12]),
    ([5, 6, 7, 30, 31, 32], [33, 34, 35, 36, 37]),
    ([5, 6, 7, 30, 31, 32], [38, 39]),
    ([5, 6, 7, 40, 41], []),
    ([5, 6, 7, 40, 41], [42, 43, 44]),
]


def scores_and_grads(model, batch, **kwargs):
    model.zero_grad()
    with torch.enable_grad():
        logprobs, values, entropy = score_tokens(model, batch, temperature=0.8, vocab_limit=50, chunk_size=3, **kwargs)
    real = batch.response_mask.bool()
    loss = logprobs[real].sum() + (values[real].sum() if values is not None else 0.0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logprobs, values, entropy, grads


@pytest.mark.parametrize(
    ("critic", "rows", "group_size", "row_tokens"),
    [
        ("shared", GROUPED, 3, 512),
        ("shared", GROUPED, 3, 4),  # one group per row
        ("separate", GROUPED, 3, 512),
        ("shared", MIXED, 1, 512),
        ("separate", MIXED, 1, 6),
        ("shared", PREFIXED, 2, 512),  # the prefix 5, 6, 7 once
        ("separate", PREFIXED, 2, 6),  # once per row
        ("shared", PREFIXED, 1, 512),
        ("shared", PREFIXED[:2], 1, 512),  # one prompt is the whole shared prefix but its last token
    ],
)
def test_packed_scoring_equals_the_padded_path(critic, rows, group_size, row_tokens):
    torch.manual_seed(0)
    model = LMActorCritic("tiny", device="cpu", dtype=torch.float32, critic=critic)
    torch.nn.init.normal_(model.value_head.weight, std=0.1)  # a zero head would hide the values' gradients
    batch = batch_of(rows)
    plain = scores_and_grads(model, batch, with_values=True, group_size=group_size, pack=False)
    packed = scores_and_grads(model, batch, with_values=True, group_size=group_size, row_tokens=row_tokens)
    real = batch.response_mask.bool()
    for got, expected in zip(packed[:3], plain[:3], strict=True):
        torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    assert (packed[0][~real] == 0).all() and (packed[2][~real] == 0).all()
    assert plain[3] and set(packed[3]) == set(plain[3])
    for name, grad in plain[3].items():
        torch.testing.assert_close(packed[3][name], grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("rows", "group_size"), [(GROUPED, 3), (PREFIXED, 2)])
def test_packed_scoring_through_a_transformers_reference_and_lora(rows, group_size):
    policy = LMActorCritic("tiny", device="cpu", dtype=torch.float32, lora={"r": 4})
    batch = batch_of(rows)
    with torch.no_grad():
        with policy.reference():
            a = score_tokens(policy, batch, vocab_limit=50, group_size=group_size)[0]
            b = score_tokens(policy, batch, vocab_limit=50, group_size=group_size, pack=False)[0]
        reference = policy.lm.get_base_model()
        c = score_tokens(reference, batch, vocab_limit=50, group_size=group_size)[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, b, atol=1e-5, rtol=1e-5)


def test_pack_episodes_drops_padding_and_shares_each_prompt():
    batch = batch_of(GROUPED)
    packed = pack_episodes(batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask, 3)
    # prompts 3 + 6 tokens, replies without their last token 4 + 1 + 0 + 2 + 3 + 4: one row of 23
    assert packed.input_ids.shape == (1, 23) and packed.attention_mask.shape == (1, 1, 23, 23)
    assert packed.input_ids[0, :8].tolist() == [5, 6, 7, 8, 9, 10, 11, 13]
    assert packed.position_ids[0, :8].tolist() == [0, 1, 2, 3, 4, 5, 6, 3]
    assert packed.index[1, :2].tolist() == [2, 7]  # reply 2 of prompt 1: the prompt's last token, then its own
    mask = packed.attention_mask[0, 0]
    assert mask[7, :3].all() and not mask[7, 3:7].any()  # the second reply sees the prompt, not the first reply
    assert not mask[8:, :8].any()  # the second group (from column 8) sees nothing of the first


def test_pack_episodes_runs_the_prompts_shared_prefix_once_per_row():
    batch = batch_of(PREFIXED, reply_width=5)
    args = (batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask, 2)
    whole = pack_episodes(*args, share_prefix=False)
    packed = pack_episodes(*args)
    # groups' prompts 4 + 6 + 5 tokens, replies without their last token 2 + 0 + 4 + 1 + 0 + 2: 24
    # tokens; sharing 5, 6, 7 saves 3 x 3 - 3
    assert whole.input_ids.shape == (1, 24) and packed.input_ids.shape == (1, 18)
    assert packed.input_ids[0, :6].tolist() == [5, 6, 7, 8, 9, 10]
    assert packed.position_ids[0, :6].tolist() == [0, 1, 2, 3, 4, 5]
    assert packed.index[0, :3].tolist() == [3, 4, 5]  # the group's prompt's last token, then the reply
    mask = packed.attention_mask[0, 0]
    assert mask[:3, :3].equal(torch.ones(3, 3, dtype=torch.bool).tril())  # the prefix, causally
    assert mask[3:, :3].all()  # every later token, of every group, sees the whole prefix
    assert not mask[6:, 3:6].any()  # the other groups do not see the first group's tokens
    assert (
        pack_episodes(*args[:4], 1).input_ids.shape[1]
        < pack_episodes(*args[:4], 1, share_prefix=False).input_ids.shape[1]
    )
    one_prompt = batch_of(PREFIXED[:1])
    single = pack_episodes(
        one_prompt.prompt_ids,
        one_prompt.prompt_mask,
        one_prompt.response_ids,
        one_prompt.response_mask,
        1,
    )
    assert single.input_ids[0].tolist() == [5, 6, 7, 8, 9, 10]  # nothing to share with: as before


def test_can_pack_needs_sdpa_a_prompt_and_replies_that_start_at_column_0():
    model = LMActorCritic("tiny", device="cpu", dtype=torch.float32)
    batch = batch_of(MIXED)
    assert can_pack(model, batch) and can_pack(model.make_reference(), batch)
    empty_prompt = batch_of(MIXED)
    empty_prompt.prompt_mask = torch.zeros_like(batch.prompt_mask)
    late_reply = batch_of(MIXED)
    late_reply.response_mask = batch.response_mask.flip(1)
    assert not can_pack(model, empty_prompt) and not can_pack(model, late_reply)
    assert not can_pack(torch.nn.Linear(2, 2), batch)  # no sdpa attention to take the 4D mask


@pytest.mark.cuda
def test_packed_scoring_under_bf16_autocast_on_cuda():
    model = LMActorCritic("tiny", device="cuda", dtype=torch.float32)
    batch = batch_of(GROUPED)
    for name in ("prompt_ids", "prompt_mask", "response_ids", "response_mask"):
        setattr(batch, name, getattr(batch, name).cuda())
    real = batch.response_mask.bool()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        packed = score_tokens(model, batch, vocab_limit=50, group_size=3)[0]
        plain = score_tokens(model, batch, vocab_limit=50, group_size=3, pack=False)[0]
    torch.testing.assert_close(packed[real], plain[real], atol=2e-2, rtol=2e-2)


def test_rows_are_balanced_and_as_many_as_cost_least():
    # Equal units: one per row (no padding, the least attention); a long unit and short ones: the
    # short ones share a row as long as the long one; two small units: one row.
    assert _fill_rows([78] * 4, 512) == [[0], [1], [2], [3]]
    assert _fill_rows([300, 100, 100, 100], 512) == [[0], [1, 2, 3]]
    assert _fill_rows([8, 15], 512) == [[0, 1]]
    rows = _fill_rows([100] * 7, 250)  # every unit placed once
    assert sorted(u for row in rows for u in row) == list(range(7)) and all(len(row) <= 2 for row in rows)
