"""Baseline agents: random tokens, greedy / sampled / beam-searched LM replies, copying the input, and the reference.

Every agent has the interface of an SB3 model, so evaluation code treats them alike:

- ``predict(observation, state=None, episode_start=None, deterministic=False)`` takes one
  observation or a batch (``input_ids`` of shape ``(S,)`` or ``(B, S)``) and returns
  ``(actions, state)``;
- ``act(observations, action_masks=None, deterministic=False)`` is the batched core: ``(B,)``
  token ids for ``(B, S)`` observations;
- ``reset(infos, rows=None)`` tells the agent that episodes started (with their reset infos);
  only the scripted agents (:class:`ReferenceAgent`, :class:`CopyPromptAgent`) need it.

They emit one token per ``env.step``, so the reward they get is the env's reward;
:func:`run_episodes` plays whole episodes. The LM agents reuse a KV cache across steps
(:class:`~agents.kv_cache.RolloutKVCache`), so each step costs about one ``generate`` step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.kv_cache import RolloutKVCache
from agents.lm import LMActorCritic
from agents.prefix import left_align
from text_gym.tasks import Sample

Observation = dict[str, np.ndarray]


class Agent:
    """The interface of the baseline agents (SB3-style ``predict``, batched ``act``).

    Attributes:
        deterministic: Whether the agent's replies are the same whatever the seed (evaluations
            then play it once).
    """

    deterministic: bool = False

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = False
    ) -> np.ndarray:
        """Return ``(B,)`` token ids for ``(B, S)`` observations."""
        raise NotImplementedError

    def reset(self, infos: dict[str, Any] | Sequence[dict[str, Any]], rows: Sequence[int] | None = None) -> None:
        """Note that episodes began: ``infos`` are the reset infos of env rows ``rows`` (default ``0..``)."""

    def predict(
        self,
        observation: Observation,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: one observation or a batch in, ``(actions, state)`` out."""
        batched = np.ndim(observation["input_ids"]) == 2
        obs = {k: np.atleast_2d(np.asarray(v)) for k, v in observation.items()}
        masks = None if action_masks is None else np.atleast_2d(action_masks)
        actions = self.act(obs, masks, deterministic)
        return (actions if batched else actions[0]), state


class RandomAgent(Agent):
    """Uniformly random tokens (among the ``action_masks`` ones when given).

    Args:
        action_space: The env's ``Discrete`` action space.
        seed: Seed of the agent's generator.
    """

    def __init__(self, action_space: gym.spaces.Discrete, seed: int | None = None) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(f"RandomAgent expects a Discrete action space, got {action_space}.")
        self.n = int(action_space.n)
        self.rng = np.random.default_rng(seed)

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = False
    ) -> np.ndarray:
        batch = len(observations["input_ids"])
        if action_masks is None:
            return self.rng.integers(self.n, size=batch)
        return np.array([self.rng.choice(np.flatnonzero(row)) for row in np.asarray(action_masks, bool)])


