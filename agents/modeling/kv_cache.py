"""A per-env KV cache for SB3 rollouts: feed only the new token when an observation grows by one.

During ``collect_rollouts`` SB3 calls the policy once per step with the whole observation of every
env. A TextGen observation is the previous one plus the token just chosen, so recomputing the
whole sequence each step (``O(T^2)`` tokens per episode) wastes almost all of the work that
``model.generate`` avoids with its KV cache. :class:`RolloutKVCache` keeps one cache row per env
and, for each row of a new batch, compares it with what it cached:

- **same**: the observation is the cached one: the stored outputs are returned.
- **next**: it is the cached one plus one token: only that token goes through the model.
- **fresh**: anything else (a reset, another env, a first call): the row is recomputed.

After choosing its actions, the policy calls :meth:`RolloutKVCache.advance`, which runs the chosen
tokens at once, as ``generate`` would: a TextGen env appends exactly the chosen token, so the next
call (and SB3's value of a terminal observation) is a "same". When the guess is wrong (another
token was appended), the row continues from the state before the guess, with the guessed column
masked out.

The comparison is on content, so the cache is an optimisation only: a wrong guess cannot change
an output. Rows live in one batched cache ``(N, heads, L, head_dim)`` per layer; each row has its
own mask over the ``L`` columns, and positions come from that mask, so rows of different lengths
(and masked holes) are fine. Leading columns that no row uses are dropped.

Calls with ``commit=False`` (SB3's ``predict_values``) match each row against every slot and use
the cache without changing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from agents.modeling.lm import LMActorCritic
from agents.modeling.prefix import last_token_outputs
from agents.modeling.tokens import last_real_index, positions_from_mask

# One list of (keys, values) per layer, one such list per trunk (two with a separate critic).
KV = list[list[tuple[torch.Tensor, torch.Tensor]]]
# Rows of a batch, their cache and its (rows, L) mask.
_Part = tuple[torch.Tensor, KV, torch.Tensor]


@dataclass
class _Slots:
    """What the cache holds for ``N`` envs."""

    input_ids: torch.Tensor  # (N, S) the last observation of each env (with a guessed token, see advance)
    attention_mask: torch.Tensor  # (N, S)
    kv: KV  # tensors (N, heads, L, head_dim)
    kv_mask: torch.Tensor  # (N, L) which cache columns hold a real token of the row
    logits: torch.Tensor  # (N, V) outputs at the last real token
    values: torch.Tensor  # (N,)
    guessed: torch.Tensor  # (N,) slot of the token appended by advance(), -1 if none; it sits in column L - 1
    before: tuple[torch.Tensor, torch.Tensor] | None = None  # logits and values before the guess

    def without_guess(self) -> _Slots | None:
        """The slots as they were before :meth:`RolloutKVCache.advance` (the guess masked out), or ``None``."""
        rows = (self.guessed >= 0).nonzero().squeeze(1)
        if rows.numel() == 0:
            return None
        mask, kv_mask = self.attention_mask.clone(), self.kv_mask.clone()
        mask[rows, self.guessed[rows]] = 0
        kv_mask[rows, -1] = 0  # a hole in the row's cache: masked, and positions skip it
        none = torch.full_like(self.guessed, -1)
        logits, values = self.before if self.before is not None else (self.logits, self.values)
        return _Slots(self.input_ids, mask, self.kv, kv_mask, logits, values, none)


class _Match(NamedTuple):
    """Rows of a batch that a view of the slots already holds (``same``) or holds minus one token (``next``)."""

    view: _Slots
    same: torch.Tensor  # (B,) bool
    next: torch.Tensor  # (B,) bool
    slot: torch.Tensor  # (B,) the matching slot of each row


def _views(slots: _Slots) -> Iterator[_Slots]:
    """The slots, then (computed only when asked for) the slots before advance()'s guess."""
    yield slots
    before = slots.without_guess()
    if before is not None:
        yield before


