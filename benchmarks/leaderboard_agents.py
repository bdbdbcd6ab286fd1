"""The leaderboard's agents: load a model or a trained checkpoint, check its tokenizer, build the agent.

Every agent is one of :mod:`agents.baselines`; see :mod:`benchmarks.leaderboard` for the specs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.leaderboard_args import AgentSpec, Args

# The rows a trained agent must beat: the untrained model and replying with the input.
TRIVIAL_KINDS = ("greedy", "sampling", "copy-prompt")
# Agents whose act() does not tie state to row positions: beam plans are keyed by the tokens so
# far, random keeps none. Rows with nothing left to play leave their batch (a finished row would
# make the beam agent plan a new reply at every step); the others keep row i = env i.
ROW_FREE_KINDS = ("random", "beam")


def load_policy(model: str, device: str, tokenizer: str) -> Any:
    """Return the ``LMActorCritic`` the LM agents share, from a preset, a folder or a trainer's ``.zip``.

    Raises:
        ValueError: A trainer checkpoint was trained on envs with another tokenizer than ``tokenizer``.
    """
    from agents.modeling.lm import LMActorCritic
    from agents.modeling.loading import resolve_device
    from agents.trainers.checkpoint import read_archive

    path = Path(model)
    if path.suffix == ".zip":
        policy, state, _ = read_archive(path, resolve_device(device))
        check_tokenizer(model, (state.get("env_kwargs") or {}).get("tokenizer"), tokenizer)
        return policy
    if (path / "actor_critic.json").is_file():  # LMActorCritic.save_pretrained
        return LMActorCritic.from_pretrained(path, device=resolve_device(device))
    return LMActorCritic(model, device=device)


def checkpoint_tokenizer(path: str) -> str | None:
    """The tokenizer of the envs a trainer's ``.zip`` was trained on (None when it did not say).

    Reads only the archive's JSON (:func:`~agents.trainers.checkpoint.read_settings`), not the
    weights, so every checkpoint can be checked before any agent plays.

    Raises:
        ValueError: ``path`` is not a trainer's ``.zip`` (``CheckpointError`` is a ``ValueError``).
        FileNotFoundError: There is no file at ``path``.
    """
    from agents.trainers.checkpoint import read_settings

    state, _ = read_settings(path)
    trained_on = (state.get("env_kwargs") or {}).get("tokenizer")
    return None if trained_on is None else str(trained_on)


def check_tokenizer(model: str, trained_on: str | None, tokenizer: str) -> None:
    """Refuse a checkpoint trained on envs with another tokenizer: its actions would mean other tokens.

    Raises:
        ValueError: ``trained_on`` is neither None nor ``tokenizer``.
    """
    if trained_on is not None and str(trained_on) != tokenizer:
        raise ValueError(
            f"{model} was trained on envs with tokenizer {trained_on!r}, got --model {tokenizer!r}; "
            f"pass --model {trained_on} so actions mean the same tokens."
        )


def check_checkpoints(args: Args) -> None:
    """Check, before any agent plays, that every checkpoint is a trainer's ``.zip`` of ``args.model``'s tokenizer.

    Raises:
        ValueError: As :func:`checkpoint_tokenizer` and :func:`check_tokenizer`.
    """
    for spec in map(AgentSpec.parse, args.agents):
        if spec.model and spec.model.endswith(".zip"):
            check_tokenizer(spec.model, checkpoint_tokenizer(spec.model), args.model)


def agent_class(kind: str) -> type:
    """The :mod:`agents.baselines` class of an agent kind (``ckpt`` plays greedily)."""
    from agents import baselines

    return {
        "random": baselines.RandomAgent,
        "greedy": baselines.GreedyLMAgent,
        "sampling": baselines.SamplingLMAgent,
        "beam": baselines.BeamSearchLMAgent,
        "copy-prompt": baselines.CopyPromptAgent,
        "reference": baselines.ReferenceAgent,
    }[kind]


def make_agent(spec: AgentSpec, policy: Any, envs: list[Any], seed: int, args: Args) -> Any:
    """Build the agent of ``spec`` for one seed; ``policy`` is the loaded model (shared across seeds)."""
    cls = agent_class(spec.kind)
    if spec.kind == "random":
        return cls(envs[0].action_space, seed=seed)
    if spec.kind in ("reference", "copy-prompt"):
        return cls(envs)
    if spec.kind == "sampling":
        return cls(policy, temperature=args.temperature, seed=seed)
    if spec.kind == "beam":
        return cls(policy, num_beams=args.num_beams)
    return cls(policy)
