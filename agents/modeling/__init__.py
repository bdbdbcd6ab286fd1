"""The language model behind every agent: the actor-critic, loading and preparing models, token helpers, the KV cache.

- :mod:`~agents.modeling.lm`: ``LMActorCritic``, a causal LM with a value head.
- :mod:`~agents.modeling.loading`: model presets and folders, offline; ``resolve_device``.
- :mod:`~agents.modeling.prepare`: dtype and device, LoRA, a critic trunk, dropout, checkpointing.
- :mod:`~agents.modeling.tokens`: positions, real-token columns, choosing the next token.
- :mod:`~agents.modeling.prefix`: outputs at the last real token; shared-prefix evaluation.
- :mod:`~agents.modeling.kv_cache`: ``RolloutKVCache``, the per-row KV cache that the SB3 policy
  and the LM baselines reuse across ``env.step`` calls.
"""
