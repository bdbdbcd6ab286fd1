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
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

__all__ = [
    "ActorCritic",
    "EnvSpec",
    "RolloutBatch",
    "collect_rollout",
    "env_attributes",
    "make_vec_env",
    "masked_log_softmax_gather",
    "position_ids_from_mask",
    "score_tokens",
    "shared_prompt_groups",
]


class ActorCritic(Protocol):
    """What a rollout needs from a model (``agents.lm.LMActorCritic`` provides it)."""

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
class EnvSpec:
    """The facts about the env that decoding needs, read once from the vector env."""

    eos_token_id: int
    pad_token_id: int
    max_new_tokens: int
    max_prompt_tokens: int
    vocab_limit: int  # ids >= this are not real tokens; their logits are dropped
    num_actions: int

    @property
    def filler_token_id(self) -> int:
        """A token that is never end-of-sequence, fed to envs whose episode already ended."""
        return 0 if self.eos_token_id != 0 else 1


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
        start = int(prompt_mask.any(0).long().argmax())  # first column holding a real token
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


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: 0 at each row's first real token. ``(B, L) -> (B, L)``."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def shared_prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, group_size: int) -> bool:
    """True when consecutive groups of ``group_size`` rows hold the same prompt (GRPO's layout)."""
    b = prompt_ids.shape[0]
    if group_size <= 1 or b % group_size:
        return False
    ids = prompt_ids.view(b // group_size, group_size, -1)
    mask = prompt_mask.view(b // group_size, group_size, -1)
    return bool((ids == ids[:, :1]).all() and (mask == mask[:, :1]).all())


def _values(out: Any) -> torch.Tensor | None:
    # A transformers ModelOutput is a dict, so its .values is a method, not a critic's values.
    values = getattr(out, "values", None)
    return values if isinstance(values, torch.Tensor) else None


def repeat_cache(cache: Any, repeats: int) -> Any:
    """Repeat every row of a KV cache ``repeats`` times (differentiably); handles (actor, critic) pairs."""
    if isinstance(cache, tuple):
        return tuple(repeat_cache(c, repeats) for c in cache)
    cache.batch_repeat_interleave(repeats)
    return cache


def masked_log_softmax_gather(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, vocab_limit: int
) -> torch.Tensor:
    """Log-probs of ``tokens`` under ``softmax(logits / temperature)`` over the real vocabulary.

    Args:
        logits: ``(..., V)`` raw logits (any dtype; the math runs in float32).
        tokens: ``(...)`` token ids, all below ``vocab_limit``.
        temperature: Sampling temperature (the same at rollout and update time, so ratios are exact).
        vocab_limit: Ids at or above it are not real tokens and take no probability.

    Returns:
        ``(...)`` float32 log-probs.
    """
    logits = logits[..., :vocab_limit].float() / temperature
    # logsumexp + gather instead of log_softmax: one fewer (..., V) tensor kept for backward.
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def env_attributes(envs: VectorEnv) -> EnvSpec:
    """Read the token facts of a vector env of TextGen envs (the first sub-env speaks for all)."""
    get = envs.get_attr if hasattr(envs, "get_attr") else None
    if get is None:
        raise TypeError(f"expected a gymnasium.vector.VectorEnv of TextGen envs, got {type(envs).__name__}.")
    try:
        values = {
            name: int(get(name)[0]) for name in ("eos_token_id", "pad_token_id", "max_new_tokens", "max_prompt_tokens")
        }
        # action_masks() marks the real tokens, a prefix of the ids (get_attr would call a tokenizer).
        vocab_limit = int(np.asarray(envs.call("action_masks")[0]).sum())
    except AttributeError as error:
        raise TypeError(
            f"expected a vector env of text_gym TextGen envs (with eos_token_id, max_new_tokens, action_masks...), "
            f"got sub-envs without them: {error}"
        ) from error
    n = int(envs.single_action_space.n)
    return EnvSpec(vocab_limit=vocab_limit, num_actions=n, **values)


def make_vec_env(
    env: str | gym.Env | VectorEnv | Callable[[], gym.Env],
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vectorization_mode: str = "sync",
) -> VectorEnv:
    """Turn an env id, a TextGen env, an env factory or a vector env into a Gymnasium vector env.

    Args:
        env: A registered id (``"TextGen-v0"``), an env instance (copied ``n_envs`` times: rebuilt
            from its spec when it came from ``gym.make``, else deep-copied), a zero-argument factory,
            or a ``gymnasium.vector.VectorEnv`` (used as is; ``n_envs`` is then ignored).
        n_envs: How many sub-envs, i.e. how many episodes one rollout plays.
        seed: Unused here (rollouts reset with their own seeds); kept for SB3's signature.
        env_kwargs: Keyword arguments for ``gym.make`` when ``env`` is an id.
        vectorization_mode: ``"sync"`` (default: the LM dominates the cost) or ``"async"``.
    """
    del seed
    if isinstance(env, VectorEnv):
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode == AutoresetMode.DISABLED:
            raise ValueError(
                f"expected a vector env with autoreset_mode NEXT_STEP or SAME_STEP, got {mode}: rollouts step "
                "envs whose episode has ended with a filler token and discard them."
            )
        return env
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}.")
    if isinstance(env, str):
        return gym.make_vec(env, num_envs=n_envs, vectorization_mode=vectorization_mode, **(env_kwargs or {}))
    if isinstance(env, gym.Env):
        if env.spec is not None and env.spec.entry_point is not None:
            spec = env.spec
            fns = [lambda spec=spec: gym.make(spec) for _ in range(n_envs)]
        else:
            fns = [lambda: env] + [lambda: copy.deepcopy(env) for _ in range(n_envs - 1)]
        return SyncVectorEnv(fns) if vectorization_mode == "sync" else gym.vector.AsyncVectorEnv(fns)
    if callable(env):
        fns = [env] * n_envs
        return SyncVectorEnv(fns) if vectorization_mode == "sync" else gym.vector.AsyncVectorEnv(fns)
    raise TypeError(
        f"env: expected an env id, a gymnasium Env, a VectorEnv or an env factory, got {type(env).__name__}."
    )


def _env_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """The info of sub-env ``i`` out of a vector env's dict-of-arrays info."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        present = infos.get("_" + key)
        if present is not None and not present[i]:
            continue
        out[key] = _env_info(value, i) if isinstance(value, dict) else value[i]
        if isinstance(out[key], np.generic):
            out[key] = out[key].item()
    return out


@torch.no_grad()
def collect_rollout(
    model: ActorCritic,
    envs: VectorEnv,
    spec: EnvSpec,
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
        spec: :func:`env_attributes` of ``envs``.
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
    start = int(mask_np.any(0).argmax())  # drop columns that are padding in every row
    prompt_ids = torch.as_tensor(ids_np[:, start:], dtype=torch.long, device=device)  # (B, Lp)
    prompt_mask = torch.as_tensor(mask_np[:, start:], dtype=torch.long, device=device)  # (B, Lp)
    prompt_lengths = prompt_mask.sum(1)  # (B,)
    indices = [_env_info(reset_info, i).get("index") for i in range(num_envs)]

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
    step_ids, step_positions, cache = prompt_ids, position_ids_from_mask(prompt_mask), None
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
        out_logits, out_values = out.logits, _values(out)
        if share and t == 0:
            cache = repeat_cache(cache, group_size)
            out_logits = out_logits.repeat_interleave(group_size, 0)
            out_values = out_values.repeat_interleave(group_size, 0) if out_values is not None else None
        logits = out_logits[:, -1, : spec.vocab_limit].float() / temperature  # (B, V')
        if deterministic:
            action = logits.argmax(-1)
        else:
            action = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)  # (B,)
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
                final_infos[i] = _env_info(source, i)
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


def score_tokens(
    model: ActorCritic,
    batch: RolloutBatch,
    *,
    temperature: float = 1.0,
    vocab_limit: int,
    with_values: bool = False,
    group_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Score every reply token of a batch with one forward pass over prompt + reply.

    The logits at column ``Lp - 1 + t`` predict reply token ``t``, and the value there is
    ``V(s_t)``, the same state the rollout valued before choosing that token.

    With ``group_size > 1`` and groups that share their prompt (GRPO), the prompt runs once per
    group with gradients, and its KV cache is repeated for the replies: the same outputs and
    gradients as running every row whole, for ``1 / group_size`` of the prompt's compute.

    Returns:
        ``(logprobs, values, entropy)``: ``(B, T)`` float32 log-probs of the reply tokens,
        ``(B, T)`` values or None, and ``(B, T)`` policy entropy (detached, for logging).
    """
    t = batch.response_ids.shape[1]
    logits, values = None, None
    if t > 1 and shared_prompt_groups(batch.prompt_ids, batch.prompt_mask, group_size):
        logits, values = _score_shared_prompts(model, batch, group_size)
    if logits is None:
        mask = batch.attention_mask  # (B, Lp + T)
        # Only the T + 1 last positions: the (L, V) projection of prompt positions is never needed.
        out = model(
            input_ids=batch.input_ids,
            attention_mask=mask,
            position_ids=position_ids_from_mask(mask),
            logits_to_keep=t + 1,
        )
        logits, values = out.logits[:, :-1], _values(out)  # (B, T, V): column t predicts reply token t
        values = values[:, :-1] if values is not None else None
    logprobs = masked_log_softmax_gather(logits, batch.response_ids, temperature, vocab_limit)  # (B, T)
    with torch.no_grad():
        tempered = logits[..., :vocab_limit].float() / temperature
        entropy = torch.logsumexp(tempered, -1) - (torch.softmax(tempered, -1) * tempered).sum(-1)  # (B, T)
    values = values.float() if with_values and values is not None else None
    return logprobs, values, entropy


def _score_shared_prompts(
    model: ActorCritic, batch: RolloutBatch, group_size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Prompt once per group (with its cache repeated), then all replies: ``(B, T, V)``, ``(B, T)``."""
    firsts = slice(None, None, group_size)
    prompt_mask = batch.prompt_mask[firsts]  # (n, Lp)
    head = model(
        input_ids=batch.prompt_ids[firsts],
        attention_mask=prompt_mask,
        position_ids=position_ids_from_mask(prompt_mask),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = getattr(head, "cache", None)
    if cache is None:  # e.g. gradient checkpointing turns the cache off: score rows whole instead
        return None, None
    cache = repeat_cache(cache, group_size)
    replies = batch.response_ids[:, :-1]  # (B, T - 1): each predicts the next reply token
    mask = batch.attention_mask[:, :-1]  # (B, Lp + T - 1)
    positions = batch.prompt_mask.sum(1, keepdim=True) + torch.arange(
        replies.shape[1], device=replies.device
    )  # (B, T - 1)
    tail = model(input_ids=replies, attention_mask=mask, cache=cache, position_ids=positions, use_cache=True)
    logits = torch.cat([head.logits.repeat_interleave(group_size, 0), tail.logits], dim=1)  # (B, T, V)
    values = _values(head)
    if values is not None:
        values = torch.cat([values.repeat_interleave(group_size, 0), _values(tail)], dim=1)  # (B, T)
    return logits, values
