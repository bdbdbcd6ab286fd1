"""The language model behind every agent: the actor-critic, loading and preparing models, token helpers, the KV cache.

- :mod:`~agents.modeling.lm`: ``LMActorCritic``, a causal LM with a value head.
- :mod:`~agents.modeling.loading`: model presets and folders, offline; ``resolve_device``.
- :mod:`~agents.modeling.prepare`: dtype and device, LoRA, a critic trunk, dropout, checkpointing.
- :mod:`~agents.modeling.tokens`: positions, real-token columns, choosing the next token.
- :mod:`~agents.modeling.prefix`: outputs at the last real token; shared-prefix evaluation.
- :mod:`~agents.modeling.kv_cache`: ``RolloutKVCache``, the per-row KV cache that the SB3 policy
  and the LM baselines reuse across ``env.step`` calls.
- :mod:`~agents.modeling.logprobs`: ``token_logprobs``, chosen tokens' log-probs with the LM head
  applied in chunks (no ``(B, T, V)`` logits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "LMActorCritic": "agents.modeling.lm",
    "LMOutput": "agents.modeling.lm",
    "RolloutKVCache": "agents.modeling.kv_cache",
    "load_model": "agents.modeling.loading",
    "load_model_and_tokenizer": "agents.modeling.loading",
    "resolve_device": "agents.modeling.loading",
    "token_logprobs": "agents.modeling.logprobs",
}

if TYPE_CHECKING:  # the exports' types, for type checkers and IDEs
    from agents.modeling.kv_cache import RolloutKVCache
    from agents.modeling.lm import LMActorCritic, LMOutput
    from agents.modeling.loading import load_model, load_model_and_tokenizer, resolve_device
    from agents.modeling.logprobs import token_logprobs

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
