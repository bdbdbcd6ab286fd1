"""text_gym: text generation as reinforcement learning, in Gymnasium.

Importing the package registers the environments (with string entry points, so importing stays
cheap and ``gym.make("text_gym:TextGen-v0")`` works without importing first)::

    import gymnasium as gym
    import text_gym

    env = gym.make("TextGen-v0")                 # chatterbot QA, SmolLM2 tokenizer, BLEU
    env = gym.make("TextGen-Copy-v0", tokenizer="tiny")

Where things live:

- ``text_gym.envs``: the environments (``TextGenEnv``).
- ``text_gym.tasks``: datasets of ``(prompt, references)``; add yours with ``register_task``.
- ``text_gym.rewards``: batch reward functions; add yours with ``register_reward``.
- ``text_gym.tokenization`` / ``agents.modeling.loading``: tokenizer and model presets, offline.
- ``text_gym.testing``: ``check_text_env`` for your own tasks and envs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register, registry

__version__ = "0.2.0.dev0"

ENTRY_POINT = "text_gym.envs.text_gen:TextGenEnv"

# Environment id -> task name. Each synthetic task has exact references that the project
# generates itself, so an agent's ceiling is known (BLEU 1.0).
ENV_TASKS: dict[str, str] = {
    "TextGen-v0": "qa",
    "TextGen-Copy-v0": "copy",
    "TextGen-Reverse-v0": "reverse",
    "TextGen-Sort-v0": "sort",
    "TextGen-NumberWords-v0": "number-words",
    "TextGen-Arithmetic-v0": "arithmetic",
    "TextGen-EchoLetter-v0": "echo-letter",
    "TextGen-Translate-v0": "translate-fr",  # needs `pip install django` (its catalogues)
}

for _env_id, _task in ENV_TASKS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=ENTRY_POINT, kwargs={"task": _task})

if TYPE_CHECKING:
    from text_gym.envs.text_gen import TextGenEnv


def __getattr__(name: str) -> Any:
    # Lazy, so `import text_gym` does not pay for importing transformers.
    if name == "TextGenEnv":
        from text_gym.envs.text_gen import TextGenEnv

        return TextGenEnv
    raise AttributeError(f"module 'text_gym' has no attribute {name!r}")


__all__ = ["ENV_TASKS", "TextGenEnv", "__version__"]
