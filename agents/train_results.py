"""What one command-line run measures and stores: its held-out evaluations and ``results.json``.

:class:`Evaluator` plays the trainer's policy and the trivial agents on the held-out split through
the one evaluator; :class:`Run` keeps a segment's rows (reusing the rows measured before RL when a
run is resumed) and writes ``results.json`` atomically.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.atomic import atomic_write_text
from agents.evaluation import Evaluation, add_margins, lm_evaluations, trivial_evaluations
from agents.trainers.base import TrainerBase
from agents.trainers.selection import ValidationSelection

__all__ = ["BEFORE_RL", "Evaluator", "Run"]

BEFORE_RL = ("untrained greedy", "untrained sampling", "supervised greedy")


@dataclass
class Evaluator:
    """The held-out evaluations of a run, all from one evaluator (none when disabled)."""

    args: argparse.Namespace
    env_id: str
    env_kwargs: dict[str, Any]
    enabled: bool

    def policy(self, trainer: TrainerBase, prefix: str, sampling: bool = True) -> list[Evaluation]:
        """The trainer's policy, labelled ``"<prefix> greedy"`` (and ``"<prefix> sampling"``)."""
        if not self.enabled:
            return []
        temperature = self.args.temperature
        return lm_evaluations(
            trainer.policy,
            prefix,
            self.env_id,
            self.env_kwargs,
            sampling=sampling,
            temperature=temperature,
            **self._common(),
        )

    def trivial(self) -> list[Evaluation]:
        """``copy-prompt`` and ``reference``: the floor to beat and the ceiling."""
        return trivial_evaluations(self.env_id, self.env_kwargs, **self._common()) if self.enabled else []

    def settings(self) -> dict[str, Any]:
        """What two runs' rows must share to be compared: env, env kwargs, split, prompts, seed, temperature."""
        args = self.args
        settings = {"env": self.env_id, "env_kwargs": self.env_kwargs, "split": args.eval_split}
        settings |= {"episodes": args.eval_episodes, "seed": args.seed, "temperature": args.temperature}
        return json.loads(json.dumps(settings, default=str))  # as results.json stores them

    def _common(self) -> dict[str, Any]:
        args, n = self.args, (None if self.args.eval_episodes < 0 else self.args.eval_episodes)
        return {"split": args.eval_split, "n_episodes": n, "seeds": [args.seed], "batch_size": args.n_envs}


@dataclass
class Run:
    """One segment of a run: its evaluations, the rows measured before RL, and ``results.json``.

    The rows measured before RL (:data:`BEFORE_RL`) are stored in ``results.json`` as soon as
    they exist, under ``before_rl`` with the evaluation settings; a resumed run shows them again
    when it evaluates with the same settings (``reused``), and carries them on either way.
    """

    args: argparse.Namespace
    out: Path
    evaluator: Evaluator
    evaluations: list[Evaluation] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)  # {"evaluation": settings, "rows": [...], "samples": {...}}
    reused: bool = False
    missing: str = ""  # why a resumed run has no untrained rows
    start_tokens: int = 0
    # With --eval-every: the selection whose best model the final rows measure.
    selection: ValidationSelection | None = None

    def before_rl(self, trainer: TrainerBase) -> None:
        """Measure (or, on ``--resume``, find) the untrained rows, and the trivial ones."""
        if not self.args.resume:
            self.evaluations = self.evaluator.policy(trainer, "untrained") + self.evaluator.trivial()
            self._store_before_rl(trainer)
            return
        self.evaluations = self.evaluator.trivial()
        # The first run's folder: --out, else the checkpoint's (interrupted.zip) or its parent's (checkpoints/).
        folders = [self.out, Path(self.args.resume).parent, Path(self.args.resume).parent.parent]
        self.before = next(filter(None, map(_previous_before_rl, folders)), {})
        stored = self.before.get("evaluation")
        self.reused = stored == self.evaluator.settings() and bool(self.before.get("rows"))
        if not self.evaluator.enabled or self.reused:
            return
        if not self.before:
            self.missing = f"no results.json from before RL in {self.out} or beside {self.args.resume}"
        else:
            differ = [k for k, v in self.evaluator.settings().items() if (stored or {}).get(k) != v]
            self.missing = f"the first run measured them with other evaluation settings ({', '.join(differ)})"

    def after_warm_start(self, trainer: TrainerBase) -> None:
        """Measure the warm-started model (greedy) and store it with the rows before RL."""
        self.evaluations += self.evaluator.policy(trainer, "supervised", sampling=False)
        self._store_before_rl(trainer)

    def _store_before_rl(self, trainer: TrainerBase) -> None:
        ours = [e for e in self.evaluations if e.label in BEFORE_RL]
        rows, samples = [e.row() for e in ours], {e.label: e.samples() for e in ours}
        self.before = {"evaluation": self.evaluator.settings(), "rows": rows, "samples": samples}
        if trainer._is_main:  # so that a resumed run has them, even if this one is interrupted
            results = self.results(trainer, 0.0, finished=False)
            atomic_write_text(self.out / "results.json", json.dumps(results, indent=2, default=str))

    def results(self, trainer: TrainerBase, seconds: float, *, finished: bool) -> dict[str, Any]:
        """What ``results.json`` holds: the arguments, the table's rows with margins, samples and the logs."""
        reused = self.before.get("rows", []) if self.reused else []
        rows = sorted(reused + [e.row() for e in self.evaluations], key=_row_order)
        if rows:
            add_margins(rows)
        env_id, env_kwargs = self.evaluator.env_id, self.evaluator.env_kwargs
        samples = dict(self.before.get("samples", {})) if self.reused else {}
        return {
            "args": vars(self.args),
            "env": env_id,
            "task": env_kwargs.get("task", gym.spec(env_id).kwargs.get("task")),
            "split": self.args.eval_split,
            "finished": finished,  # False: written before training, for the rows before RL
            "resumed_from": self.args.resume,
            "train_seconds": seconds,  # this segment's (warm start included)
            "train_tokens": trainer.num_timesteps - self.start_tokens,  # RL tokens of this segment
            "total_train_tokens": trainer.num_timesteps,  # since the run began
            "rows": rows,
            "samples": samples | {e.label: e.samples() for e in self.evaluations},
            "before_rl": self.before,
            "history": trainer.history,
            "supervised_history": trainer.supervised_history,
            **({"selection": self.selection.summary()} if self.selection is not None else {}),
        }


def _previous_before_rl(folder: Path) -> dict[str, Any]:
    """The ``before_rl`` record of an earlier segment's ``results.json`` in ``folder``, or ``{}``."""
    try:
        return json.loads((folder / "results.json").read_text()).get("before_rl") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def _row_order(row: dict[str, Any]) -> int:
    """Untrained, then trivial, then warm-started, then trained rows (a stable sort keeps each group's order)."""
    label = row["agent"]
    groups = [label.startswith("untrained"), label in ("copy-prompt", "reference"), label == "supervised greedy"]
    return groups.index(True) if any(groups) else len(groups)
