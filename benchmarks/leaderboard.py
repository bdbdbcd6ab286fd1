"""One leaderboard for agents and trainers: quality, diversity, speed and memory on TextGen tasks.

    python -m benchmarks.leaderboard --quick --out /tmp/lb          # tiny model, copy task: seconds
    python -m benchmarks.leaderboard                                # SmolLM2-135M: qa, copy, arithmetic
    python -m benchmarks.leaderboard --agents greedy sampling trained=ckpt:runs/train/model.zip \\
        --tasks qa my_data.jsonl --seeds 0 1 2 --readme README.md

Every agent plays the first ``--episodes`` prompts of each task's held-out split (``test``), one
episode per prompt (``reset(options={"index": i})``), so all agents answer the same prompts. Each
seed repeats that for the random and sampling agents (their generator and the envs seeded by it);
the deterministic ones play once (``--repeat-deterministic`` replays them). Episodes run through
``TextGenEnv``, ``--batch-size`` at a time with the agent's batched ``act`` (a finished row takes
the next prompt at once). The replies (``info["text"]``) and their references
(``info["references"]``) are then scored; see :data:`METRICS` for every column.

Agents (``[LABEL=]KIND[:MODEL]``): ``random``, ``greedy``, ``sampling``, ``beam`` and ``reference``
(:mod:`agents.baselines`), with ``--model`` or ``MODEL`` (a preset, a transformers folder, a saved
``LMActorCritic`` folder or a trainer's ``.zip``); ``ckpt:PATH`` is short for ``greedy:PATH``, a
trained checkpoint decoded greedily. Tasks: registered names (``qa``, ``copy``...) or ``.jsonl``
files. Each agent runs in its own process (``--isolate``, the default), so its memory is
measured from a clean start and its speed is not disturbed by what ran before.

Writes into ``--out``: ``results.json`` (every row and run, replies of a few prompts, git SHA,
machine, versions, arguments and the command), ``leaderboard.md`` and one ``bar_<metric>.png``
per metric with the spread over seeds as error bars, plus ``learning_curves.png`` from the
trainers' CSV logs (``--curves``, and any ``progress.csv`` next to a checkpoint). ``--readme``
puts the table, date, machine and command between ``<!-- leaderboard:start -->`` and
``<!-- leaderboard:end -->`` in that file. Every file is replaced atomically (:mod:`agents.atomic`).

Nothing is lost to a late failure: every run (agent, task, seed) is appended to
``<out>/runs.jsonl`` as soon as it finishes, and the next invocation reuses the runs there that
were played with the same settings (:data:`RESULT_ARGS`) instead of replaying them; ``--fresh``
replays everything. All arguments (agents, checkpoints and their tokenizer, tasks, ``--out``,
``--readme``) are checked before any agent plays.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from agents.atomic import atomic_write_text
from benchmarks import metrics
from benchmarks.common import (
    append_jsonl,
    atomic_output,
    check_section,
    git_sha,
    machine,
    markdown_table,
    parse_args,
    read_jsonl,
    replace_section,
    writable_folder,
)

KINDS = ("random", "greedy", "sampling", "beam", "copy-prompt", "reference", "ckpt")
LM_KINDS = ("greedy", "sampling", "beam", "ckpt")
# The rows a trained agent must beat: the untrained model and replying with the input.
TRIVIAL_KINDS = ("greedy", "sampling", "copy-prompt")
# Agents whose act() does not tie state to row positions: beam plans are keyed by the tokens so
# far, random keeps none. Rows with nothing left to play leave their batch (a finished row would
# make the beam agent plan a new reply at every step); the others keep row i = env i.
ROW_FREE_KINDS = ("random", "beam")
# The arguments a run's replies and figures depend on (with its agent spec, task and seed): a run
# in runs.jsonl is reused only when all of them match. Speed and memory also depend on the
# machine, --device and --threads, which a rerun in the same --out folder is assumed to keep.
RESULT_ARGS = ("model", "split", "episodes", "max_new_tokens", "batch_size", "temperature", "num_beams")

# key -> (column title, what it is). Quality and diversity come from the replies of all episodes
# of one seed; the table shows the mean and the standard deviation over seeds.
METRICS: dict[str, tuple[str, str]] = {
    "corpus_bleu": ("corpus BLEU", "sacrebleu corpus BLEU of all replies, in [0, 1] (text_gym.rewards.corpus_bleu)"),
    "bleu": ("BLEU", "mean sentence BLEU, in [0, 1] (the env's reward)"),
    "margin": (
        "margin",
        "BLEU minus the best BLEU of the untrained model (greedy, sampling) and copy-prompt on the task",
    ),
    "chrf": ("chrF", "mean sentence chrF, in [0, 1]"),
    "coherence": ("coherence", "mean MiniLM cosine similarity of prompt and reply, in [-1, 1]"),
    "length": ("length", "mean reply length in tokens, end-of-sequence excluded"),
    "distinct_1": ("distinct-1", "distinct unigrams / all unigrams of the replies' tokens (Li et al. 2016)"),
    "distinct_2": ("distinct-2", "distinct bigrams / all bigrams of the replies' tokens"),
    "repetition": (
        "repetition",
        "fraction of token n-grams (n = --repetition-n) that repeat an earlier one of the same reply",
    ),
    "episodes_per_s": ("episodes/s", "episodes per second of wall time, model loading excluded"),
    "tokens_per_s": ("tokens/s", "generated tokens (env steps) per second of wall time"),
    "peak_mb": (
        "peak MB",
        "peak memory above the process's level before the model loaded (weights, KV cache, "
        "activations): resident set size on CPU, torch's max_memory_allocated on CUDA",
    ),
}

# The preset that --quick fills in for every option not given on the command line.
QUICK = {
    "model": "tiny",
    "tasks": ["copy"],
    "seeds": [0, 1],
    "episodes": 4,
    "batch_size": 4,
    "max_new_tokens": 8,
    "coherence": False,
    "isolate": False,
    "threads": 1,
    "agents": ["random", "greedy", "sampling", "beam", "copy-prompt", "reference"],
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

    def __post_init__(self) -> None:
        for name in ("episodes", "batch_size", "num_beams", "repetition_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 0:
            raise ValueError(
                f"max_new_tokens must be a positive int, or 0 for the env's default, got {self.max_new_tokens!r}."
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}.")
        for name in ("agents", "tasks", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name}: expected at least one, got none.")
        for spec in map(AgentSpec.parse, self.agents):  # fail before any model loads or agent plays
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


# ---------------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak memory above the level at construction (before the agent's model loads), in MiB.

    - CPU: the process's resident set size (RSS), polled every 10 ms by a background thread
      (torch allocates outside Python's allocator, so ``tracemalloc`` would miss it). In a fresh
      process (``--isolate``) this is what the agent adds: weights, KV cache, activations. In a
      shared process, memory freed by earlier agents may be reused, so the figure is a lower bound.
    - CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, not the caching allocator's
      reserve or the CUDA context).
    """

    def __init__(self, device: str) -> None:
        import threading

        import torch

        from agents.modeling.loading import resolve_device

        self.cuda = resolve_device(device).type == "cuda"
        self.kind = "cuda max_memory_allocated" if self.cuda else "rss"
        self._stop = threading.Event()
        if self.cuda:
            self.baseline = torch.cuda.memory_allocated()
            return
        self.baseline = self._peak = _rss_bytes()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, _rss_bytes())

    def reset_peak(self) -> None:
        """Start a new window (the baseline stays)."""
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        else:
            self._peak = _rss_bytes()

    def peak_mb(self) -> float:
        """Peak of the current window minus the baseline, in MiB."""
        if self.cuda:
            import torch

            return (torch.cuda.max_memory_allocated() - self.baseline) / 2**20
        return (max(self._peak, _rss_bytes()) - self.baseline) / 2**20

    def stop(self) -> None:
        self._stop.set()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as file:  # Linux: pages; cheap enough to poll
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # elsewhere

        return int(psutil.Process().memory_info().rss)


