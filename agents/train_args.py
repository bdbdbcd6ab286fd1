"""The arguments of ``python -m agents.train``: parsing, the ``--quick`` preset, and the resume command.

With ``--resume``, the settings the checkpoint determines come from it, and a given flag that
contradicts it is an error (:mod:`agents.resume` decides both). :func:`resume_command` prints the
command that continues a run: every flag the user gave, except those the checkpoint now determines.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.resume import ALGOS, CHECKPOINT_FLAGS, checkpoint_settings, contradictions
from agents.train_checks import (
    check_paths,
    count,
    episodes,
    non_negative_float,
    positive_float,
    registered_env,
)
from agents.train_checks import positive_int as _positive_int  # the name flags have used
from agents.trainers.checkpoint import CheckpointError
from text_gym.tasks.files import ALLOW_OVERLAP

__all__ = [
    "ALGOS",
    "QUICK",
    "build_parser",
    "parse_args",
    "parse_reward",
    "parse_task",
    "resume_command",
]

# The demo preset: SmolLM2 learns to follow "Repeat exactly: apple river stone" with GRPO. The
# untrained model mostly chats instead of copying; some of its samples do copy, which gives each
# group of four a signal. copy-prompt shows what copying the source would score (1.0: the task
# is copying), so the table says how far from free the model got in a few CPU minutes.
QUICK = {
    "env": "TextGen-Copy-v0",
    "model": "smollm2-135m",
    "algo": "grpo",
    "reward": "bleu",
    "steps": 1500,
    "n_envs": 16,
    "group_size": 4,
    "batch_size": 8,
    "max_new_tokens": 12,
    "learning_rate": 2e-5,
    "eval_episodes": 32,
}

_DESCRIPTION = "Train an LM agent on any TextGen task, then compare it with the trivial answers on held-out prompts."
_EPILOG = (
    "With --resume, the algorithm, model, env, task, reward, trainer settings and seed are the checkpoint's: "
    "repeating one of those flags with the saved value is fine, another value is an error. --steps then counts "
    "the tokens to train for beyond the checkpoint."
)


def parse_task(text: str) -> str | dict[str, str | bool]:
    """A ``--task`` value: a task name or ``.jsonl`` path, or ``split=path,...`` for one file per split.

    ``allow_overlap=true`` lets the files share prompts (see ``text_gym.tasks.make_task``).

    >>> parse_task("qa")
    'qa'
    >>> parse_task("train=a.jsonl,test=b.jsonl")
    {'train': 'a.jsonl', 'test': 'b.jsonl'}
    >>> parse_task("train=a.jsonl,test=a.jsonl,allow_overlap=true")
    {'train': 'a.jsonl', 'test': 'a.jsonl', 'allow_overlap': True}
    """
    if "=" not in text:
        return text
    pairs = [part.partition("=") for part in text.split(",")]
    if any(not key or not value for key, _, value in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME, PATH or split=PATH,split=PATH..., got {text!r}")
    task: dict[str, str | bool] = {key: value for key, _, value in pairs}
    if ALLOW_OVERLAP in task:
        flag = str(task[ALLOW_OVERLAP]).lower()
        if flag not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"expected {ALLOW_OVERLAP}=true or false, got {task[ALLOW_OVERLAP]!r}")
        task[ALLOW_OVERLAP] = flag == "true"
    return task


def parse_reward(text: str) -> str | dict[str, float]:
    """A ``--reward`` value: a reward name, or ``name=weight,...`` for a weighted sum.

    >>> parse_reward("bleu=1,source-bleu=-0.5")
    {'bleu': 1.0, 'source-bleu': -0.5}
    """
    if "=" not in text:
        return text
    weights = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            weights[name] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected name=weight pairs such as bleu=1,source-bleu=-0.5, got {part!r}"
            ) from None
    return weights


def _selection_split(text: str) -> str:
    """An argparse ``type``: a split to select checkpoints on, which must not be ``test``."""
    if text == "test":
        raise argparse.ArgumentTypeError(
            "expected a split other than test (validation): the table is measured on test, and a model chosen "
            "by its test score has seen the answers, so its test score would be optimistic"
        )
    return text


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every default in ``--help``, except where there is none to show or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (without ``--quick``'s and ``--resume``'s filling-in: see :func:`parse_args`)."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.train", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_HelpFormatter
    )
    _add_task_arguments(parser.add_argument_group("task and env (on --resume: the checkpoint's)"))
    _add_training_arguments(parser.add_argument_group("training (on --resume: the checkpoint's, but --steps)"))
    _add_run_arguments(parser.add_argument_group("evaluation, checkpoints and output"))
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as a namespace: ``--quick`` fills in what was not given, ``--resume`` the run's settings.

    ``given`` lists the options set on the command line (their ``dest`` names): what a resumed
    run checks against the checkpoint, and what :func:`resume_command` repeats.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    unset = object()  # argparse leaves alone what the namespace already has: what stays unset was not given
    probe = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.default != argparse.SUPPRESS})
    args.given = sorted(k for k, v in vars(parser.parse_args(argv, probe)).items() if v is not unset)
    if args.quick:
        for key, value in QUICK.items():
            if key not in args.given:
                setattr(args, key, value)
    if args.resume:
        _take_from_checkpoint(parser, args)
    else:
        args.env = registered_env(parser, args.env)
    check_paths(parser, args)
    if args.baseline != "group" and args.algo != "grpo":
        parser.error(f"--baseline {args.baseline} is GRPO's; --algo {args.algo} has a critic for its baseline.")
    if "risk_alpha" in args.given and args.baseline != "risk":
        parser.error(f"--risk-alpha weighs --baseline risk's replies; expected --baseline risk, got {args.baseline}.")
    if args.candidates != "sample" and args.algo != "grpo":
        parser.error(f"--candidates {args.candidates} is GRPO's; expected --algo grpo, got --algo {args.algo}.")
    if args.sft_coef and args.algo != "grpo":
        parser.error(f"--sft-coef is GRPO's; expected --algo grpo, got --algo {args.algo}.")
    return args


def _take_from_checkpoint(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Set the settings the ``--resume`` checkpoint determines; exit (status 2) on a given flag that contradicts it."""
    if "env" in args.given and ":" in args.env:  # a checkpoint never imports; the user may, naming the module
        module = args.env.split(":", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError as error:
            parser.error(f"--env {args.env}: cannot import {module!r}: {error}")
    try:
        saved = checkpoint_settings(args.resume)
    except (OSError, CheckpointError) as error:
        parser.error(f"--resume: {error}")
    conflicts = contradictions({name: getattr(args, name) for name in args.given}, saved)
    if conflicts:
        parser.error(
            f"--resume {args.resume} continues the saved run, whose settings these flags contradict: "
            f"{'; '.join(conflicts)}. Drop them (the run keeps its own), or start a new run without --resume."
        )
    for name in CHECKPOINT_FLAGS:
        setattr(args, name, saved.get(name, getattr(args, name)))


def _add_task_arguments(group: Any) -> None:
    group.add_argument("--env", default="TextGen-v0", help="registered env id, or module:id to import module first")
    group.add_argument("--task", type=parse_task, help="task name, .jsonl file, or split=file,... (default: the env's)")
    group.add_argument("--model", default="smollm2-135m", help="model preset or folder (also the env's tokenizer)")
    group.add_argument(
        "--reward",
        type=parse_reward,
        default="bleu",
        help="env reward: bleu, chrf, sari, coherence, source-bleu..., or name=weight,name=weight",
    )
    group.add_argument("--max-new-tokens", type=_positive_int, default=None, help="reply budget (default: the env's)")
    group.add_argument("--max-prompt-tokens", type=_positive_int, default=None, help="prompt room (default: the env's)")
    group.add_argument("--prompt-truncation", choices=["error", "left"], help="(default: the env's, error)")


def _add_training_arguments(group: Any) -> None:
    group.add_argument("--algo", choices=sorted(ALGOS), default="grpo", help="the trainer")
    group.add_argument("--steps", type=_positive_int, default=20_000, help="generated tokens to train for")
    group.add_argument(
        "--warm-start-tokens",
        type=count,
        default=0,
        help="teacher forcing on this many train-split reference tokens before RL (0: none)",
    )
    group.add_argument("--warm-start-lr", type=positive_float, default=5e-5, help="learning rate of the warm start")
    group.add_argument("--n-envs", type=_positive_int, default=16, help="episodes per rollout")
    _add_grpo_arguments(group)
    group.add_argument("--learning-rate", type=positive_float, default=1e-5, help="AdamW learning rate of RL")
    group.add_argument(
        "--n-epochs", type=_positive_int, default=None, help="passes over each rollout (default: the trainer's)"
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="episodes per optimizer step (default: the whole rollout)",
    )
    group.add_argument(
        "--micro-batch-size",
        type=_positive_int,
        help="episodes per forward, for gradient accumulation (default: --batch-size); may change on --resume",
    )
    group.add_argument(
        "--kl",
        type=non_negative_float,
        default=None,
        help="KL coefficient (GRPO beta / PPO kl_coef; default: the trainer's)",
    )
    group.add_argument("--temperature", type=positive_float, default=1.0, help="sampling temperature of rollouts")
    group.add_argument("--lora", type=count, default=0, help="LoRA rank; 0 trains all weights")
    group.add_argument("--seed", type=count, default=0, help="seeds training and the sampled evaluations")
    group.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:1...")
    group.add_argument("--threads", type=count, default=0, help="torch CPU threads (0: torch's default)")


def _add_grpo_arguments(group: Any) -> None:
    """GRPO's own flags: groups, the baseline and where a group's replies come from."""
    group.add_argument("--group-size", type=_positive_int, default=4, help="GRPO replies per prompt")
    group.add_argument(
        "--baseline",
        choices=["group", "scst", "risk"],
        default="group",
        help="GRPO's baseline: the group's mean reward, scst: the greedy reply's reward (self-critical), or "
        "risk: the group's reward expected under the model, each reply weighted by its probability (minimum risk)",
    )
    group.add_argument("--scst", dest="baseline", action="store_const", const="scst", help="--baseline scst")
    group.add_argument(
        "--risk-alpha",
        type=non_negative_float,
        default=1.0,
        help="--baseline risk: q = softmax(alpha * log p) over a group's replies (0: uniform)",
    )
    group.add_argument(
        "--candidates",
        choices=["sample", "beam"],
        default="sample",
        help="GRPO: a group's replies are sampled, or beam: the policy's group-size-best beam-search replies "
        "(the n-best lists of minimum risk training, Edunov et al. 2018; meant for --baseline risk)",
    )
    group.add_argument(
        "--sft-coef",
        type=non_negative_float,
        default=0.0,
        help="GRPO: weight of the references' NLL added to the RL loss (Edunov et al. 2018; 0: RL alone)",
    )


def _add_run_arguments(group: Any) -> None:
    group.add_argument(
        "--eval-episodes", type=episodes, default=64, help="held-out prompts (0: skip; -1: the whole split)"
    )
    group.add_argument("--eval-split", default="test", help="the split the table is measured on")
    group.add_argument(
        "--eval-every",
        type=count,
        default=0,
        help="evaluate on --selection-split every N warm-start steps and RL iterations and keep the best model "
        "(best_model.zip; the table measures it); 0: off, the table measures the last model",
    )
    group.add_argument(
        "--selection-split",
        type=_selection_split,
        default="validation",
        help="the split --eval-every selects on (never test: the table is measured there)",
    )
    group.add_argument(
        "--checkpoint-minutes",
        type=non_negative_float,
        default=10.0,
        help="save a resumable checkpoint under --out/checkpoints every this many minutes (0: off)",
    )
    group.add_argument("--keep-checkpoints", type=_positive_int, default=3, help="periodic checkpoints to keep")
    group.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="continue the run saved at PATH (a checkpoint, interrupted.zip or model.zip) for --steps more tokens",
    )
    group.add_argument("--out", default="runs/train", help="folder for logs, checkpoints, model and results.json")
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="a fresh run, or one resumed from another folder's checkpoint, in an --out that holds another "
        "run's files removes them (default: refuse)",
    )
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    group.add_argument("--quick", action="store_true", help=f"the demo preset: {QUICK}")
    group.add_argument(
        "--debug", action="store_true", help="show the traceback of a user error instead of one 'error:' line"
    )


def resume_command(args: argparse.Namespace, checkpoint: str | Path, steps: int) -> str:
    """The shell command that continues this run from ``checkpoint`` for ``steps`` more tokens.

    It repeats every option in ``args.given`` except those the checkpoint determines
    (:data:`CHECKPOINT_FLAGS`), so the resumed run evaluates, saves and logs as this one did.
    """
    actions = {a.dest: a for a in build_parser()._actions}
    words = ["python", "-m", "agents.train", "--resume", os.path.abspath(checkpoint)]  # works from any directory
    for name in args.given:
        if name in CHECKPOINT_FLAGS or name in ("resume", "steps", "out", "overwrite"):
            continue
        action, value = actions[name], getattr(args, name)
        if action.nargs == 0:  # a switch
            words += [action.option_strings[0]] if value else []
        else:
            text = ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
            words += [action.option_strings[0], text]
    return shlex.join([*words, "--steps", str(steps), "--out", os.path.abspath(args.out)])
