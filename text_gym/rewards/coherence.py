"""Coherence: how related an output is to its prompt, by sentence-embedding cosine similarity.

Su et al. 2022 ("A Contrastive Framework for Neural Text Generation") measure the coherence of a
continuation as the cosine similarity between the embeddings of the prefix and the continuation;
we use the all-MiniLM-L6-v2 sentence encoder, as sentence-transformers does: mean pooling over the
attention mask, L2 normalisation, inputs truncated at 256 tokens (the length it was trained on).

torch and transformers are imported, and the encoder loaded, on the first call only, once per
process and device (:func:`load_encoder` is a ``functools.cache``), so importing
:mod:`text_gym.rewards` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from text_gym.errors import MissingAssetError
from text_gym.rewards.base import check_batch

MAX_TOKENS = 256
"""Inputs are truncated here: all-MiniLM-L6-v2 was trained on at most 256 word pieces."""

TORCH_INSTALL = "pip install torch transformers"


@cache
def load_encoder(device: str = "cpu") -> tuple[Any, Any]:
    """Return the all-MiniLM-L6-v2 ``(tokenizer, model)`` on ``device``, loading them once per process.

    Raises:
        MissingAssetError: torch, transformers or the model package is not installed; the
            message names the pip command.
    """
    try:
        import torch  # noqa: F401  (transformers' AutoModel needs it; fail with our message first)
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise MissingAssetError(
            f"The coherence reward needs torch and transformers; install them with `{TORCH_INSTALL}`."
        ) from error
    from text_gym.assets import minilm_dir

    folder = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
    return tokenizer, model


def embed(texts: Sequence[str], device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Return the L2-normalised all-MiniLM-L6-v2 embeddings of ``texts``, shape ``(len(texts), 384)``.

    Example:
        >>> vectors = embed(["guitar", "instrument", "stocks"])
        >>> vectors.shape
        (3, 384)
        >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
        True
    """
    import torch

    tokenizer, model = load_encoder(str(device))
    chunks = [np.zeros((0, model.config.hidden_size), dtype=np.float32)]
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(model.device)
            hidden = model(**batch).last_hidden_state  # (B, T, H)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, H)
            chunks.append(torch.nn.functional.normalize(pooled, p=2, dim=-1).float().cpu().numpy())
    return np.concatenate(chunks)


class Coherence:
    """Cosine similarity between the embeddings of each prompt and its output, in [-1, 1].

    References are ignored. An output (or prompt) that is empty or only whitespace scores 0.0,
    "unrelated", without running the encoder: it would otherwise embed as just the special tokens
    ``[CLS] [SEP]``, a fixed vector whose cosine with real text is positive (about 0.1-0.25
    measured) and varies with the prompt, so an agent could earn reward by saying nothing. Under
    ``reward_shaping="delta"`` this also makes the empty reply at the start of an episode worth 0.

    Args:
        device: Where the encoder runs (``"cpu"``, ``"cuda"``...). The encoder is loaded on the
            first call and shared by every ``Coherence`` on the same device in the process.
        batch_size: Texts per encoder forward pass.

    Example:
        >>> coherence = Coherence()
        >>> scores = coherence(["I play the guitar", "I play the guitar"], ["a musical instrument", "stock prices"], [[""], [""]])
        >>> bool(scores[0] > scores[1])
        True
        >>> coherence(["I play the guitar"], ["   "], [[""]])
        array([0.])
    """

    name = "coherence"

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Expected batch_size to be a positive integer, got {batch_size!r}.")
        self.device = str(device)
        self.batch_size = batch_size

    def __call__(
        self, prompts: Sequence[str], outputs: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """Return the prompt-output cosine similarity of each sample, shape ``(len(outputs),)``."""
        n = check_batch(outputs, references, prompts)
        for text in (*prompts, *outputs):
            if not isinstance(text, str):
                raise TypeError(f"Expected prompts and outputs to be strings, got {text!r} ({type(text).__name__}).")
        scores = np.zeros(n, dtype=np.float64)
        keep = [i for i in range(n) if prompts[i].strip() and outputs[i].strip()]
        if keep:
            # One pass over prompts and outputs together: (2K, H) -> prompts (K, H), outputs (K, H).
            vectors = embed([prompts[i] for i in keep] + [outputs[i] for i in keep], self.device, self.batch_size)
            cosine = np.einsum("kh,kh->k", vectors[: len(keep)], vectors[len(keep) :]).astype(np.float64)
            scores[keep] = np.clip(cosine, -1.0, 1.0)  # unit vectors; clip float32 rounding (1.0000001)
        return scores

    def __repr__(self) -> str:
        return f"Coherence(device={self.device!r}, batch_size={self.batch_size})"
