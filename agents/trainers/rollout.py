"""Batched rollouts through a Gymnasium vector env of TextGen envs, decoded with a KV cache.

The environment owns the episode: :func:`collect_rollout` resets the vector env, feeds it one
token per env per step and reads back its rewards and episode ends. The policy never re-reads
the observation after the reset: it keeps the prompt and the reply so far in a KV cache shared by
the whole batch, so each step costs one forward over one new token per env (as ``generate`` does),
not a forward over the whole sequence (as stock SB3 does).

Layout of a :class:`RolloutBatch` (``B`` episodes, ``Lp`` prompt columns, ``T`` reply columns)::

    input_ids  = [ pad pad p p p p | r r r EOS pad pad ]      prompt left-padded, reply right-padded
    mask       = [  0   0  1 1 1 1 | 1 1 1  1   0   0  ]
    logprobs   =                   [ . . .  .   0   0  ]      log pi(r_t | s_t) from the rollout

which is the env's own observation layout with the all-padding columns of the prompt trimmed.

:func:`collect_rollout` reads as its steps: ``_reset`` (the prompts), then per token
``Decoder.next_outputs`` (one forward; :mod:`agents.trainers.decoding`), ``_Episodes.choose``
(sample and record the token), ``envs.step`` and ``_Episodes.record`` (the env's reward and
episode ends), and finally ``_Episodes.batch``. A planned rollout (``plan=``) takes each step's
token from the plan (``_Episodes.follow``) instead of decoding, and scores the played replies at
the end (``_score_played``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from agents.modeling.prepare import autocast
from agents.modeling.tokens import first_real_column, sample_tokens
from agents.trainers.decoding import Decoder
from agents.trainers.envs import EnvLayout, env_info_row
from agents.trainers.scoring import (
    ActorCritic,
    masked_log_softmax_gather,
    score_tokens,
)
from text_gym.envs import UnscoredReplyWarning

__all__ = ["ActorCritic", "RolloutBatch", "collect_rollout"]


@dataclass
class RolloutBatch:
    """``B`` finished episodes, padded to the longest reply ``T`` (tensors on the model's device)."""

    prompt_ids: torch.Tensor  # (B, Lp) left-padded
    prompt_mask: torch.Tensor  # (B, Lp)
    response_ids: torch.Tensor  # (B, T) right-padded
    response_mask: torch.Tensor  # (B, T) 1 for every token the agent chose, EOS included
    logprobs: torch.Tensor  # (B, T) log-probs of the chosen tokens at rollout time; 0 on padding
    rewards: torch.Tensor  # (B, T) the env's reward for each step; 0 on padding
    values: torch.Tensor | None = None  # (B, T) V(s_t) at rollout time, when the model has a critic
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # per-episode (B,) or per-token (B, T) data
    infos: list[dict[str, Any]] = field(default_factory=list)  # the env's final info per episode
    indices: list[int | None] = field(default_factory=list)  # the task sample of each episode
    group_size: int = 1  # consecutive episodes that share a prompt (GRPO's groups); 1: no groups
    seeds: list[int] = field(default_factory=list)  # the reset seed of each episode (equal within a group)

    @property
    def input_ids(self) -> torch.Tensor:
        """Prompt and reply, ``(B, Lp + T)``."""
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        """``(B, Lp + T)``: 1 on real prompt and reply tokens."""
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def returns(self) -> torch.Tensor:
        """Undiscounted return of each episode, ``(B,)``."""
        return self.rewards.sum(dim=1)

    @property
    def lengths(self) -> torch.Tensor:
        """Reply length of each episode, ``(B,)``."""
        return self.response_mask.sum(dim=1)

    def __len__(self) -> int:
        return self.prompt_ids.shape[0]

    def select(self, rows: torch.Tensor | list[int]) -> RolloutBatch:
        """Return the episodes ``rows`` (a minibatch), trimming columns that became all padding."""
        rows_t = torch.as_tensor(rows, device=self.prompt_ids.device, dtype=torch.long)
        prompt_mask = self.prompt_mask[rows_t]
        response_mask = self.response_mask[rows_t]
        start = first_real_column(prompt_mask)
        end = int(response_mask.sum(1).max()) if len(rows_t) else 0

        def pick(x: torch.Tensor | None, lo: int | None = None, hi: int | None = None) -> torch.Tensor | None:
            return None if x is None else x[rows_t][:, lo:hi]

        rows_list = rows_t.tolist()
        return RolloutBatch(
            prompt_ids=pick(self.prompt_ids, start),
            prompt_mask=prompt_mask[:, start:],
            response_ids=pick(self.response_ids, 0, end),
            response_mask=response_mask[:, :end],
            logprobs=pick(self.logprobs, 0, end),
            rewards=pick(self.rewards, 0, end),
            values=pick(self.values, 0, end),
            extra={k: v[rows_t] if v.dim() == 1 else v[rows_t][:, :end] for k, v in self.extra.items()},
            infos=[self.infos[i] for i in rows_list] if self.infos else [],
            indices=[self.indices[i] for i in rows_list] if self.indices else [],
            group_size=self.group_size,
            seeds=[self.seeds[i] for i in rows_list] if self.seeds else [],
        )


@torch.no_grad()
def collect_rollout(
    model: ActorCritic,
    envs: VectorEnv,
    spec: EnvLayout,
    *,
    seeds: list[int] | None = None,
    temperature: float = 1.0,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    on_step: Callable[[dict[str, Any]], bool] | None = None,
    with_values: bool = False,
    group_size: int = 1,
    reset_options: dict[str, Any] | None = None,
    plan: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> RolloutBatch | None:
    """Play one episode in every sub-env of ``envs``, all at once, and return them as a batch.

    Every sub-env is reset (with ``seeds[i]`` when given: equal seeds give equal prompts, which is
    how GRPO forms groups). Then, until every episode has ended, the model takes one KV-cached
    forward over the newest token of each env, samples the next tokens, and ``envs.step`` scores
    them. Envs whose episode ended get a filler token (never EOS, so the episode the vector env
    auto-resets into cannot end within this rollout); their steps are not recorded, and the next
    rollout's reset discards them, without the env's :class:`~text_gym.envs.UnscoredReplyWarning`.

    Args:
        model: The actor-critic (called as in :class:`ActorCritic`).
        envs: A vector env of TextGen envs (NEXT_STEP or SAME_STEP autoreset).
        spec: :func:`env_layout` of ``envs``.
        seeds: Per-env reset seeds, or None.
        temperature: Sampling temperature; the stored log-probs are those of the tempered policy.
        deterministic: Pick the most likely token instead of sampling (for evaluation).
        generator: Torch RNG for sampling (on ``device``), for reproducible rollouts.
        device: Where the model lives.
        autocast_dtype: ``torch.bfloat16`` to run the forwards under CUDA autocast, else None.
        on_step: Called after each ``envs.step`` with the step's locals (SB3's callback
            ``locals``); returning False aborts the rollout, which then returns None.
        with_values: Record the critic's ``V(s_t)`` (PPO needs them, GRPO does not).
        group_size: Consecutive envs that drew the same prompt (GRPO's groups): the prompt is run
            once per group and its KV cache repeated for the group. The batch records it.
        reset_options: ``options`` for the vector env's reset (passed to every sub-env).
        plan: Called with the prompts ``(B, Lp)`` and their mask after the reset, returns the
            replies to play, ``(B, max_new_tokens)`` token ids with -1 after each reply's end
            (:func:`~agents.trainers.candidates.beam_candidates`): each env then gets its planned
            tokens, nothing is sampled or decoded step by step, and the log-probabilities (and
            values) of the played replies come from one forward pass over them, the update's
            :func:`~agents.trainers.scoring.score_tokens`.

    Returns:
        A :class:`RolloutBatch` of ``envs.num_envs`` episodes, or None when aborted.
    """
    device = torch.device(device)
    prompt_ids, prompt_mask, indices = _reset(envs, spec, seeds, reset_options, device)
    planned = None if plan is None else _checked_plan(plan(prompt_ids, prompt_mask), spec, envs.num_envs)
    decoder = None
    if planned is None:  # a plan's log-probs come from one forward over the played replies instead
        decoder = Decoder(model, prompt_ids, prompt_mask, group_size, autocast_dtype, spec.max_new_tokens)
    episodes = _Episodes.start(envs.num_envs, spec, device)
    for t in range(spec.max_new_tokens):
        if planned is not None:
            action = episodes.follow(t, planned[:, t])
        else:
            assert decoder is not None
            logits, values = decoder.next_outputs()  # (B, V), (B,) or None
            logits = logits[:, : spec.vocab_limit].float() / temperature  # (B, V')
            action = episodes.choose(t, logits, values if with_values else None, deterministic, generator)
        actions_np = action.cpu().numpy()
        new_obs, rewards, terminated, truncated, infos = envs.step(actions_np)
        step_locals = episodes.record(t, np.logical_or(terminated, truncated), rewards, infos)
        if on_step is not None and not on_step({"actions": actions_np, "new_obs": new_obs, **step_locals}):
            return None
        if not episodes.alive.any():
            break
        if decoder is not None:
            decoder.feed(action, t)
    batch = episodes.batch(prompt_ids, prompt_mask, indices)
    batch.group_size, batch.seeds = group_size, list(seeds or [])
    if decoder is None:
        _score_played(model, batch, spec, temperature, with_values, autocast_dtype)
    return batch


def _score_played(
    model: ActorCritic,
    batch: RolloutBatch,
    spec: EnvLayout,
    temperature: float,
    with_values: bool,
    autocast_dtype: torch.dtype | None,
) -> None:
    """Record the log-probs (and values) of a planned rollout's replies: one packed forward, as the update's."""
    with autocast(batch.prompt_ids.device, autocast_dtype):
        logprobs, values, _ = score_tokens(
            model, batch, temperature=temperature, vocab_limit=spec.vocab_limit, with_values=with_values,
            group_size=batch.group_size,
        )  # fmt: skip
    mask = batch.response_mask.bool()
    batch.logprobs = torch.where(mask, logprobs.float(), 0.0)
    if with_values and values is not None:
        batch.values = torch.where(mask, values.float(), 0.0)


def _checked_plan(planned: torch.Tensor, spec: EnvLayout, num_envs: int) -> torch.Tensor:
    """``planned`` if it is a ``(num_envs, max_new_tokens)`` plan of real token ids (or -1 after a reply's end)."""
    shape = (num_envs, spec.max_new_tokens)
    if tuple(planned.shape) != shape:
        raise ValueError(f"plan: expected replies of shape {shape}, got {tuple(planned.shape)}.")
    if ((planned < -1) | (planned >= spec.vocab_limit)).any():
        raise ValueError(f"plan: expected token ids in [0, {spec.vocab_limit}) or -1 after a reply's end.")
    return planned


def _reset(
    envs: VectorEnv,
    spec: EnvLayout,
    seeds: list[int] | None,
    options: dict[str, Any] | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, list[int | None]]:
    """Reset every sub-env; return the prompts ``(B, Lp)``, their mask and the task index of each."""
    with warnings.catch_warnings():
        # The previous rollout left envs in episodes that the vector env auto-reset into and fed
        # only filler tokens; abandoning them unscored is by design, not the mistake (a too short
        # TimeLimit) that the env warns about. Seeded resets (the trainers') do not warn; unseeded
        # ones would, and this filter silences them for envs stepped in this process
        # (SyncVectorEnv). AsyncVectorEnv resets in its workers, out of the filter's reach: there,
        # with seeds=None, each sub-env may warn once.
        warnings.simplefilter("ignore", UnscoredReplyWarning)
        obs, reset_info = envs.reset(seed=seeds, options=options)
    p = spec.max_prompt_tokens
    ids_np, mask_np = np.asarray(obs["input_ids"])[:, :p], np.asarray(obs["attention_mask"])[:, :p]
    start = first_real_column(torch.from_numpy(mask_np))  # drop columns that are padding in every row
    prompt_ids = torch.as_tensor(ids_np[:, start:], dtype=torch.long, device=device)  # (B, Lp)
    prompt_mask = torch.as_tensor(mask_np[:, start:], dtype=torch.long, device=device)  # (B, Lp)
    indices = [env_info_row(reset_info, i).get("index") for i in range(envs.num_envs)]
    return prompt_ids, prompt_mask, indices


@dataclass
class _Episodes:
    """What a rollout records for its ``B`` episodes of up to ``T`` steps while they play."""

    tokens: torch.Tensor  # (B, T) the chosen tokens; padding after the episode's end
    logprobs: torch.Tensor  # (B, T)
    values: torch.Tensor  # (B, T)
    rewards: torch.Tensor  # (B, T) on the CPU, where the env's rewards arrive
    alive: np.ndarray  # (B,) whether the episode is still running
    lengths: np.ndarray  # (B,)
    final_infos: list[dict[str, Any]]
    spec: EnvLayout
    has_values: bool = False

    @classmethod
    def start(cls, num_envs: int, spec: EnvLayout, device: torch.device) -> _Episodes:
        t_max = spec.max_new_tokens
        return cls(
            tokens=torch.full((num_envs, t_max), spec.pad_token_id, dtype=torch.long, device=device),
            logprobs=torch.zeros(num_envs, t_max, device=device),
            values=torch.zeros(num_envs, t_max, device=device),
            rewards=torch.zeros(num_envs, t_max),
            alive=np.ones(num_envs, dtype=bool),
            lengths=np.zeros(num_envs, dtype=np.int64),
            final_infos=[{} for _ in range(num_envs)],
            spec=spec,
        )

    def choose(
        self,
        t: int,
        logits: torch.Tensor,
        values: torch.Tensor | None,
        deterministic: bool,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Pick step ``t``'s token of every env from tempered ``logits (B, V')`` and record it.

        Envs whose episode ended get a filler token (never end-of-sequence), which is not recorded.
        """
        action = self._mark(t, sample_tokens(logits, deterministic, generator))  # (B,)
        alive = torch.as_tensor(self.alive, device=logits.device)
        # The same formula as the update's (scoring.masked_log_softmax_gather), so the first
        # epoch's ratios are exactly 1 when the forwards agree; logits are already tempered and cut.
        chosen = masked_log_softmax_gather(logits, action, 1.0, logits.shape[-1])  # (B,)
        self.logprobs[:, t] = torch.where(alive, chosen, 0.0)
        if values is not None:
            self.has_values = True
            self.values[:, t] = torch.where(alive, values.float(), 0.0)
        return action

    def follow(self, t: int, planned: torch.Tensor) -> torch.Tensor:
        """Record step ``t`` of a plan, ``planned (B,)`` (-1 where a reply has ended), and return it as the action."""
        unplanned = torch.as_tensor(self.alive, device=planned.device) & (planned < 0)  # (B,)
        if bool(unplanned.any()):
            rows = torch.nonzero(unplanned).flatten().tolist()
            raise RuntimeError(
                f"expected a planned token for every running episode at step {t}, got none for rows {rows}: a "
                f"planned reply must end with the env's end-of-sequence token {self.spec.eos_token_id} or fill the budget."
            )
        return self._mark(t, planned.clamp_min(0))

    def _mark(self, t: int, action: torch.Tensor) -> torch.Tensor:
        """Give ended episodes the filler token, record step ``t``'s tokens of the running ones; return the actions."""
        alive = torch.as_tensor(self.alive, device=action.device)
        action = torch.where(alive, action, torch.full_like(action, self.spec.filler_token_id))
        self.tokens[:, t] = torch.where(alive, action, torch.full_like(action, self.spec.pad_token_id))
        return action

    def record(self, t: int, dones: np.ndarray, rewards: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        """Record the env's answer to step ``t`` for the running episodes, and end those that ended.

        Returns the step as SB3 callbacks see it (``rewards``, ``dones``, ``infos``, and ``alive``:
        which episodes were running), with 0, False and ``{}`` for the envs fed filler.
        """
        alive = self.alive.copy()
        for i in np.flatnonzero(alive):
            self.rewards[i, t] = float(rewards[i])
            self.lengths[i] += 1
            if dones[i]:
                # SAME_STEP autoreset puts the ended episode's info under "final_info"; NEXT_STEP returns it as is.
                final = "final_info" in infos and infos["_final_info"][i]
                self.final_infos[i] = env_info_row(infos["final_info"] if final else infos, i)
        ended = alive & dones
        self.alive &= ~dones
        return {
            "rewards": np.where(alive, rewards, 0.0),
            "dones": ended,
            "infos": [self.final_infos[i] if ended[i] else {} for i in range(len(alive))],
            "alive": alive,
        }

    def batch(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, indices: list[int | None]) -> RolloutBatch:
        """The finished episodes, cut to the longest reply."""
        device, end = prompt_ids.device, int(self.lengths.max())
        response_mask = (
            (torch.arange(end)[None, :] < torch.as_tensor(self.lengths)[:, None]).long().to(device)
        )  # (B, T)
        return RolloutBatch(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=self.tokens[:, :end],
            response_mask=response_mask,
            logprobs=self.logprobs[:, :end],
            rewards=self.rewards[:, :end].to(device),
            values=self.values[:, :end] if self.has_values else None,
            infos=self.final_infos,
            indices=indices,
        )
