"""The leaderboard's arguments (:class:`Args`, the ``--quick`` preset) and how it names agents and tasks.

Run the leaderboard with ``python -m benchmarks.leaderboard``; see :mod:`benchmarks.leaderboard`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import check_positive_int_or_zero, check_positive_ints
from text_gym.errors import check_finite, check_non_negative_int

KINDS = ("random", "greedy", "sampling", "beam", "copy-prompt", "reference", "ckpt")
LM_KINDS = ("greedy", "sampling", "beam", "ckpt")

# The preset that --quick fills in for every option not given on the command line.
QUICK = {
    "model": "tiny",
    "tasks": ["copy"],
    "seeds": [0, 1],
    "episodes": 4,
    "batch_size": 4,
    "max_new_tokens": 48,  # room for the whole copy reply in bytes, so the reference row reaches its ceiling
    "coherence": False,
    "isolate": False,
    "threads": 1,
    "agents": ["random", "greedy", "sampling", "beam", "copy-prompt", "reference"],
    "out": "runs/leaderboard-quick",  # never over the committed results in benchmarks/results/
}


@dataclass
class Args:
    """Arguments of the leaderboard."""

    agents: list = field(
        default_factory=lambda: ["random", "greedy", "sampling", "beam", "copy-prompt", "reference"],
        metadata={
            "help": "agent specs [LABEL=]KIND[:MODEL]: random, greedy, sampling, beam, copy-prompt, "
            "reference, ckpt:PATH"
        },
    )
    tasks: list = field(
        default_factory=lambda: ["qa", "translate-fr", "copy", "arithmetic"],
        metadata={"help": "task names or .jsonl files"},
    )
    seeds: list = field(
        default_factory=lambda: [0, 1], metadata={"help": "seeds; quality and speed are averaged over them"}
    )
    episodes: int = field(default=40, metadata={"help": "prompts per task: the first N of the split"})
    model: str = field(default="smollm2-135m", metadata={"help": "model preset or folder; also the envs' tokenizer"})
    split: str = field(default="test", metadata={"help": "task split to evaluate on (held out from training)"})
    max_new_tokens: int = field(default=0, metadata={"help": "reply budget (0: the env's default, as training uses)"})
    batch_size: int = field(default=16, metadata={"help": "episodes played at once (envs per batched act)"})
    temperature: float = field(default=1.0, metadata={"help": "temperature of the sampling agent"})
    num_beams: int = field(default=4, metadata={"help": "beam width of the beam agent"})
    repeat_deterministic: bool = field(
        default=False,
        metadata={
            "help": "replay greedy, beam, reference and trained agents for every seed (same replies; only speed varies)"
        },
    )
    coherence: bool = field(default=True, metadata={"help": "score coherence (loads MiniLM, a few seconds)"})
    repetition_n: int = field(default=2, metadata={"help": "n-gram order of the repetition rate"})
    isolate: bool = field(
        default=True, metadata={"help": "run each agent in a fresh process (clean memory and speed figures)"}
    )
    device: str = field(default="auto", metadata={"help": "where the agents run: auto, cpu, cuda"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    curves: list = field(
        default_factory=list, metadata={"help": "trainer CSV logs (progress.csv) to plot as learning curves"}
    )
    readme: str = field(default="", metadata={"help": "file whose leaderboard markers receive the table ('' to skip)"})
    out: str = field(default="benchmarks/results/leaderboard", metadata={"help": "output folder"})
    render: str = field(
        default="",
        metadata={
            "help": "play nothing: redraw leaderboard.md, the plots and --readme from this results.json (or its folder)"
        },
    )
    quick: bool = field(default=False, metadata={"help": f"CI-sized run; fills options not given: {QUICK}"})
    fresh: bool = field(
        default=False,
        metadata={"help": "replay every run, ignoring and overwriting the finished runs in <out>/runs.jsonl"},
    )
    debug: bool = field(
        default=False, metadata={"help": "show the traceback of a user error instead of one 'error:' line"}
    )

    def __post_init__(self) -> None:
        check_positive_ints(self, "episodes", "batch_size", "num_beams", "repetition_n")
        check_positive_int_or_zero("max_new_tokens", self.max_new_tokens, "the env's default")
        check_positive_int_or_zero("threads", self.threads, "torch's default")
        check_finite("temperature", self.temperature, positive=True)
        for seed in self.seeds:
            check_non_negative_int("seeds", seed)
        for name in ("agents", "tasks", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name}: expected at least one, got none.")
        specs = [AgentSpec.parse(agent) for agent in self.agents]  # fail before any model loads or agent plays
        labels = [spec.label for spec in specs]
        shared = sorted({label for label in labels if labels.count(label) > 1})
        if shared:
            raise ValueError(
                f"agents: expected one agent per label, got {len(labels) - len(set(labels))} repeated label(s) "
                f"{shared} (their rows would merge). Name each one: LABEL=KIND[:MODEL], e.g. a=greedy b=greedy:path."
            )
        for spec in specs:
            if spec.model and spec.model.endswith(".zip") and not Path(spec.model).is_file():
                raise ValueError(
                    f"Agent spec {spec.label!r}: expected a trainer checkpoint at {spec.model}, found no such file."
                )


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent spec: ``[LABEL=]KIND[:MODEL]``."""

    label: str
    kind: str
    model: str | None = None

    @classmethod
    def parse(cls, spec: str) -> AgentSpec:
        """Parse ``"greedy"``, ``"beam:/path/model"``, ``"ckpt:runs/x/model.zip"`` or ``"trained=ckpt:..."``.

        >>> AgentSpec.parse("trained=ckpt:runs/grpo/model.zip")
        AgentSpec(label='trained', kind='greedy', model='runs/grpo/model.zip')
        >>> AgentSpec.parse("beam").label
        'beam'
        """
        label, _, body = spec.partition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
        kind, _, model = body.partition(":")
        if kind not in KINDS:
            raise ValueError(
                f"Agent spec {spec!r}: expected a kind in {list(KINDS)} ([LABEL=]KIND[:MODEL]), got {kind!r}."
            )
        if kind == "ckpt" and not model:
            raise ValueError(f"Agent spec {spec!r}: ckpt needs a path, e.g. ckpt:runs/train/model.zip.")
        if model and kind not in LM_KINDS:
            raise ValueError(f"Agent spec {spec!r}: {kind} takes no model, got {model!r}.")
        if not label:
            label = body if kind != "ckpt" else f"trained ({_short(model)})"
        return cls(label, "greedy" if kind == "ckpt" else kind, model or None)


def _short(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def task_label(task: str) -> str:
    """A task's name in the table: a registered name as is, a ``.jsonl`` file by its stem.

    >>> task_label("data/my_task.jsonl"), task_label("qa")
    ('my_task', 'qa')
    """
    return Path(task).stem if task.endswith(".jsonl") else task
