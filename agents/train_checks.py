"""What ``python -m agents.train`` checks and says before any work: typed values, the env id, paths, the splits.

Each argparse ``type`` here parses a value and checks it with the shared checks of
:mod:`text_gym.errors` (NaN and inf are no numbers of a setting, counts are not negative), so a bad
flag ends the command with status 2 and one line, as argparse does, before a model loads. Then
the command says what it is about to do (:func:`start_line`, at once) and which prompts it trains
and evaluates on (:func:`splits_line`), before the first evaluation.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.evaluation import make_eval_envs
from agents.modeling.loading import MODEL_PRESETS
from text_gym.errors import check_finite, check_non_negative_int, check_positive_int
from text_gym.tokenization import resolve_spec

__all__ = [
    "check_paths",
    "splits_line",
    "start_line",
    "checked",
    "count",
    "episodes",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "registered_env",
]


def checked(check: Callable[..., Any], parse: type, **kwargs: Any) -> Callable[[str], Any]:
    """An argparse ``type`` that parses a value and checks it as the Python API does (errors exit 2)."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an int' if parse is int else 'a number'}, got {text!r}"
            ) from None
        try:
            return check("value", value, **kwargs)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix("value: ")) from None

    return convert


def _at_least_minus_one(name: str, value: int) -> int:
    """``--eval-episodes``: a count, or -1 for the whole split."""
    if value != -1:
        check_non_negative_int(name, value, "or -1 for the whole split")
    return value


positive_int = checked(check_positive_int, int)
count = checked(check_non_negative_int, int)  # 0 means none or off
positive_float = checked(check_finite, float, positive=True)
non_negative_float = checked(check_finite, float, non_negative=True)
episodes = checked(_at_least_minus_one, int)


def registered_env(parser: argparse.ArgumentParser, env: str) -> str:
    """The registered id that ``--env`` names; ``module:Id`` imports ``module`` first, as ``gym.make`` does.

    The run goes on with the bare id, so its checkpoints and ``results.json`` hold no module to import.
    """
    module, _, env_id = env.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as error:
            parser.error(f"--env {env}: expected an importable module before ':', got {module!r} ({error}).")
    try:
        gym.spec(env_id)
    except gym.error.Error as error:
        parser.error(f"--env {env}: {error} Registered TextGen ids: {_text_gen_ids()}.")
    return env_id


def _text_gen_ids() -> list[str]:
    return sorted(name for name in gym.registry if name.startswith("TextGen"))


def check_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit (status 2) on an ``--out`` that is, or lies under, a file, or a ``--model`` that is neither preset nor folder.

    A ``--model`` folder becomes an absolute path (the model and tokenizer the checkpoints name).
    """
    out = Path(args.out)
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        parser.error(f"--out: expected a folder (new or existing), got {args.out!r}, where {existing} is a file.")
    if not args.resume:
        try:
            kind, path = resolve_spec(args.model, "model", MODEL_PRESETS)
        except ValueError as error:
            parser.error(f"--model: {error}")
        if kind == "path":  # stored with the run's checkpoints: --resume must find it from any working folder
            args.model = str(Path(path).resolve())


def start_line(args: argparse.Namespace) -> str:
    """The first line the command prints, before the model loads."""
    what = f"resuming {args.resume}" if args.resume else f"{args.algo} on {args.env} with {args.model}"
    return f"[train] {what}, {args.steps} tokens, into {args.out}: loading the model and envs..."


def splits_line(args: argparse.Namespace, train_env: Any, env_id: str, env_kwargs: dict[str, Any]) -> str:
    """How many prompts the run trains on (the trainer's env) and evaluates on (``--eval-split``)."""
    task = train_env.get_attr("task")[0]
    line = f"[train] task {task.name!r}: trains on {len(task)} prompts of its train split"
    if args.warm_start_tokens and not args.resume:
        line += " (warm start and RL)"
    if not args.eval_episodes:
        return line + "; no held-out evaluation (--eval-episodes 0)."
    held_out = make_eval_envs(env_id, env_kwargs, args.eval_split, 1)[0]
    size = len(held_out.unwrapped.task)
    held_out.close()
    played = size if args.eval_episodes < 0 else min(args.eval_episodes, size)
    return (
        f"{line}; evaluates on {played} of the {size} prompts of its {args.eval_split!r} split, "
        "before training (untrained, copy-prompt, reference) and after."
    )
