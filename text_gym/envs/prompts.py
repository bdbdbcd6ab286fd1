"""Turn task prompts into the token ids that fill an observation's prompt slots."""

from __future__ import annotations

from typing import Literal

import numpy as np
from transformers import PreTrainedTokenizerBase

from text_gym.errors import PromptTooLongError

PROMPT_TRUNCATIONS: tuple[str, ...] = ("error", "left")


class PromptEncoder:
    """Apply the chat template, tokenize, and fit a prompt into ``max_tokens`` ids.

    A prompt that does not fit raises :class:`PromptTooLongError` (``truncation="error"``, the
    default, because silently cutting the start of a chat-templated prompt drops the system turn),
    or keeps its last ``max_tokens`` ids (``truncation="left"``: the question itself and the
    generation prompt sit at the end). Encodings are cached per prompt text.

    Args:
        tokenizer: The tokenizer.
        max_tokens: The room for one prompt, in tokens.
        chat_template: Wrap the prompt as a user turn in the tokenizer's chat template, when the
            tokenizer has one.
        truncation: ``"error"`` or ``"left"``.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_tokens: int,
        chat_template: bool = True,
        truncation: Literal["error", "left"] = "error",
    ) -> None:
        if truncation not in PROMPT_TRUNCATIONS:
            raise ValueError(f"prompt_truncation must be one of {list(PROMPT_TRUNCATIONS)}, got {truncation!r}.")
        if tokenizer.eos_token_id is None:
            raise ValueError(
                f"The tokenizer {type(tokenizer).__name__} has no eos_token_id; set tokenizer.eos_token first."
            )
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.use_chat_template = bool(chat_template and getattr(tokenizer, "chat_template", None))
        self.truncation = truncation
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(tokenizer.eos_token_id if pad is None else pad)
        self._cache: dict[str, np.ndarray] = {}

    def format(self, prompt: str) -> str:
        """Return the prompt text as the model sees it (chat template applied when enabled)."""
        if not self.use_chat_template:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, prompt: str) -> np.ndarray:
        """Return the prompt's token ids, an ``int64`` array of length at most ``max_tokens``."""
        ids = self._cache.get(prompt)
        if ids is None:
            # The chat template already writes any BOS token, so no special tokens are added here.
            encoded = self.tokenizer(self.format(prompt), add_special_tokens=not self.use_chat_template)
            ids = np.asarray(encoded["input_ids"], dtype=np.int64)
            self._cache[prompt] = ids
        if len(ids) > self.max_tokens:
            if self.truncation == "error":
                raise PromptTooLongError(
                    f"The prompt is {len(ids)} tokens long, but max_prompt_tokens={self.max_tokens}. "
                    f"Raise max_prompt_tokens or pass prompt_truncation='left'. Prompt: {prompt[:80]!r}"
                )
            ids = ids[-self.max_tokens :]
        return ids