@dataclass
class RolloutKVCache:
    """KV cache rows for the envs of a vector env; see the module docstring.

    Attributes:
        stats: How many rows were ``"same"``, ``"next"`` or ``"fresh"`` since the last :meth:`clear`.
    """

    stats: dict[str, int] = field(default_factory=lambda: {"same": 0, "next": 0, "fresh": 0})
    _slots: _Slots | None = None

    def clear(self) -> None:
        """Forget everything (call it whenever the weights change)."""
        self._slots = None
        self.stats = {"same": 0, "next": 0, "fresh": 0}

    @property
    def num_slots(self) -> int:
        """The number of envs cached (0 when empty)."""
        return 0 if self._slots is None else self._slots.input_ids.shape[0]

    @torch.no_grad()
    def __call__(
        self, actor_critic: LMActorCritic, input_ids: torch.Tensor, attention_mask: torch.Tensor, commit: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``logits (B, V)`` and ``values (B,)`` at each row's last real token.

        Args:
            actor_critic: The model; the cache must be cleared when its weights change.
            input_ids: ``(B, S)`` observations (any dtype).
            attention_mask: ``(B, S)``.
            commit: Row ``i`` is env ``i``: update the cache to these observations. A batch whose
                size differs from the cached one replaces the cache. ``False``: match rows against
                any env and leave the cache as it is.
        """
        input_ids, attention_mask = input_ids.long(), attention_mask.long()
        slots = self._slots
        if slots is not None and slots.input_ids.shape[1] != input_ids.shape[1]:
            slots = self._slots = None  # another observation layout: start over
        matches, fresh = self._match_rows(input_ids, attention_mask, commit)
        if commit and len(matches) == 1 and bool(matches[0].same.all()):
            # The usual rollout step: every guess was right, so the guesses become the state.
            self._slots = replace(slots, guessed=torch.full_like(slots.guessed, -1), before=None)
            return slots.logits, slots.values
        logits, values, parts = _row_outputs(actor_critic, input_ids, attention_mask, matches, fresh, commit)
        if commit:
            kv, kv_mask = _assemble(parts, input_ids.shape[0])
            none = torch.full((input_ids.shape[0],), -1, device=input_ids.device)
            self._slots = _Slots(input_ids, attention_mask, kv, kv_mask, logits, values, none)
        return logits, values

    def _match_rows(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, commit: bool
    ) -> tuple[list[_Match], torch.Tensor]:
        """Match each row against the slots, then against the slots before advance()'s guess.

        Returns the matches (none when nothing is cached or a committed batch has another size)
        and ``fresh (B,)``, the rows that match nothing; updates :attr:`stats`.
        """
        matches: list[_Match] = []
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self._slots is not None and not (commit and input_ids.shape[0] != self.num_slots):
            for view in _views(self._slots):
                same, nxt, slot_of = _match(view, input_ids, attention_mask, pairwise=commit)
                same, nxt = same & ~done, nxt & ~done & ~same
                matches.append(_Match(view, same, nxt, slot_of))
                done |= same | nxt
                self.stats["same"] += int(same.sum())
                self.stats["next"] += int(nxt.sum())
                if bool(done.all()):
                    break
        self.stats["fresh"] += int((~done).sum())
        return matches, ~done

    @torch.no_grad()
    def advance(self, actor_critic: LMActorCritic, tokens: torch.Tensor) -> None:
        """Guess that each env appends ``tokens (N,)`` to its observation, and run them now.

        The policy calls this with the actions it just chose. A TextGen env appends exactly that
        token in the next free slot, so the next call finds each observation already computed
        ("same"), and so do SB3's value requests for terminal observations, which would otherwise
        cost one single-row forward pass each. The work is what the next step would do anyway; a
        wrong guess (another token, a reset) costs nothing extra, as the cache also keeps the state
        before the guess. Rows without a free slot are left as they are.
        """
        slots = self._slots
        if slots is None or tokens.shape[0] != self.num_slots:
            return
        slots = slots.without_guess() or slots  # at most one guess per row
        width = slots.attention_mask.shape[1]
        # The column after each row's last token; an all-padding row gets none (width) and no guess.
        free = last_real_index(slots.attention_mask) + 1  # (N,)
        rows = (free < width).nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        ids, mask = slots.input_ids.clone(), slots.attention_mask.clone()
        ids[rows, free[rows]] = tokens[rows].to(ids.device).long()
        mask[rows, free[rows]] = 1
        lg, vl, kv, kv_mask = _decode_one(actor_critic, slots, ids[rows], mask[rows], rows)
        if rows.numel() == self.num_slots:
            logits, values = lg, vl
        else:
            logits, values = slots.logits.clone(), slots.values.clone()
            logits[rows], values[rows] = lg, vl
        parts = [(rows, kv, kv_mask)]
        rest = (free >= width).nonzero().squeeze(1)
        if rest.numel():  # their last column is then not a guess, but they have no guess either
            parts.append((rest, _select(slots.kv, rest), slots.kv_mask[rest]))
        kv, kv_mask = _assemble(parts, self.num_slots)
        guessed = torch.full_like(free, -1)
        guessed[rows] = free[rows]
        self._slots = _Slots(ids, mask, kv, kv_mask, logits, values, guessed, before=(slots.logits, slots.values))


def _row_outputs(
    actor_critic: LMActorCritic,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    matches: list[_Match],
    fresh: torch.Tensor,
    commit: bool,
) -> tuple[torch.Tensor, torch.Tensor, list[_Part]]:
    """Compute each row's outputs: whole for ``fresh`` rows, one token for "next", stored for "same".

    Returns ``logits (B, V)``, ``values (B,)`` and, with ``commit``, each row group's cache.
    """
    batch, device = input_ids.shape[0], input_ids.device
    logits = torch.empty(batch, actor_critic.logits_size, device=device)
    values = torch.empty(batch, device=device)
    parts: list[_Part] = []
    if bool(fresh.any()):
        rows = fresh.nonzero().squeeze(1)
        lg, vl, past, mask = last_token_outputs(actor_critic, input_ids[rows], attention_mask[rows], use_cache=commit)
        logits[rows], values[rows] = lg, vl
        if commit:
            parts.append((rows, _to_tensors(past), mask))
    for view, same, nxt, slot_of in matches:
        if bool(nxt.any()):
            rows = nxt.nonzero().squeeze(1)
            lg, vl, kv, mask = _decode_one(actor_critic, view, input_ids[rows], attention_mask[rows], slot_of[rows])
            logits[rows], values[rows] = lg, vl
            parts.append((rows, kv, mask))
        if bool(same.any()):
            rows = same.nonzero().squeeze(1)
            logits[rows], values[rows] = view.logits[slot_of[rows]], view.values[slot_of[rows]]
            parts.append((rows, _select(view.kv, slot_of[rows]), view.kv_mask[slot_of[rows]]))
    return logits, values, parts


def _decode_one(
    actor_critic: LMActorCritic,
    slots: _Slots,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    slot_rows: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, KV, torch.Tensor]:
    """Run the one token that each row has beyond its slot's observation, on the slot's cache."""
    kv, kv_mask = _select(slots.kv, slot_rows), slots.kv_mask.index_select(0, slot_rows)  # (B', ..., L), (B', L)
    new = (attention_mask - slots.attention_mask[slot_rows]).argmax(1, keepdim=True)  # (B', 1)
    token = input_ids.gather(1, new)  # (B', 1)
    mask = torch.cat([kv_mask, torch.ones_like(token)], dim=1)  # (B', L + 1)
    positions = positions_from_mask(mask, num_new=1)  # (B', 1): the count of real tokens before it
    out = actor_critic(token, mask, cache=_to_caches(kv), position_ids=positions, use_cache=True)
    return out.logits[:, -1], out.values[:, -1], _to_tensors(out.cache), mask


# ---------------------------------------------------------------------- helpers
def _match(
    slots: _Slots, input_ids: torch.Tensor, attention_mask: torch.Tensor, pairwise: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``same (B,)``, ``next (B,)`` and the matching slot of each row ``(B,)``."""
    if pairwise:
        old_ids, old_mask = slots.input_ids[:, None], slots.attention_mask[:, None]  # (B, 1, S)
        ids, mask = input_ids[:, None], attention_mask[:, None]
    else:
        old_ids, old_mask = slots.input_ids[None], slots.attention_mask[None]  # (1, N, S)
        ids, mask = input_ids[:, None], attention_mask[:, None]  # (B, 1, S)
    kept = ((ids == old_ids) | (old_mask == 0)).all(-1) & (mask >= old_mask).all(-1)  # (B, N')
    added = (mask - old_mask).sum(-1)  # (B, N')
    # The added token must come after every cached one, or it would not be the last position (an
    # all-padding cached row has its "last" column at the end, so it is recomputed instead).
    after = last_real_index(mask - old_mask) > last_real_index(old_mask)  # (B, N'), read where added == 1
    same_m = kept & (added == 0)
    next_m = kept & (added == 1) & after
    if pairwise:
        slot_of = torch.arange(input_ids.shape[0], device=input_ids.device)
        return same_m[:, 0], next_m[:, 0], slot_of
    slot_of = torch.where(same_m.any(1), same_m.float().argmax(1), next_m.float().argmax(1))
    return same_m.any(1), next_m.any(1) & ~same_m.any(1), slot_of


def _all_in_order(rows: torch.Tensor, batch: int) -> bool:
    """Whether ``rows`` is ``0, 1, ..., batch - 1``."""
    return rows.numel() == batch and bool((rows == torch.arange(batch, device=rows.device)).all())


def _select(kv: KV, rows: torch.Tensor) -> KV:
    if _all_in_order(rows, kv[0][0][0].shape[0]):
        return kv  # every row in order: no copy (this is the common case of a rollout step)
    return [[(k[rows], v[rows]) for k, v in layers] for layers in kv]


def _assemble(parts: list[_Part], batch: int) -> tuple[KV, torch.Tensor]:
    """Stack row groups of different cache lengths into one right-aligned cache of ``batch`` rows."""
    if len(parts) == 1 and _all_in_order(parts[0][0], batch):
        _, kv, mask = parts[0]
        return _compact(kv, mask)
    length = max(mask.shape[1] for _, _, mask in parts)
    first_kv, first_mask = parts[0][1], parts[0][2]
    out_mask = first_mask.new_zeros((batch, length))
    out_kv: KV = [
        [(_empty_like(k, batch, length), _empty_like(v, batch, length)) for k, v in layers] for layers in first_kv
    ]
    for rows, kv, mask in parts:
        width = mask.shape[1]
        out_mask[rows, length - width :] = mask
        for out_layers, layers in zip(out_kv, kv):
            for (out_k, out_v), (k, v) in zip(out_layers, layers):
                out_k[rows, :, length - width :] = k
                out_v[rows, :, length - width :] = v
    return _compact(out_kv, out_mask)


def _empty_like(tensor: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    return tensor.new_zeros((batch, tensor.shape[1], length, tensor.shape[3]))


def _compact(kv: KV, mask: torch.Tensor) -> tuple[KV, torch.Tensor]:
    """Drop the leading columns that no row uses, so the cache does not grow across episodes."""
    used = mask.any(0).nonzero()
    start = int(used[0]) if used.numel() else mask.shape[1]
    if start == 0:
        return kv, mask
    return [[(k[:, :, start:], v[:, :, start:]) for k, v in layers] for layers in kv], mask[:, start:]


def _to_tensors(past: Any) -> KV:
    caches = past if isinstance(past, tuple) else (past,)
    out: KV = []
    for cache in caches:
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            raise NotImplementedError(
                f"The rollout KV cache supports full-attention DynamicCache layers, got {[type(layer).__name__ for layer in cache.layers]}; "
                "pass use_kv_cache=False."
            )
        out.append([(layer.keys, layer.values) for layer in cache.layers])
    return out


def _to_caches(kv: KV) -> Any:
    caches = tuple(_dynamic_cache(layers) for layers in kv)
    return caches if len(caches) > 1 else caches[0]


def _dynamic_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    # DynamicCache(ddp_cache_data=...) would copy every tensor (a concatenation with an empty one);
    # the model's own update() then makes the one copy per step that generate() makes too.
    cache = DynamicCache()
    for keys, values in layers:
        layer = DynamicLayer()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache
