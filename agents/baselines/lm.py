"""Language-model agents: sampled, greedy and beam-searched replies, one token per ``env.step``.

The sampling agents reuse a KV cache across steps (:class:`~agents.modeling.kv_cache.RolloutKVCache`),
so each step costs about one ``generate`` step.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from agents.baselines.base import Agent, Observation
from agents.modeling.kv_cache import RolloutKVCache
from agents.modeling.lm import LMActorCritic
from agents.modeling.prefix import left_align
from agents.modeling.tokens import last_real_index, sample_tokens, top_k_top_p
from text_gym.errors import check_positive_int


class SamplingLMAgent(Agent):
    """Sample the next token from a language model: temperature, then top-k, then top-p.

    Args:
        model: A preset name, folder, ``PreTrainedModel`` or :class:`~agents.modeling.lm.LMActorCritic`.
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
        if not deterministic:
            logits = top_k_top_p(logits / self.temperature, self.top_k, self.top_p)
        return sample_tokens(logits, deterministic, self.generator).cpu().numpy()


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
        return sample_tokens(self.next_token_logits(observations, action_masks), deterministic=True).cpu().numpy()


class BeamSearchLMAgent(Agent):
    """Plan each reply with beam search (``model.generate``), then emit it one token per step.

    At the first step of an episode (or whenever the observation leaves the plan) the agent runs
    beam search from the observation's tokens, for as many new tokens as the observation has free
    slots after its last real token (the env's remaining budget), and then follows the plan.

    Args:
        model: A preset name, folder, ``PreTrainedModel`` or :class:`~agents.modeling.lm.LMActorCritic`.
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
        check_positive_int("num_beams", num_beams)
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
        last = last_real_index(torch.as_tensor(mask)).numpy()  # (B,)
        budget = int(max(1, (mask.shape[1] - 1 - last).min()))
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