class SamplingLMAgent(Agent):
    """Sample the next token from a language model: temperature, then top-k, then top-p.

    Args:
        model: A preset name, folder, ``PreTrainedModel`` or :class:`~agents.lm.LMActorCritic`.
        temperature: Logits are divided by it.
        top_k: Keep the ``k`` most likely tokens (0: all).
        top_p: Keep the smallest set of tokens whose probability reaches ``p`` (1.0: all).
        seed: Seed of the sampling generator.
        device: Where to load a model given by name (``"auto"``: CUDA when available).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module = "smollm2-135m",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        device: str | torch.device | None = "auto",
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}.")
        if top_k < 0 or not 0 < top_p <= 1:
            raise ValueError(f"Expected top_k >= 0 and 0 < top_p <= 1, got top_k={top_k!r}, top_p={top_p!r}.")
        self.actor_critic = model if isinstance(model, LMActorCritic) else LMActorCritic(model, device=device)
        self.actor_critic.eval()
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.generator = torch.Generator(device=self.actor_critic.device)
        self.generator.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        self.kv_cache = RolloutKVCache()

    @torch.no_grad()
    def next_token_logits(self, observations: Observation, action_masks: np.ndarray | None = None) -> torch.Tensor:
        """Return the ``(B, V)`` float32 logits of the next token (masked ids at ``-inf``)."""
        device = self.actor_critic.device
        ids, mask = (
            torch.as_tensor(np.asarray(observations[k]), device=device) for k in ("input_ids", "attention_mask")
        )
        logits, _ = self.kv_cache(self.actor_critic, ids, mask)
        if action_masks is not None:
            allowed = torch.as_tensor(np.asarray(action_masks), device=device).bool().reshape(logits.shape)
            logits = logits.masked_fill(~allowed, float("-inf"))
        return logits

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = False
    ) -> np.ndarray:
        logits = self.next_token_logits(observations, action_masks)
        if deterministic:
            return logits.argmax(-1).cpu().numpy()
        logits = _top_k_top_p(logits / self.temperature, self.top_k, self.top_p)
        probs = torch.softmax(logits, dim=-1)  # (B, V)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1).cpu().numpy()


class GreedyLMAgent(SamplingLMAgent):
    """Always the most likely next token (``predict`` ignores ``deterministic``)."""

    deterministic = True

    def __init__(
        self, model: str | os.PathLike[str] | nn.Module = "smollm2-135m", device: str | torch.device | None = "auto"
    ) -> None:
        super().__init__(model, device=device)

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        return self.next_token_logits(observations, action_masks).argmax(-1).cpu().numpy()


class BeamSearchLMAgent(Agent):
    """Plan each reply with beam search (``model.generate``), then emit it one token per step.

    At the first step of an episode (or whenever the observation leaves the plan) the agent runs
    beam search from the observation's tokens, for as many new tokens as the observation has free
    slots after its last real token (the env's remaining budget), and then follows the plan.

    Args:
        model: A preset name, folder, ``PreTrainedModel`` or :class:`~agents.lm.LMActorCritic`.
        num_beams: Beam width.
        length_penalty: As in ``generate`` (> 0 favours longer replies).
        device: Where to load a model given by name.
    """

    deterministic = True

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module = "smollm2-135m",
        num_beams: int = 4,
        length_penalty: float = 1.0,
        device: str | torch.device | None = "auto",
    ) -> None:
        if num_beams < 1:
            raise ValueError(f"num_beams must be a positive int, got {num_beams!r}.")
        self.actor_critic = model if isinstance(model, LMActorCritic) else LMActorCritic(model, device=device)
        self.actor_critic.eval()
        self.num_beams, self.length_penalty = num_beams, length_penalty
        self._plans: dict[tuple[int, ...], list[int]] = {}  # tokens so far -> planned continuation

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        ids, mask = np.asarray(observations["input_ids"]).astype(np.int64), np.asarray(observations["attention_mask"])
        keys = [tuple(row[m > 0].tolist()) for row, m in zip(ids, mask)]
        missing = [i for i, key in enumerate(keys) if key not in self._plans]
        if missing and len(self._plans) > 4096:  # plans of truncated episodes are never popped
            self._plans.clear()
            missing = list(range(len(keys)))
        if missing:
            self._plan(ids[missing], mask[missing], [keys[i] for i in missing])
        actions = np.empty(len(keys), dtype=np.int64)
        continued = {}
        for i, key in enumerate(keys):  # two envs may share a key (the same prompt): no pop here
            token, *rest = self._plans[key]
            actions[i] = token
            if rest:
                continued[key + (token,)] = rest
        for key in keys:
            self._plans.pop(key, None)
        self._plans.update(continued)
        return actions

    @torch.no_grad()
    def _plan(self, ids: np.ndarray, mask: np.ndarray, keys: list[tuple[int, ...]]) -> None:
        lm = self.actor_critic.lm
        device = self.actor_critic.device
        # Free slots after the last real token: the env's remaining budget in the TextGen layout.
        last = (mask * np.arange(1, mask.shape[1] + 1)).max(1)
        budget = int(max(1, (mask.shape[1] - last).min()))
        input_ids, attention_mask = left_align(
            torch.as_tensor(ids, device=device), torch.as_tensor(mask, device=device)
        )
        eos = lm.generation_config.eos_token_id
        pad = lm.generation_config.pad_token_id
        out = lm.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            num_beams=self.num_beams,
            do_sample=False,
            max_new_tokens=budget,
            length_penalty=self.length_penalty,
            early_stopping=True,
            pad_token_id=pad if pad is not None else (eos if isinstance(eos, int) else 0),
        )
        eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        for key, row in zip(keys, out[:, input_ids.shape[1] :].tolist()):
            plan: list[int] = []
            for token in row:
                plan.append(token)
                if token in eos_ids:
                    break
            self._plans[key] = plan or [next(iter(eos_ids), 0)]


class ScriptedAgent(Agent):
    """Emit a text fixed by the episode's task sample, token by token, then end-of-sequence.

    The agent reads the sample through the env: ``reset(info)`` must be called with each
    episode's reset info (its ``"index"``), as :func:`agents.evaluation.play` does. Subclasses
    choose the text with :meth:`reply_for`.

    Args:
        env: The env (or a list of them, one per row of a batch); wrappers are fine.
    """

    deterministic = True

    def __init__(self, env: gym.Env | Sequence[gym.Env]) -> None:
        self.envs = list(env) if isinstance(env, (list, tuple)) else [env]
        self._replies: dict[int, list[int]] = {}

    def reply_for(self, sample: Sample) -> str:
        """The text to emit for ``sample``."""
        raise NotImplementedError

    def reset(self, infos: dict[str, Any] | Sequence[dict[str, Any]], rows: Sequence[int] | None = None) -> None:
        infos = [infos] if isinstance(infos, dict) else list(infos)
        for row, info in zip(rows if rows is not None else range(len(infos)), infos):
            if "index" not in info:
                raise ValueError(
                    f"{type(self).__name__}.reset expects the env's reset info with an 'index', got keys {sorted(info)}."
                )
            env = self.envs[row].unwrapped
            tokens = env.tokenizer(self.reply_for(env.task[int(info["index"])]), add_special_tokens=False)["input_ids"]
            self._replies[row] = list(tokens) + [int(env.eos_token_id)]

    def act(
        self, observations: Observation, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        actions = []
        for row in range(len(observations["input_ids"])):
            reply = self._replies.get(row)
            if reply is None:
                raise RuntimeError(
                    f"{type(self).__name__}: no episode started in row {row}; call reset(info) after env.reset()."
                )
            actions.append(reply.pop(0) if len(reply) > 1 else reply[0])  # eos stays for any extra step
        return np.asarray(actions, dtype=np.int64)


class ReferenceAgent(ScriptedAgent):
    """Emit the episode's first reference: a task's ceiling (at the env's reply budget)."""

    def reply_for(self, sample: Sample) -> str:
        return sample.references[0]


class CopyPromptAgent(ScriptedAgent):
    """Reply with the input unchanged: the sample's ``source`` when it names one, else its prompt.

    The trivial baseline of any transformation task: a trained agent that does not beat it has
    learned to copy. The prompt is copied as the user wrote it, without the chat template.
    """

    def reply_for(self, sample: Sample) -> str:
        return sample.source


def run_episodes(
    env: gym.Env,
    agent: Agent,
    n_episodes: int,
    seed: int | None = None,
    deterministic: bool = True,
    use_masks: bool = False,
) -> list[dict[str, Any]]:
    """Play ``n_episodes`` full episodes of a single env; return each one's return, length and final info.

    Args:
        env: A Gymnasium env (wrappers are fine).
        agent: Any :class:`Agent`.
        n_episodes: Episodes to play.
        seed: Seed of the first ``reset``.
        deterministic: Passed to ``predict``.
        use_masks: Pass ``env.unwrapped.action_masks()`` to the agent.
    """
    results = []
    for episode in range(n_episodes):
        obs, info = env.reset(seed=seed if episode == 0 else None)
        agent.reset(info)
        total, length, done = 0.0, 0, False
        while not done:
            masks = env.unwrapped.action_masks() if use_masks else None
            action, _ = agent.predict(obs, deterministic=deterministic, action_masks=masks)
            obs, reward, terminated, truncated, info = env.step(int(action))
            total, length, done = total + float(reward), length + 1, terminated or truncated
        results.append({"return": total, "length": length, **info})
    return results


def _top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set logits outside the top-k and the top-p nucleus to ``-inf``; ``logits`` is ``(B, V)``."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        # Drop a token when the tokens before it already reach top_p (the first one always stays).
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = drop_sorted.scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits
