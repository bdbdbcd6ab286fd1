"""Padding-free scoring: a batch's real tokens packed into a few rows, each prompt run once per group.

A batch of episodes is laid out for the env (left-padded prompts, right-padded replies), so a
forward pass over it computes padding: on a rewriting task with prompts of 20 to 60 tokens and
replies of 5 to 30, more than half of the warm start's columns. GRPO adds a second waste: its
``group_size`` replies to one prompt all carry that prompt.

:func:`pack_episodes` lays out only the real tokens, as a tree per group: the group's prompt
once, then each reply (without its last token, which predicts nothing), every reply attending to
the prompt and to itself only, through a ``(R, 1, L, L)`` attention mask. Groups are spread over
balanced rows of about ``row_tokens`` tokens at most (so attention, quadratic in a row's length,
stays small next to the matmuls), and positions restart at 0 for each prompt, so a causal LM gives
every real position the hidden state it has in the padded layout. ``PackedEpisodes.index`` says
where the state that predicts each reply token sits.

The first tokens that every prompt of the batch shares (a chat template's system turn: 24 of
SmolLM2's 39 tokens on an average ``TextGen-v0`` prompt) run once per row instead of once per
group, and every token of the row sees them: the tree gains a root. The padded path
(:func:`agents.trainers.scoring.score_tokens` with ``pack=False``) stays for models wrapped by
``accelerate``; both are tested equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "DEFAULT_ROW_TOKENS",
    "PackedEpisodes",
    "can_pack",
    "pack_episodes",
    "packed_hidden_states",
    "tree_attention_mask",
]

PADDING, SHARED = -1, -2
"""Unit ids of :func:`tree_attention_mask` for a row's padding and for the prefix that its units share."""

# Rows of about 512 tokens: the attention scores of a row (L x L per head) stay a few MB, and a
# 512-row matmul runs at full speed on a CPU.
DEFAULT_ROW_TOKENS = 512


@dataclass
class PackedEpisodes:
    """What :func:`pack_episodes` returns.

    Attributes:
        input_ids: ``(R, L)`` the packed tokens (0 after a row's end).
        attention_mask: ``(R, 1, L, L)`` bool, True where a query (dim 2) may attend a key (dim 3).
        position_ids: ``(R, L)`` each token's position in its own episode.
        index: ``(B, T)`` flat index into ``(R * L)`` of the state that predicts reply token
            ``(b, t)``; the same state also holds ``V(s_t)``. Only real reply tokens are meaningful.
        prompt_columns: ``(G, Lp)`` flat index into ``(R * L)`` of the token in each column of
            group ``g``'s left-padded prompt (of its first token in the padding columns).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    index: torch.Tensor
    prompt_columns: torch.Tensor


def can_pack(model: Any, batch: Any) -> bool:
    """Whether ``batch`` (prompt and response ids and masks) can be packed for ``model``.

    The model's attention must take a boolean 4D mask (transformers' ``sdpa``), every prompt
    must have a real token and every reply's real tokens must come first (the env's layout).
    """
    config = getattr(getattr(model, "lm", model), "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if not bool(batch.prompt_mask.bool().any(1).all()):
        return False
    mask = batch.response_mask
    expected = torch.arange(mask.shape[1], device=mask.device)[None] < mask.long().sum(1, keepdim=True)
    return bool((mask.bool() == expected).all())


def packed_hidden_states(
    run: Callable[..., tuple[torch.Tensor, torch.Tensor | None, Any]],
    model: Any,
    batch: Any,
    group_size: int = 1,
    row_tokens: int = DEFAULT_ROW_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The hidden state ``(B, T, H)`` (and value ``(B, T)`` or None) that predicts each reply token of ``batch``.

    Args:
        run: ``run(model, keep, input_ids=..., attention_mask=..., position_ids=...)`` returns the
            last ``keep`` hidden states ``(R, keep, H)``, values ``(R, keep)`` or None, and a cache
            (``agents.trainers.scoring`` passes its trunk runner).
        model: The actor-critic or a transformers causal LM.
        batch: Prompt and response ids and masks (``agents.trainers.rollout.RolloutBatch``).
        group_size: As in :func:`pack_episodes`.
        row_tokens: As in :func:`pack_episodes`.
    """
    packed = pack_episodes(
        batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask, group_size, row_tokens
    )
    width = packed.input_ids.shape[1]
    inputs = {"attention_mask": packed.attention_mask, "position_ids": packed.position_ids}
    hidden, values, _ = run(model, width, input_ids=packed.input_ids, **inputs)  # (R, L, H), (R, L)
    hidden = hidden.reshape(-1, hidden.shape[-1])[packed.index]  # (B, T, H)
    return hidden, (values.reshape(-1)[packed.index] if values is not None else None)


