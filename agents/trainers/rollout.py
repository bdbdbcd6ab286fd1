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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from agents.modeling.tokens import first_real_column, positions_from_mask, sample_tokens
from agents.trainers.envs import EnvLayout, env_info_row
from agents.trainers.scoring import critic_values, repeat_cache, shared_prompt_groups

__all__ = ["ActorCritic", "RolloutBatch", "collect_rollout"]


class ActorCritic(Protocol):
    """What a rollout needs from a model (``agents.modeling.lm.LMActorCritic`` provides it)."""

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: Any = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> Any:  # an object with .logits (B, L, V), .values (B, L) or None, .cache
        ...


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
) -> RolloutBatch | None:
    """Play one episode in every sub-env of ``envs``, all at once, and return them as a batch.

    Every sub-env is reset (with ``seeds[i]`` when given: equal seeds give equal prompts, which is
    how GRPO forms groups). Then, until every episode has ended, the model takes one KV-cached
    forward over the newest token of each env, samples the next tokens, and ``envs.step`` scores
    them. Envs whose episode ended get a filler token (never EOS, so the episode the vector env
    auto-resets into cannot end within this rollout); their steps are not recorded, and the next
    rollout's reset discards them.

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
        group_size: When consecutive groups of this many envs drew the same prompt (GRPO), the
            prompt is run once per group and its KV cache repeated for the group.
        reset_options: ``options`` for the vector env's reset (passed to every sub-env).

    Returns:
        A :class:`RolloutBatch` of ``envs.num_envs`` episodes, or None when aborted.
    """
    device = torch.device(device)
    obs, reset_info = envs.reset(seed=seeds, options=reset_options)
    num_envs = envs.num_envs
    p = spec.max_prompt_tokens
    ids_np, mask_np = np.asarray(obs["input_ids"])[:, :p], np.asarray(obs["attention_mask"])[:, :p]
    start = first_real_column(torch.from_numpy(mask_np))  # drop columns that are padding in every row
    prompt_ids = torch.as_tensor(ids_np[:, start:], dtype=torch.long, device=device)  # (B, Lp)
    prompt_mask = torch.as_tensor(mask_np[:, start:], dtype=torch.long, device=device)  # (B, Lp)
    prompt_lengths = prompt_mask.sum(1)  # (B,)
    indices = [env_info_row(reset_info, i).get("index") for i in range(num_envs)]

    t_max = spec.max_new_tokens
    tokens = torch.full((num_envs, t_max), spec.pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(num_envs, t_max, device=device)
    values = torch.zeros(num_envs, t_max, device=device)
    rewards = torch.zeros(num_envs, t_max)
    alive = np.ones(num_envs, dtype=bool)
    lengths = np.zeros(num_envs, dtype=np.int64)
    final_infos: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    has_values = False

    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    mask = prompt_mask
    step_ids, step_positions, cache = prompt_ids, positions_from_mask(prompt_mask), None
    share = shared_prompt_groups(prompt_ids, prompt_mask, group_size)
    for t in range(t_max):
        rows = slice(None, None, group_size) if share and t == 0 else slice(None)  # one prompt per group
        with autocast:
            out = model(
                input_ids=step_ids[rows],
                attention_mask=mask[rows],
                cache=cache,
                position_ids=step_positions[rows],
                use_cache=True,
                logits_to_keep=1,
            )
        cache = out.cache
        out_logits, out_values = out.logits, critic_values(out)
        if share and t == 0:
            cache = repeat_cache(cache, group_size)
            out_logits = out_logits.repeat_interleave(group_size, 0)
            out_values = out_values.repeat_interleave(group_size, 0) if out_values is not None else None
        logits = out_logits[:, -1, : spec.vocab_limit].float() / temperature  # (B, V')
        action = sample_tokens(logits, deterministic, generator)  # (B,)
        alive_t = torch.as_tensor(alive, device=device)
        action = torch.where(alive_t, action, torch.full_like(action, spec.filler_token_id))
        tokens[:, t] = torch.where(alive_t, action, torch.full_like(action, spec.pad_token_id))
        logprobs[:, t] = torch.where(alive_t, logits.log_softmax(-1).gather(-1, action[:, None]).squeeze(-1), 0.0)
        if with_values and out_values is not None:
            has_values = True
            values[:, t] = torch.where(alive_t, out_values[:, -1].float(), 0.0)

        actions_np = action.cpu().numpy()
        new_obs, step_rewards, terminated, truncated, infos = envs.step(actions_np)
        dones = np.logical_or(terminated, truncated)
        for i in np.flatnonzero(alive):
            rewards[i, t] = float(step_rewards[i])
            lengths[i] += 1
            if dones[i]:
                source = infos.get("final_info", infos) if "final_info" in infos and infos["_final_info"][i] else infos
                final_infos[i] = env_info_row(source, i)
        newly_done = alive & dones
        if on_step is not None:
            step_locals = {
                "actions": actions_np,
                "new_obs": new_obs,
                "rewards": np.where(alive, step_rewards, 0.0),
                "dones": newly_done,
                "infos": [final_infos[i] if newly_done[i] else {} for i in range(num_envs)],
                "alive": alive.copy(),
            }
            if not on_step(step_locals):
                return None
        alive &= ~dones
        if not alive.any():
            break
        step_ids = action[:, None]  # (B, 1): the cache holds everything before it
        step_positions = (prompt_lengths + t)[:, None]  # (B, 1)
        mask = torch.cat([mask, torch.ones(num_envs, 1, dtype=torch.long, device=device)], dim=1)

    end = int(lengths.max())
    response_mask = (torch.arange(end)[None, :] < torch.as_tensor(lengths)[:, None]).long().to(device)  # (B, T)
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=tokens[:, :end],
        response_mask=response_mask,
        logprobs=logprobs[:, :end],
        rewards=rewards[:, :end].to(device),
        values=values[:, :end] if has_values else None,
        infos=final_infos,
        indices=indices,
    )
