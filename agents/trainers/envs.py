"""The vector env a sequence trainer plays, and the token facts it reads from it once."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from text_gym.errors import check_positive_int

__all__ = ["EnvLayout", "env_info_row", "env_layout", "make_trainer_envs"]


@dataclass
class EnvLayout:
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


def env_layout(envs: VectorEnv) -> EnvLayout:
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
    return EnvLayout(vocab_limit=vocab_limit, num_actions=n, **values)


def make_trainer_envs(
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
        seed: Unused (rollouts reset with their own seeds); kept so that 0.1 calls of
            ``make_vec_env(env, n_envs, seed, ...)`` keep working.
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
    check_positive_int("n_envs", n_envs)
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


def env_info_row(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """The info of sub-env ``i`` out of a vector env's dict-of-arrays info."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        present = infos.get("_" + key)
        if present is not None and not present[i]:
            continue
        out[key] = env_info_row(value, i) if isinstance(value, dict) else value[i]
        if isinstance(out[key], np.generic):
            out[key] = out[key].item()
    return out
