"""The learning benchmark's arguments (:class:`Args`, the ``--quick`` preset) and the env settings they make.

Run the benchmark with ``python -m benchmarks.learning``; see :mod:`benchmarks.learning`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import check_positive_int_or_zero, check_positive_ints
from text_gym.errors import check_choice

ARMS = ("untrained", "copy-prompt", "reference", "supervised", "beam", "supervised+RL", "RL")
"""Every arm, in report order; ``beam`` is beam search on the selected supervised model."""
TRAINED = ("supervised", "supervised+RL", "RL")
"""The arms that train for the budget T, each selected on validation."""


@dataclass
class Args:
    """Arguments of the learning benchmark."""

    model: str = field(default="smollm2-135m", metadata={"help": "model preset (also the env's tokenizer)"})
    tasks: list = field(default_factory=lambda: ["TextGen-Translate-v0", "TextGen-v0"], metadata={"help": "env ids"})
    task: str = field(default="", metadata={"help": "a task name or .jsonl file for every env id ('' : the env's own)"})
    seeds: list = field(default_factory=lambda: [0, 1, 2], metadata={"help": "training seeds (one run per arm each)"})
    minutes: float = field(default=20.0, metadata={"help": "T: CPU-minutes of training per arm (evaluation left out)"})
    sft_minutes: float = field(
        default=0.0, metadata={"help": "t: supervised+RL's teacher forcing, part of T (0: half of T)"}
    )
    eval_every_minutes: float = field(
        default=0.0,
        metadata={"help": "validation every this many training CPU-minutes, every trained arm alike (0: T/10)"},
    )
    val_prompts: int = field(default=0, metadata={"help": "validation prompts per evaluation (0: the whole split)"})
    reward: str = field(
        default="bleu", metadata={"help": "training reward: a name, or name=weight,... (bleu=0.5,chrf=0.5)"}
    )
    baseline: str = field(
        default="group",
        metadata={"help": "GRPO baseline: group (mean of the group), scst (greedy) or risk (minimum risk training)"},
    )
    risk_alpha: float = field(
        default=1.0, metadata={"help": "--baseline risk: q = softmax(alpha * log p) over a group's replies"}
    )
    candidates: str = field(
        default="sample",
        metadata={"help": "GRPO's replies: sample, or beam (the group-size-best beam-search replies, Edunov et al.)"},
    )
    beta: float = field(default=0.0, metadata={"help": "GRPO KL coefficient to the reference (the warm start, if any)"})
    group_size: int = field(default=4, metadata={"help": "GRPO replies per prompt"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of GRPO's rollouts"})
    learning_rate: float = field(default=2e-5, metadata={"help": "GRPO AdamW step size"})
    rl_only_learning_rate: float = field(
        default=0.0, metadata={"help": "GRPO step size of the RL arm, from the untrained model (0: --learning-rate)"}
    )
    sft_learning_rate: float = field(default=5e-5, metadata={"help": "AdamW step size of teacher forcing"})
    sft_lr_schedule: str = field(
        default="constant",
        metadata={"help": "teacher forcing's step size: constant, or linear (to 0 at T; supervised+RL forks at t)"},
    )
    loss_type: str = field(default="token", metadata={"help": "GRPO loss: token (DAPO) or sequence (GRPO)"})
    clip_range_high: float = field(default=0.0, metadata={"help": "GRPO upper ratio clip (0: the lower one, 0.2)"})
    scale_rewards: bool = field(default=True, metadata={"help": "divide advantages by the group's std"})
    sft_coef: float = field(
        default=0.0, metadata={"help": "GRPO: weight of the references' NLL added to the RL loss (0: RL alone)"}
    )
    n_envs: int = field(default=16, metadata={"help": "GRPO episodes per iteration"})
    batch_size: int = field(default=8, metadata={"help": "episodes (or references) per optimizer step"})
    max_new_tokens: int = field(default=0, metadata={"help": "reply budget (0: the env's default)"})
    chat_template: bool = field(
        default=True,
        metadata={"help": "wrap prompts in the chat template (--no-chat-template: plain, shorter prompts)"},
    )
    lora: int = field(default=0, metadata={"help": "LoRA rank (0: train all weights)"})
    beams: int = field(default=4, metadata={"help": "beam width of the beam-search control"})
    eval_batch_size: int = field(default=16, metadata={"help": "episodes played at once by every evaluation"})
    threads: int = field(default=1, metadata={"help": "torch threads (1: CPU time equals wall time)"})
    name: str = field(default="learning", metadata={"help": "output file stem: <name>.json/.md/.png"})
    out: str = field(default="benchmarks/results", metadata={"help": "folder for the outputs"})
    save: str = field(default="", metadata={"help": "folder for the selected models ('' : do not save)"})
    readme: str = field(default="", metadata={"help": "rewrite this file's learning section ('' : none)"})
    quick: bool = field(default=False, metadata={"help": "tiny model, echo-letter task, seconds: checks the script"})

    def __post_init__(self) -> None:
        if self.quick:
            self.model, self.tasks, self.max_new_tokens, self.reward = "tiny", ["TextGen-EchoLetter-v0"], 4, "chrf"
            self.minutes, self.sft_minutes, self.eval_every_minutes = 0.02, 0.01, 0.005
            self.learning_rate, self.sft_learning_rate, self.n_envs, self.group_size = 1e-2, 1e-2, 8, 4
            self.beams, self.save, self.seeds = 2, "", self.seeds if self.seeds != [0, 1, 2] else [0, 1]
            self.name = "learning_quick" if self.name == "learning" else self.name
        if not self.minutes > 0:
            raise ValueError(f"minutes: expected a positive number of CPU-minutes, got {self.minutes}.")
        self.sft_minutes = self.sft_minutes or self.minutes / 2
        self.eval_every_minutes = self.eval_every_minutes or self.minutes / 10
        if not 0 < self.sft_minutes < self.minutes:
            raise ValueError(
                f"sft_minutes: expected 0 < sft_minutes < minutes (or 0 for half), got {self.sft_minutes} "
                f"with minutes {self.minutes}."
            )
        if not self.eval_every_minutes > 0:
            raise ValueError(f"eval_every_minutes: expected a positive number, got {self.eval_every_minutes}.")
        if not self.tasks or not self.seeds:
            raise ValueError(f"expected at least one env id and one seed, got tasks={self.tasks}, seeds={self.seeds}.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: expected distinct seeds, got {self.seeds}.")
        check_choice("baseline", self.baseline, ("group", "scst", "risk"))
        check_choice("candidates", self.candidates, ("sample", "beam"))
        check_choice("sft_lr_schedule", self.sft_lr_schedule, ("constant", "linear"))
        check_choice("loss_type", self.loss_type, ("token", "sequence"))
        check_positive_ints(self, "n_envs", "group_size", "batch_size", "beams", "eval_batch_size")
        for name, zero in [
            ("max_new_tokens", "the env's default"),
            ("val_prompts", "the whole split"),
            ("lora", "training all weights"),
        ]:
            check_positive_int_or_zero(name, getattr(self, name), zero)
        if not (
            isinstance(self.rl_only_learning_rate, (int, float)) and 0 <= self.rl_only_learning_rate < float("inf")
        ):
            raise ValueError(
                f"rl_only_learning_rate: expected a finite number >= 0 (0: learning_rate), got {self.rl_only_learning_rate!r}."
            )
        for name in ("temperature", "learning_rate", "sft_learning_rate"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ValueError(f"{name}: expected a finite positive number, got {value!r}.")
        if self.beta < 0 or self.clip_range_high < 0 or self.sft_coef < 0 or self.risk_alpha < 0:
            raise ValueError(
                "expected beta >= 0, clip_range_high >= 0, sft_coef >= 0 and risk_alpha >= 0, "
                f"got {self.beta}, {self.clip_range_high}, {self.sft_coef} and {self.risk_alpha}."
            )


def env_kwargs_of(args: Args) -> dict[str, Any]:
    """The env keyword arguments of every trainer and evaluation; unset ones keep the env's defaults."""
    from agents.train_args import parse_reward

    kwargs: dict[str, Any] = {"tokenizer": args.model, "reward": parse_reward(args.reward)}
    if args.task:
        kwargs["task"] = args.task
    if args.max_new_tokens:
        kwargs["max_new_tokens"] = args.max_new_tokens
    if not args.chat_template:
        kwargs["chat_template"] = False
    return kwargs


def command_line(args: Args, module: str = "benchmarks.learning") -> str:
    """The command that reproduces ``args``: every flag that differs from its default (output folders aside).

    >>> command_line(Args(tasks=["TextGen-Translate-v0"], seeds=[0], minutes=20.0, sft_minutes=5.0))
    'python -m benchmarks.learning --tasks TextGen-Translate-v0 --seeds 0 --sft-minutes 5'
    """
    default = type(args)(quick=args.quick)  # with --quick, the flags that differ from its preset
    parts = [f"python -m {module}", *(["--quick"] if args.quick else [])]
    for name, value in vars(args).items():
        if value == getattr(default, name) or name in ("out", "readme", "save"):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            parts.append(" ".join([flag, *(shlex.quote(str(item)) for item in value)]))
        else:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(parts)