# ---------------------------------------------------------------------------------- playing
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

    Reads only the archive's ``trainer.json``, not the weights, so every checkpoint can be
    checked before any agent plays.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            state = json.loads(archive.read("trainer.json"))
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(
            f"Expected a trainer checkpoint (a .zip with trainer.json, as trainers save) at {path}, "
            f"got a file that is not one ({error})."
        ) from error
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


def plan(args: Args, spec_text: str) -> list[tuple[str, int]]:
    """The (task, seed) runs of an agent: every seed, or the first only for a deterministic agent."""
    once = agent_class(AgentSpec.parse(spec_text).kind).deterministic and not args.repeat_deterministic
    return [(task, seed) for task in args.tasks for seed in (args.seeds[:1] if once else args.seeds)]


def evaluate_agent(
    args: Args, spec_text: str, todo: Sequence[tuple[str, int]] | None = None, log: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Play the (task, seed) runs ``todo`` (default: :func:`plan`) with one agent; return one raw run each.

    Memory is measured from before the model loads, so it counts weights, KV cache and
    activations (see :class:`PeakMemory`). With ``log``, each run is appended to it as it
    finishes (:func:`benchmarks.common.append_jsonl`), so a later failure does not lose it.
    """
    import numpy as np
    import torch

    from agents import evaluation

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = AgentSpec.parse(spec_text)
    import agents.baselines  # noqa: F401  (imports transformers: before the memory baseline, not in it)
    from text_gym.tokenization import load_tokenizer

    load_tokenizer(args.model)  # shared by the envs, loaded once per process
    if spec.kind in LM_KINDS:
        # The first model built in a process costs ~90 MB of one-off transformers/torch set-up,
        # whatever its size; pay it with the 90k-parameter model, outside the measurement.
        from agents.modeling.loading import build_tiny_model

        build_tiny_model()
    memory = PeakMemory(args.device)
    start = time.perf_counter()
    policy = load_policy(spec.model or args.model, args.device, args.model) if spec.kind in LM_KINDS else None
    load_seconds = time.perf_counter() - start
    runs = []
    factory = functools.partial(make_agent, spec, policy, args=args)
    for task, seed in plan(args, spec_text) if todo is None else todo:
        env_kwargs = {
            "task": task,
            "tokenizer": args.model,
            **({"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}),
        }
        common = {
            "split": args.split,
            "n_episodes": args.episodes,
            "batch_size": args.batch_size,
            "label": spec.label,
            "row_free": spec.kind in ROW_FREE_KINDS,
        }
        if not runs:  # one untimed episode first: lazy initialisation would count against the first seed
            evaluation.evaluate(factory, "TextGen-v0", env_kwargs, **{**common, "n_episodes": 1}, verbose=False)
        np.random.seed(seed)
        torch.manual_seed(seed)
        memory.reset_peak()
        result = evaluation.evaluate(factory, "TextGen-v0", env_kwargs, **common, seeds=[seed])
        run = {
            "agent": spec.label,
            "spec": spec_text,
            "task": _task_label(task),
            "seed": seed,
            "seconds": result.seconds[0],
            "load_seconds": load_seconds,
            "peak_mb": memory.peak_mb(),
            "memory": memory.kind,
            "episodes": result.episodes[0],
        }
        if log is not None:
            append_jsonl(log, {"key": run_key(args, spec_text, task, seed), "run": run})
        runs.append(run)
        gc.collect()
    memory.stop()
    return runs


def _task_label(task: str) -> str:
    return Path(task).stem if task.endswith(".jsonl") else task


def run_key(args: Args, spec_text: str, task: str, seed: int) -> dict[str, Any]:
    """What a run's results depend on: agent spec, task, seed, :data:`RESULT_ARGS` and the files used."""
    key = {"spec": spec_text, "task": task, "seed": seed, **{name: getattr(args, name) for name in RESULT_ARGS}}
    key["temperature"] = float(key["temperature"])  # 1 and 1.0 play the same
    # A checkpoint retrained or a task file edited since plays differently: their size and mtime tell.
    paths = (AgentSpec.parse(spec_text).model, task)
    key["files"] = {p: f"{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}" for p in paths if p and Path(p).is_file()}
    return key


def finished_runs(log: str | os.PathLike[str], fresh: bool) -> dict[str, dict[str, Any]]:
    """The runs of ``log`` (``runs.jsonl``) by :func:`run_key` in JSON; none, and ``log`` emptied, when ``fresh``."""
    if fresh:
        atomic_write_text(log, "")
        return {}
    return {_key_text(r["key"]): r["run"] for r in read_jsonl(log) if "key" in r and "run" in r}


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def run_agents(args: Args, log: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every agent's raw runs, each agent in a fresh process when ``args.isolate``.

    With ``log`` (``<out>/runs.jsonl``), each run is appended to it as it finishes, and the runs
    already there with the same :func:`run_key` are reused instead of replayed (all are
    replayed, and the log overwritten, with ``args.fresh``).

    Raises:
        DatasetError, FileNotFoundError, UnknownNameError: A task is unknown, missing or has an
            empty split; checked for every task before any agent plays.
        ValueError: A checkpoint was trained with another tokenizer than ``args.model``, or is
            not a trainer's ``.zip``; checked before any agent plays.
    """
    from text_gym.tasks import make_task

    for task in args.tasks:
        make_task(task, args.split)
    for spec in map(AgentSpec.parse, args.agents):
        if spec.model and spec.model.endswith(".zip"):
            check_tokenizer(spec.model, checkpoint_tokenizer(spec.model), args.model)
    done = finished_runs(log, args.fresh) if log is not None else {}
    runs: list[dict[str, Any]] = []
    for spec in args.agents:
        todo = plan(args, spec)
        kept = {pair: done[key] for pair in todo if (key := _key_text(run_key(args, spec, *pair))) in done}
        missing = [pair for pair in todo if pair not in kept]
        if kept:
            print(
                f"[leaderboard] {spec}: skipped {_runs_text(kept)}, already in {log} (--fresh replays them)", flush=True
            )
        if missing:
            print(f"[leaderboard] {spec}: playing {_runs_text(missing)}", flush=True)
        played = dict(zip(missing, _play(args, spec, missing, log) if missing else [], strict=True))
        runs += [kept[pair] if pair in kept else played[pair] for pair in todo]
    return runs


def _runs_text(pairs: Sequence[tuple[str, int]]) -> str:
    return f"{len(pairs)} run(s): " + ", ".join(f"{_task_label(task)} seed {seed}" for task, seed in pairs)


def _play(
    args: Args, spec: str, todo: list[tuple[str, int]], log: str | os.PathLike[str] | None
) -> list[dict[str, Any]]:
    if not args.isolate:
        return evaluate_agent(args, spec, todo, log)
    # The child appends to the log: agents play one at a time, so only one process writes it.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(evaluate_agent, args, spec, todo, log).result()


# ---------------------------------------------------------------------------------- scoring
def score_run(run: dict[str, Any], coherence: bool, repetition_n: int) -> dict[str, float]:
    """The metrics of one run (one agent, task and seed); see :data:`METRICS`."""
    from agents.evaluation import score_episodes
    from text_gym.rewards import Coherence, corpus_bleu

    episodes = run["episodes"]
    texts = [e["text"] for e in episodes]
    refs = [e["references"] for e in episodes]
    tokens = [e["tokens"] for e in episodes]
    steps = sum(e["steps"] for e in episodes)
    shared = score_episodes(episodes)  # the evaluator's figures, the same as every other report's
    scores = {
        "corpus_bleu": corpus_bleu(texts, refs),
        "bleu": shared["bleu"],
        "margin": float("nan"),  # filled per task by summarize
        "chrf": shared["chrf"],
        "coherence": float(Coherence()([e["prompt"] for e in episodes], texts, refs).mean())
        if coherence
        else float("nan"),
        "length": sum(map(len, tokens)) / len(tokens),
        "distinct_1": metrics.distinct_n(tokens, 1),
        "distinct_2": metrics.distinct_n(tokens, 2),
        "repetition": metrics.repetition_rate(tokens, repetition_n),
        "episodes_per_s": len(episodes) / run["seconds"],
        "tokens_per_s": steps / run["seconds"],
        "peak_mb": run["peak_mb"],
    }
    return {key: float(value) for key, value in scores.items()}


def summarize(runs: list[dict[str, Any]], args: Args) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(rows, per_seed)``: one row per (task, agent) with ``<metric>`` and ``<metric>_std`` over seeds."""
    per_seed = []
    for run in runs:
        per_seed.append(
            {
                "task": run["task"],
                "agent": run["agent"],
                "seed": run["seed"],
                "episodes": len(run["episodes"]),
                **score_run(run, args.coherence, args.repetition_n),
            }
        )
    rows = []
    keys = list(dict.fromkeys((r["task"], r["agent"]) for r in per_seed))
    for task, agent in sorted(keys, key=lambda k: [_task_label(t) for t in args.tasks].index(k[0])):
        group = [r for r in per_seed if (r["task"], r["agent"]) == (task, agent)]
        row: dict[str, Any] = {"task": task, "agent": agent, "seeds": len(group), "episodes": group[0]["episodes"]}
        for key in METRICS:
            row[key], row[f"{key}_std"] = metrics.mean_std([r[key] for r in group])
        rows.append(row)
    _add_margins(rows, args)
    return rows, per_seed


def _add_margins(rows: list[dict[str, Any]], args: Args) -> None:
    """Each row's BLEU minus the best trivial row of its task (NaN when the task has no trivial agent)."""
    trivial = {
        spec.label for spec in map(AgentSpec.parse, args.agents) if spec.kind in TRIVIAL_KINDS and spec.model is None
    }
    for task in {row["task"] for row in rows}:
        best = [row["bleu"] for row in rows if row["task"] == task and row["agent"] in trivial]
        for row in rows:
            if row["task"] == task:
                row["margin"], row["margin_std"] = (row["bleu"] - max(best) if best else float("nan")), 0.0


def table(rows: list[dict[str, Any]], coherence: bool = True) -> str:
    """The markdown leaderboard: ``mean ± std`` over seeds for every metric."""
    shown = [k for k in METRICS if coherence or k != "coherence"]
    formatted = []
    for row in rows:
        cells = {"task": row["task"], "agent": row["agent"]}
        for key in shown:
            digits = 0 if key in ("peak_mb", "tokens_per_s") else 1 if key in ("length", "episodes_per_s") else 3
            mean, std = row[key], row[f"{key}_std"]
            if mean is None or mean != mean:  # NaN, or null in a results.json
                cells[METRICS[key][0]] = "n/a"
                continue
            cells[METRICS[key][0]] = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if row["seeds"] > 1 else "")
        formatted.append(cells)
    return markdown_table(formatted, ["task", "agent"] + [METRICS[k][0] for k in shown])


# ---------------------------------------------------------------------------------- outputs
def write_outputs(
    args: Args,
    rows: list[dict[str, Any]],
    per_seed: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    command: str,
    seconds: float,
) -> dict[str, Any]:
    """Write ``results.json``, ``leaderboard.md`` and the PNG plots into ``args.out``; return the JSON."""
    import datetime as dt

    out = Path(args.out)
    samples = [
        {"task": r["task"], "agent": r["agent"], **{k: e[k] for k in ("prompt", "text", "references")}}
        for r in runs
        if r["seed"] == args.seeds[0]
        for e in r["episodes"][:3]
    ]
    report = {
        "benchmark": "leaderboard",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "machine": machine(),
        "args": dataclasses.asdict(args),
        "command": command,
        "seconds": seconds,
        "metrics": {k: v[1] for k, v in METRICS.items()},
        "rows": rows,
        "per_seed": per_seed,
        "samples": samples,
    }
    atomic_write_text(out / "results.json", json.dumps(_finite(report), indent=2, default=str))
    render(args, report)
    return report


def render(args: Args, report: dict[str, Any]) -> None:
    """Write ``leaderboard.md`` and the PNG plots of ``report`` into ``args.out``."""
    from benchmarks import plots

    out, rows = Path(args.out), report["rows"]
    md = header(report) + "\n\n" + table(rows, args.coherence) + "\n\n" + legend(args) + "\n"
    atomic_write_text(out / "leaderboard.md", md)
    for key, (title, _) in METRICS.items():
        if key != "coherence" or args.coherence:
            with atomic_output(out / f"bar_{key}.png") as tmp:
                plots.bar_chart(
                    rows,
                    key,
                    tmp,
                    label=title,
                    log=key in ("episodes_per_s", "tokens_per_s"),
                    title=f"{title} ({args.model}, {args.split} split)",
                )
    curves = {Path(p).parent.name: p for p in args.curves}
    for spec in map(AgentSpec.parse, args.agents):
        log = Path(spec.model).parent / "progress.csv" if spec.model else None
        if log is not None and log.is_file():
            curves.setdefault(spec.label, str(log))
    if curves:
        with atomic_output(out / "learning_curves.png") as tmp:
            plots.learning_curves(curves, tmp)


def _finite(value: Any) -> Any:
    """``value`` with NaN floats replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def header(report: dict[str, Any]) -> str:
    """One line of provenance: date, commit, machine, and the command that made the table."""
    m = report["machine"]
    where = f"{m['processor']}, {m['cpu_count']} cores" + (f", {m['gpu']}" if m.get("gpu") else "")
    return (
        f"_{report['date'][:10]} · commit {report['git_sha']} · {where} · torch {m['torch']} · "
        f"{report['seconds'] / 60:.1f} min_\n\n`{report['command']}`"
    )


def legend(args: Args) -> str:
    """What the rows and columns mean, for the markdown file."""
    if args.repeat_deterministic:
        seeds = "every agent plays every seed (the deterministic ones give the same replies each time)"
    else:
        seeds = (
            f"the deterministic agents (greedy, beam, copy-prompt, reference, trained) play once, with seed {args.seeds[0]}, "
            "since their replies do not depend on it"
        )
    lines = [
        f"Model `{args.model}`; the first {args.episodes} prompts of each task's `{args.split}` split; replies of at "
        f"most {args.max_new_tokens or 'the env default of 32'} tokens for every agent (the reference ceiling included), {args.batch_size} episodes at a time"
        + ("; each agent in its own process" if args.isolate else "")
        + f". Mean ± standard deviation over seeds {args.seeds} for random and sampling; {seeds}."
    ]
    lines += [
        f"- **{title}**: {text}." for key, (title, text) in METRICS.items() if args.coherence or key != "coherence"
    ]
    return "\n".join(lines)


def update_readme(path: str, args: Args, report: dict[str, Any]) -> None:
    """Replace the README's leaderboard section with this run's table, provenance and chart."""
    readme = Path(path)
    chart = Path(args.out) / "bar_bleu.png"
    try:
        link = chart.resolve().relative_to(readme.resolve().parent)
        image = f"\n\n![Mean sentence BLEU per task and agent]({link.as_posix()})"
    except ValueError:
        image = ""  # the output folder is outside the README's tree: no relative link
    body = header(report) + "\n\n" + table(report["rows"], args.coherence) + "\n\n" + legend(args) + image
    replace_section(readme, "leaderboard", body)


def check_outputs(args: Args) -> None:
    """Check, before anything plays, that ``--out`` is a writable folder and ``--readme`` has its markers.

    Raises:
        ValueError: ``--out`` is a file or cannot be written, or ``--readme`` is missing or
            lacks ``<!-- leaderboard:start -->`` and ``<!-- leaderboard:end -->``.
    """
    writable_folder(args.out)
    if args.readme:
        check_section(args.readme, "leaderboard")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(Args, argv, description=__doc__.splitlines()[0])
    if args.render:
        path = Path(args.render)
        report = json.loads((path / "results.json" if path.is_dir() else path).read_text())
        played = Args(
            **{
                **report["args"],
                "out": str(path if path.is_dir() else path.parent),
                "readme": args.readme,
                "render": "",
            }
        )
        check_outputs(played)
        render(played, report)
        if args.readme:
            update_readme(args.readme, played, report)
        return report
    if args.quick:  # the preset fills what the command line did not set
        given = {a.split("=")[0].lstrip("-").replace("-", "_").removeprefix("no_") for a in argv if a.startswith("--")}
        args = dataclasses.replace(args, **{k: v for k, v in QUICK.items() if k not in given})
    command = "python -m benchmarks.leaderboard " + shlex.join(argv)
    check_outputs(args)
    start = time.perf_counter()
    runs = run_agents(args, log=Path(args.out) / "runs.jsonl")
    rows, per_seed = summarize(runs, args)
    report = write_outputs(args, rows, per_seed, runs, command, time.perf_counter() - start)
    if args.readme:
        update_readme(args.readme, args, report)
    print(table(rows, args.coherence))
    print(
        f"[leaderboard] wrote {args.out}/results.json, leaderboard.md, plots and runs.jsonl in {report['seconds']:.0f} s"
    )
    return report


if __name__ == "__main__":
    main()