def pack_episodes(
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int = 1,
    row_tokens: int = DEFAULT_ROW_TOKENS,
    share_prefix: bool = True,
) -> PackedEpisodes:
    """Pack episodes into rows of real tokens; consecutive groups of ``group_size`` share their prompt.

    Args:
        prompt_ids: ``(B, Lp)`` left-padded prompts.
        prompt_mask: ``(B, Lp)``; every row has a real token.
        response_ids: ``(B, T)`` right-padded replies.
        response_mask: ``(B, T)``, 1 on each reply's first tokens.
        group_size: Consecutive rows with the same prompt, run once (1: every row has its own).
            The caller checks that they are the same (``scoring.shared_prompt_groups``).
        row_tokens: About the longest row: the groups go into ``ceil(total / row_tokens)`` rows of
            about equal length.
        share_prefix: Run the first tokens common to every prompt once at the start of each row
            (each group keeps at least its prompt's last token); False: every group holds its
            whole prompt, as before.

    Returns:
        The :class:`PackedEpisodes`.
    """
    if row_tokens < 1:
        raise ValueError(f"row_tokens: expected a positive int, got {row_tokens!r}.")
    b, t = response_ids.shape
    if group_size < 1 or b % group_size:
        raise ValueError(f"group_size: expected a divisor of the batch size {b}, got {group_size!r}.")
    prompt_mask, reply_lengths = prompt_mask.bool(), response_mask.long().sum(1).tolist()  # (B, Lp), [B]
    prompts = [prompt_ids[first][prompt_mask[first]] for first in range(0, b, group_size)]  # (P_g,) each
    c = _common_prefix_length(prompts) if share_prefix else 0
    prefix = prompts[0][:c]  # (c,): once per row
    units, reads = _group_units(prompts, c, response_ids, reply_lengths, group_size)
    rows = _fill_rows([u[0].shape[0] for u in units], row_tokens, prefix=c)
    width = c + max(sum(units[u][0].shape[0] for u in row) for row in rows)
    device = response_ids.device
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    position_ids = torch.zeros(len(rows), width, dtype=torch.long)
    unit_ids = torch.full((len(rows), width), PADDING, dtype=torch.long)  # padding after the row's end
    branch_ids = torch.zeros(len(rows), width, dtype=torch.long)
    start_of = {}  # unit -> flat index of its first token
    for r, row in enumerate(rows):
        input_ids[r, :c], position_ids[r, :c], unit_ids[r, :c] = prefix, torch.arange(c), SHARED
        column = c
        for u in row:
            ids, pos, branch = units[u]
            end = column + ids.shape[0]
            input_ids[r, column:end], position_ids[r, column:end] = ids, pos
            unit_ids[r, column:end], branch_ids[r, column:end] = u, branch
            start_of[u] = r * width + column
            column = end
    index = torch.tensor(
        [[start_of[row // group_size] + offset for offset in reads[row]] for row in range(b)], dtype=torch.long
    ).reshape(b, t)
    lp = prompt_ids.shape[1]
    starts = torch.tensor([start_of[g] for g in range(len(units))])[:, None]  # (G, 1)
    lengths = torch.tensor([prompt.shape[0] for prompt in prompts])[:, None]  # (G, 1)
    k = (torch.arange(lp)[None] - (lp - lengths)).clamp(min=0)  # (G, Lp): the prompt's token in each column
    prompt_columns = torch.where(k < c, starts - starts % width + k, starts + k - c)  # the prefix: its row's
    return PackedEpisodes(
        input_ids.to(device),
        tree_attention_mask(unit_ids, branch_ids).to(device),
        position_ids.to(device),
        index.to(device),
        prompt_columns.to(device),
    )


def _group_units(
    prompts: list[torch.Tensor], c: int, response_ids: torch.Tensor, reply_lengths: list[int], group_size: int
) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], list[list[int]]]:
    """One unit per group: its prompt after the shared prefix, then each reply without its last token.

    Returns the units as ``(tokens, positions, branches)`` (branch 0: the prompt, i + 1: reply i)
    and, per episode, ``reads[b][t]``: the offset in its unit of the state predicting reply token t.
    """
    t = response_ids.shape[1]
    units, reads = [], []
    for g, prompt in enumerate(prompts):
        first, p = g * group_size, prompt.shape[0]
        tokens, positions, branches = [prompt[c:]], [torch.arange(c, p)], [torch.zeros(p - c, dtype=torch.long)]
        offset = p - c
        for i in range(group_size):
            n = reply_lengths[first + i]
            body = response_ids[first + i, : max(n - 1, 0)]  # (n - 1,): reply token t predicts t + 1
            tokens.append(body)
            positions.append(torch.arange(p, p + body.shape[0]))
            branches.append(torch.full((body.shape[0],), i + 1, dtype=torch.long))
            reads.append([p - c - 1] + list(range(offset, offset + body.shape[0])) + [0] * (t - max(n, 1)))
            offset += body.shape[0]
        units.append((torch.cat(tokens), torch.cat(positions), torch.cat(branches)))
    return units, reads


def tree_attention_mask(unit_ids: torch.Tensor, branch_ids: torch.Tensor) -> torch.Tensor:
    """``(R, 1, L, L)`` bool: a token sees the row's shared prefix, and the earlier tokens of its unit's prompt
    (branch 0) and of its own branch.

    Unit :data:`SHARED` marks the prefix that every unit of the row shares; :data:`PADDING` sees
    only itself, so no softmax row is empty.

    >>> tree_attention_mask(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 1, 2, 2]]))[0, 0].int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1]]
    >>> tree_attention_mask(torch.tensor([[SHARED, 0, 1, 1]]), torch.tensor([[0, 0, 0, 1]]))[0, 0].int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1]]
    """
    width = unit_ids.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()  # (L, L)
    same_unit = (unit_ids[:, :, None] == unit_ids[:, None, :]) & (unit_ids[:, :, None] >= 0)  # (R, L, L)
    branch_ok = (branch_ids[:, None, :] == 0) | (branch_ids[:, :, None] == branch_ids[:, None, :])
    sees_prefix = (unit_ids[:, None, :] == SHARED) & (unit_ids[:, :, None] != PADDING)  # (R, L, L)
    allowed = (same_unit & branch_ok | sees_prefix) & causal
    allowed |= torch.eye(width, dtype=torch.bool)
    return allowed[:, None]  # (R, 1, L, L)


def _common_prefix_length(prompts: list[torch.Tensor]) -> int:
    """How many first tokens every prompt shares, leaving each at least its last token (0 for one prompt)."""
    if len(prompts) < 2:
        return 0
    limit = min(prompt.shape[0] for prompt in prompts) - 1
    first = prompts[0][:limit]
    same = torch.stack([prompt[:limit] == first for prompt in prompts[1:]]).all(0)  # (limit,)
    return int(same.long().cumprod(0).sum())


def _fill_rows(lengths: list[int], row_tokens: int, prefix: int = 0) -> list[list[int]]:
    """Units into balanced rows of at most about ``row_tokens`` tokens, as many as costs least.

    Rows are padded to the longest, so they are balanced: the longest unit first, each into the
    shortest row so far (three GRPO groups in one 512-token row and one in the next made the
    scoring 10% slower than one row). Among the row counts from the fewest that ``row_tokens``
    allows up to one unit per row, the one of least :func:`_layout_cost` wins: more, shorter rows
    cost less attention (quadratic in a row's length) but may pad more (issue 16: SequencePPO's 16
    episodes in 8 rows of 154 tokens instead of 3 of 411 made attention 2x cheaper). Every row
    also holds ``prefix`` shared tokens, which favours fewer rows.
    """
    fewest = max(-(-sum(lengths) // row_tokens), 1)
    best: list[list[int]] = []
    best_cost = float("inf")
    for count in range(fewest, max(len(lengths), fewest) + 1):
        rows: list[list[int]] = [[] for _ in range(count)]
        used = [0] * count
        for unit in sorted(range(len(lengths)), key=lambda u: -lengths[u]):
            row = min(range(count), key=used.__getitem__)
            rows[row].append(unit)
            used[row] += lengths[unit]
        cost = _layout_cost(sum(1 for u in used if u), prefix + max(used))
        if cost < best_cost:
            best, best_cost = [sorted(row) for row in rows if row], cost
    return best


# The row length at which a row's attention (quadratic) costs as much as its linear layers (linear
# in its tokens): measured for SmolLM2-135M's forward and backward on a CPU (attention of 2 rows of
# 341 tokens: 24.5 ms per layer; a token through all linear layers: 5.5 ms).
ATTENTION_TOKENS = 1700


def _layout_cost(rows: int, width: int) -> float:
    """Relative cost of scoring ``rows`` padded rows of ``width`` tokens: linear layers plus attention."""
    return rows * width * (1.0 + width / ATTENTION_TOKENS)
