"""Token-level text generation as a Gymnasium environment."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from transformers import PreTrainedTokenizerBase

from text_gym.envs.info import UnscoredReplyWarning, encode_references
from text_gym.envs.prompts import PromptEncoder
from text_gym.errors import check_bool, check_choice, check_positive_int
from text_gym.rewards import TOTAL_KEY, Reward, RewardFunction, make_reward
from text_gym.tasks import Task, check_split, get_sample, make_task
from text_gym.tokenization import load_tokenizer, logits_size

RewardShaping = Literal["sparse", "delta"]
REWARD_SHAPINGS: tuple[str, ...] = ("sparse", "delta")
REPEATED_CUTS = 3
"""Unscored replies cut at the same length, in a row, before :class:`UnscoredReplyWarning` (a time limit's signature)."""
MAX_SEQUENCE_TOKENS = 1 << 20
"""The most prompt + reply slots an env accepts: far beyond any model's context, far below what exhausts memory."""


class TextGenEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Generate a reply to a prompt one token at a time, scored against reference texts.

    ## Description
    Each episode draws one sample ``(prompt, references)`` from a task (by default ``"qa"``, the
    English question->answer pairs of chatterbot-corpus). The prompt is wrapped in the tokenizer's
    chat template and tokenized; the agent then writes the reply token by token, as a language
    model does under ``model.generate``. When the reply ends, it is decoded and scored.

    ## Action Space
    ``Discrete(n)``: the id of the next token, where ``n`` is the logits size of the language model
    that goes with the tokenizer (49,152 for SmolLM2-135M). Ids at or above ``len(tokenizer)`` are
    not real tokens: :meth:`action_masks` marks them ``False`` (for sb3-contrib's MaskablePPO), and
    if chosen anyway they decode to nothing.

    ## Observation Space
    ``Dict`` of two ``Box(shape=(P + T,), dtype=int64)`` arrays, ``P = max_prompt_tokens`` and
    ``T = max_new_tokens``:

    - ``"input_ids"``: slots ``[0, P)`` hold the prompt, left-padded with the pad id; slots
      ``[P, P + T)`` hold the reply so far, right-padded. Values lie in ``[0, n)``.
    - ``"attention_mask"``: 1 where ``input_ids`` holds a prompt or reply token, else 0.

    The real tokens are therefore contiguous, ending at the current token, which is what a causal
    LM expects (with positions taken from the cumulative sum of the mask). SB3 turns these arrays
    into floats; agents cast them back with ``.long()``.

    ## Rewards
    ``reward`` names the score of a finished reply: ``"bleu"`` (sentence BLEU in [0, 1]),
    ``"chrf"`` ([0, 1]), ``"coherence"`` (cosine similarity of prompt and reply embeddings, in
    [-1, 1]), ``"sari"`` (SARI of a rewrite against its source and references, in [0, 1]),
    ``"source-bleu"`` (BLEU against the source, in [0, 1]: give it a negative weight to penalise
    copying the input), a dict of weights such as ``{"bleu": 1.0, "source-bleu": -0.5}``, or any
    callable ``(prompts, outputs, references) -> scores`` (see :mod:`text_gym.rewards`).

    - ``reward_shaping="sparse"``: 0 on every step, the score on the last one.
    - ``reward_shaping="delta"``: each step pays the change of the score of the reply so far
      (the empty reply counts as 0), so the undiscounted return equals the final score. The
      reply is decoded and scored after every step, which costs more.

    ## Starting State
    A sample chosen by ``options={"index": i}`` in :meth:`reset`, or else drawn uniformly from the
    task with ``self.np_random`` (reproducible for a given ``seed``). The reply is empty.

    ## Episode End
    - Termination: the agent chose the end-of-sequence token (``tokenizer.eos_token_id``).
    - Truncation: the reply reached ``max_new_tokens`` tokens without end-of-sequence.

    The env scores the reply only when it ends one of these two ways. An outer time limit shorter
    than ``max_new_tokens``, such as ``gym.make(..., max_episode_steps=8)`` (a ``TimeLimit``
    wrapper), truncates the episode before that: under ``reward_shaping="sparse"`` the reward of
    that reply is lost, silently for the wrapper (its last ``info["scored"]`` is ``False``). Leave
    ``max_episode_steps`` unset, or at least ``max_new_tokens``. Gymnasium 1.x keeps the limit in
    the wrapper, out of the env's sight, so the env cannot refuse it up front. Instead, when
    unseeded ``reset`` calls (what ``TimeLimit`` passes on and what vector envs and RL libraries
    call to autoreset) cut short unscored replies at the same length three times in a row, the
    env warns once (:class:`~text_gym.envs.UnscoredReplyWarning`); a seeded ``reset`` counts as a
    deliberate restart and never warns. :func:`text_gym.testing.check_text_env`, given the wrapped env,
    fails on such a limit. Under ``"delta"`` nothing is lost: the rewards paid so far sum to the
    score of the reply so far.

    ## Info
    ``reset`` and every ``step`` return the same keys, with values of fixed shape, so replay
    buffers of any RL library can store them (see :mod:`text_gym.envs.info`):

    - ``"index"`` (``np.int64``): the sample index; ``"prompt"`` (``str``): the task prompt, not
      chat-templated.
    - ``"references"`` (``str``): the references as a JSON list; decode them with
      :func:`~text_gym.envs.references_from_info`.
    - ``"text"`` (``str``): the scored reply, as :meth:`reply_text` decodes it, when ``"scored"``
      (the last step, or every step under ``"delta"``); ``""`` otherwise. :meth:`reply_text`
      decodes the reply so far at any time.
    - ``"num_tokens"`` (``np.int64``): the reply length so far, end-of-sequence included.
    - ``"scores"`` (``dict[str, np.float64]``): each reward component and ``"reward"``, their
      weighted sum, always with these keys. They hold the score of the finished reply on the last
      step, of the reply so far on every step under ``"delta"``, and 0.0 otherwise.
    - ``"scored"`` (``np.ndarray``, shape ``()``, dtype ``bool``): whether ``"scores"`` holds the
      score of the current reply.

    ## Arguments
    - ``task``: a task name (``text_gym.tasks.task_names()``), a path to a ``.jsonl`` file, a
      mapping of splits to ``.jsonl`` files (``{"train": "a.jsonl", "test": "b.jsonl"}``), or an
      object with the task protocol (used whole: you chose its samples). Files of a mapping that
      share a prompt are an error unless it holds ``"allow_overlap": True``.
    - ``tokenizer``: a preset name (``"smollm2-135m"``, ``"tiny"``), a local folder, or a
      tokenizer object.
    - ``reward``, ``reward_shaping``: see Rewards.
    - ``max_new_tokens``: the token budget of a reply (``T``).
    - ``max_prompt_tokens``: the room for the templated prompt (``P``). A longer prompt raises
      :class:`~text_gym.errors.PromptTooLongError` in ``reset``, unless
      ``prompt_truncation="left"``, which keeps the last ``P`` tokens.
    - ``split``: ``"train"`` (the default), ``"validation"`` or ``"test"``, held apart for every
      task source: registered tasks and ``.jsonl`` files alike put each distinct prompt (records
      with the same prompt are one sample with all their references) in one split, by a record's
      ``"split"`` field or else by a stable hash of the normalised prompt (about 80/10/10, the same
      on every machine). A mapping of files gives each split its file. ``"all"`` uses every
      sample, and only when asked.
    - ``chat_template``: wrap prompts in the tokenizer's chat template when it has one (a bool).
    - ``render_mode``: ``"ansi"`` (``render`` returns text) or ``"human"`` (prints it).

    ## Version History
    - v0: initial version. Revised in place after text_gym 0.1.0 (dynamics and rewards are
      unchanged, so the id stays ``-v0``): ``info`` has one schema on reset and every step (see
      Info). In 0.1.0, ``reset`` returned ``"index"`` (an ``int``) and ``"prompt"``, steps
      returned ``{}``, and the last step returned ``"text"``, ``"prompt"``, ``"references"`` (a
      list) and ``"scores"`` (floats). In 0.2.0 the split key became NFKC-normalised with format
      characters removed, which moved two samples of the translation tasks between splits.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        task: str | os.PathLike[str] | Task = "qa",
        tokenizer: str | os.PathLike[str] | PreTrainedTokenizerBase = "smollm2-135m",
        reward: str | Mapping[str, float] | RewardFunction = "bleu",
        reward_shaping: RewardShaping = "sparse",
        max_new_tokens: int = 32,
        max_prompt_tokens: int = 96,
        split: str = "train",
        chat_template: bool = True,
        prompt_truncation: Literal["error", "left"] = "error",
        render_mode: str | None = None,
    ) -> None:
        check_positive_int("max_new_tokens", max_new_tokens)
        check_positive_int("max_prompt_tokens", max_prompt_tokens)
        check_choice("reward_shaping", reward_shaping, REWARD_SHAPINGS)
        check_bool("chat_template", chat_template)
        check_split(split)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            # Warn, as gym.make does, instead of refusing: SB3's make_vec_env asks for "rgb_array".
            gym.logger.warn(
                f"render_mode {render_mode!r} is not supported (expected 'ansi' or 'human'); render() will return None."
            )
        _check_length(
            max_prompt_tokens,
            max_new_tokens,
            MAX_SEQUENCE_TOKENS,
            "each observation holds that many int64 slots, twice",
        )
        self.task: Task = make_task(task, split)
        self.tokenizer = load_tokenizer(tokenizer)
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < MAX_SEQUENCE_TOKENS:
            _check_length(max_prompt_tokens, max_new_tokens, limit, "the tokenizer's model_max_length")
        self.reward: Reward = make_reward(reward)
        self._score_keys = (*self.reward.components, TOTAL_KEY)  # the fixed keys of info["scores"]
        self.reward_shaping = reward_shaping
        self.max_new_tokens = max_new_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self.render_mode = render_mode
        self.prompts = PromptEncoder(self.tokenizer, max_prompt_tokens, chat_template, prompt_truncation)

        self.eos_token_id = int(self.tokenizer.eos_token_id)
        self.pad_token_id = self.prompts.pad_token_id
        self._build_spaces(logits_size(tokenizer, self.tokenizer), max_prompt_tokens + max_new_tokens)
        self._clear_state(max_prompt_tokens + max_new_tokens)

    def _build_spaces(self, n: int, length: int) -> None:
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, n - 1, shape=(length,), dtype=np.int64),
                "attention_mask": spaces.Box(0, 1, shape=(length,), dtype=np.int64),
            }
        )
        self.action_space = spaces.Discrete(n)
        self._vocab_limit = min(len(self.tokenizer), n)
        self._action_mask = np.arange(n) < self._vocab_limit
        self._action_mask.setflags(write=False)

    def _clear_state(self, length: int) -> None:
        self._input_ids = np.full(length, self.pad_token_id, dtype=np.int64)
        self._attention_mask = np.zeros(length, dtype=np.int64)
        self._index: int | None = None
        self._references = "[]"  # the sample's references, JSON-encoded once per episode
        self._num_new = 0
        self._scores = dict.fromkeys(self._score_keys, 0.0)
        self._scored = False  # whether self._scores holds the score of the current reply
        self._done = False
        self._warned_unscored = False
        self._cuts = (0, 0)  # (length, how many unseeded resets in a row cut a reply at that length)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a new reply to a new prompt; ``options={"index": i}`` picks sample ``i``."""
        super().reset(seed=seed)
        index = self._pick_index(options)
        sample = get_sample(self.task, index)
        prompt_ids = self.prompts.encode(sample.prompt)  # may raise; state untouched
        if seed is None:  # a seeded reset is a deliberate restart (checkers, evaluation); autoresets pass none
            self._warn_if_unscored()
        p = self.max_prompt_tokens
        self._input_ids.fill(self.pad_token_id)
        self._attention_mask.fill(0)
        self._input_ids[p - len(prompt_ids) : p] = prompt_ids
        self._attention_mask[p - len(prompt_ids) : p] = 1
        self._index, self._num_new, self._done = index, 0, False
        self._references = encode_references(sample.references)
        self._scores, self._scored = dict.fromkeys(self._score_keys, 0.0), False
        if self.render_mode == "human":
            self.render()
        return self._observation(), self._info("")

    def step(self, action: int | np.integer) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Append token ``action`` to the reply; see the class docstring for rewards and ends."""
        if self._index is None:
            raise ResetNeeded("Cannot call step() before reset(); call env.reset() first.")
        if self._done:
            raise ResetNeeded("The episode has ended (terminated or truncated); call env.reset() before step().")
        token = self._check_action(action)
        position = self.max_prompt_tokens + self._num_new
        self._input_ids[position] = token
        self._attention_mask[position] = 1
        self._num_new += 1

        terminated = token == self.eos_token_id
        truncated = not terminated and self._num_new >= self.max_new_tokens
        self._done = terminated or truncated
        # The reply is decoded only when it is scored: decoding it on every step would make an
        # episode cost O(T^2) decoding for a text nobody reads before the end.
        text, reward = "", 0.0
        if self._done or self.reward_shaping == "delta":
            text = self.reply_text()
            scores = self._score_reply(text)
            # Delta pays the change since the last scored reply (0 for the empty reply at reset).
            previous = self._scores[TOTAL_KEY] if self.reward_shaping == "delta" else 0.0
            reward = scores[TOTAL_KEY] - previous
            self._scores, self._scored = scores, True
        if self.render_mode == "human":
            self.render()
        return self._observation(), float(reward), terminated, truncated, self._info(text)

    def render(self) -> str | None:
        """Return (``"ansi"``) or print (``"human"``) the prompt, reply, references and scores."""
        if self.render_mode not in self.metadata["render_modes"]:
            gym.logger.warn(
                f"render() does nothing for render_mode={self.render_mode!r}; pass render_mode='ansi' or 'human' to the env."
            )
            return None
        if self._index is None:
            text = "(no episode yet: call reset())"
        else:
            sample = self.task[self._index]
            scores = " ".join(f"{k}={v:.3f}" for k, v in self._scores.items()) if self._scored else "-"
            state = "done" if self._done else f"{self._num_new}/{self.max_new_tokens} tokens"
            text = (
                f"prompt     : {sample.prompt}\n"
                f"output     : {self.reply_text()}\n"
                f"references : {' | '.join(sample.references)}\n"
                f"scores     : {scores} ({state})\n"
            )
        if self.render_mode == "human":
            print(text)
            return None
        return text

    # ------------------------------------------------------------------ extras
    def action_masks(self) -> np.ndarray:
        """Return a read-only ``bool`` array of shape ``(n,)``: ``True`` for ids that are real tokens."""
        return self._action_mask

    def reply_ids(self) -> np.ndarray:
        """Return the token ids of the reply so far (a copy, end-of-sequence included)."""
        start = self.max_prompt_tokens
        return self._input_ids[start : start + self._num_new].copy()

    def reply_text(self) -> str:
        """Return the reply so far, decoded without special tokens or ids that are not real tokens."""
        ids = self.reply_ids()
        ids = ids[ids < self._vocab_limit]
        return self.tokenizer.decode(ids.tolist(), skip_special_tokens=True).strip()

    # ------------------------------------------------------------------ helpers
    def _observation(self) -> dict[str, np.ndarray]:
        # Copies, so an observation kept by the caller (a rollout buffer) never changes later.
        return {"input_ids": self._input_ids.copy(), "attention_mask": self._attention_mask.copy()}

    def _info(self, text: str) -> dict[str, Any]:
        # One schema on reset and every step, fixed-shape values: see text_gym.envs.info.
        return {
            "index": np.int64(self._index),
            "prompt": self.task[self._index].prompt,
            "references": self._references,
            "text": text,
            "num_tokens": np.int64(self._num_new),
            "scores": {name: np.float64(value) for name, value in self._scores.items()},
            # A 0-d array, not np.bool_: Gymnasium's vector envs stack np.bool_ into an object array.
            "scored": np.array(self._scored),
        }

    def _score_reply(self, text: str) -> dict[str, float]:
        sample = self.task[self._index]
        # Rewards see the text the reply answers or transforms: the sample's source (its prompt
        # when it names none), never the chat template.
        scores = self.reward.score([sample.source], [text], [sample.references])
        return {name: float(scores[name][0]) for name in self._score_keys}

    def _warn_if_unscored(self) -> None:
        # gym.make(..., max_episode_steps=N) puts N in the TimeLimit wrapper only: Gymnasium 1.x
        # sets env.unwrapped.spec.max_episode_steps to None, so the env cannot see the limit up
        # front. It sees the harm instead: resets that cut short replies it never scored. A time
        # limit cuts every long reply at the same length; a library that resets mid-episode now
        # and then (SB3's learn() called again) cuts one at a random length, so only a repeated
        # cut warns.
        cut_short = self._index is not None and not self._done and self._num_new > 0
        if not cut_short or self.reward_shaping != "sparse" or self._warned_unscored:
            return
        same = self._cuts[0] == self._num_new
        self._cuts = (self._num_new, self._cuts[1] + 1 if same else 1)
        if self._cuts[1] < REPEATED_CUTS:
            return
        self._warned_unscored = True
        warnings.warn(
            f"reset() cut short {REPEATED_CUTS} replies in a row at {self._num_new} token(s), before they ended "
            f"(max_new_tokens={self.max_new_tokens}), so the env never scored them and their sparse rewards were "
            "lost. An outer time limit shorter than max_new_tokens does this, e.g. gym.make(..., max_episode_steps=N) "
            "or TimeLimit(env, N) with N < max_new_tokens: leave it unset or make N >= max_new_tokens (or use "
            "reward_shaping='delta'). If you reset mid-episode on purpose, ignore this "
            "text_gym.envs.UnscoredReplyWarning (warned once per env).",
            UnscoredReplyWarning,
            stacklevel=3,
        )

    def _pick_index(self, options: dict[str, Any] | None) -> int:
        options = dict(options or {})
        index = options.pop("index", None)
        if options:
            raise ValueError(f"reset() options: expected only the key 'index', got unknown keys {sorted(options)}.")
        size = len(self.task)
        if index is None:
            return int(self.np_random.integers(size))
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"options['index'] must be an int, got {type(index).__name__} {index!r}.")
        if not 0 <= index < size:
            raise ValueError(f"options['index'] must be in [0, {size}) for task {self.task.name!r}, got {index}.")
        return int(index)

    def _check_action(self, action: Any) -> int:
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise TypeError(f"Action must be an integer token id, got {type(action).__name__} {action!r}.")
        if not 0 <= action < self.action_space.n:
            raise ValueError(f"Action must be a token id in [0, {self.action_space.n}), got {action}.")
        return int(action)


def _check_length(prompt_tokens: int, new_tokens: int, limit: int, why: str) -> None:
    if prompt_tokens + new_tokens > limit:
        raise ValueError(
            f"Expected max_prompt_tokens + max_new_tokens <= {limit:,} ({why}), got {prompt_tokens} + {new_tokens}."
        )
