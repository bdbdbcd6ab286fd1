"""The leaderboard's runs: one agent plays its (task, seed) runs, with its peak memory, keyed for reuse.

Episodes are played only by :func:`agents.evaluation.evaluate`, the loop behind every report.
A run is one agent, task and seed; its key (:func:`run_key`) says which settings it was played
with, so ``<out>/runs.jsonl`` can hand it to a later invocation instead of replaying it.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.atomic import atomic_write_text
from benchmarks.common import append_jsonl, read_jsonl, rss_bytes, set_threads
from benchmarks.leaderboard_agents import ROW_FREE_KINDS, agent_class, load_policy, make_agent
from benchmarks.leaderboard_args import LM_KINDS, AgentSpec, Args, task_label

# The arguments a run's replies and figures depend on (with its agent spec, task and seed): a run
# in runs.jsonl is reused only when all of them match. Speed and memory also depend on the
# device and the CPU threads, which run_key adds as resolved here; the machine itself is assumed
# to stay the same within one --out folder.
RESULT_ARGS = ("model", "split", "episodes", "max_new_tokens", "batch_size", "temperature", "num_beams")


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
        import torch

        from agents.modeling.loading import resolve_device

        self.cuda = resolve_device(device).type == "cuda"
        self.kind = "cuda max_memory_allocated" if self.cuda else "rss"
        self._stop = threading.Event()
        if self.cuda:
            self.baseline = torch.cuda.memory_allocated()
            return
        self.baseline = self._peak = rss_bytes()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, rss_bytes())

    def reset_peak(self) -> None:
        """Start a new window (the baseline stays)."""
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        else:
            self._peak = rss_bytes()

    def peak_mb(self) -> float:
        """Peak of the current window minus the baseline, in MiB."""
        if self.cuda:
            import torch

            return (torch.cuda.max_memory_allocated() - self.baseline) / 2**20
        return (max(self._peak, rss_bytes()) - self.baseline) / 2**20

    def stop(self) -> None:
        self._stop.set()


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
    set_threads(args.threads)
    spec = AgentSpec.parse(spec_text)
    _pay_one_off_costs(args, spec)
    memory = PeakMemory(args.device)
    try:
        start = time.perf_counter()
        policy = load_policy(spec.model or args.model, args.device, args.model) if spec.kind in LM_KINDS else None
        load_seconds = time.perf_counter() - start
        factory = functools.partial(make_agent, spec, policy, args=args)
        runs: list[dict[str, Any]] = []
        for task, seed in plan(args, spec_text) if todo is None else todo:
            # One untimed episode first: lazy initialisation would count against the first seed.
            result = play_run(args, spec, factory, task, seed, memory, warm_up=not runs)
            run = {
                "agent": spec.label,
                "spec": spec_text,
                "task": task_label(task),
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
    finally:
        memory.stop()
    return runs


def _pay_one_off_costs(args: Args, spec: AgentSpec) -> None:
    # Set-up that every agent pays once per process, kept out of the memory baseline and the timing.
    import agents.baselines  # noqa: F401  (imports transformers)
    from text_gym.tokenization import load_tokenizer

    load_tokenizer(args.model)  # shared by the envs, loaded once per process
    if spec.kind in LM_KINDS:
        # The first model built in a process costs ~90 MB of one-off transformers/torch set-up,
        # whatever its size; pay it with the 90k-parameter model, outside the measurement.
        from agents.modeling.loading import build_tiny_model

        build_tiny_model()


def play_run(
    args: Args,
    spec: AgentSpec,
    factory: Callable[[list[Any], int], Any],
    task: str,
    seed: int,
    memory: PeakMemory,
    warm_up: bool = False,
) -> Any:
    """Play one (task, seed) run with :func:`agents.evaluation.evaluate`; return its ``Evaluation``.

    ``memory`` starts a new window just before the timed episodes; with ``warm_up``, one untimed
    episode is played first.
    """
    import numpy as np
    import torch

    from agents import evaluation

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
    if warm_up:
        evaluation.evaluate(factory, "TextGen-v0", env_kwargs, **{**common, "n_episodes": 1}, verbose=False)
    np.random.seed(seed)
    torch.manual_seed(seed)
    memory.reset_peak()
    return evaluation.evaluate(factory, "TextGen-v0", env_kwargs, **common, seeds=[seed])


def run_key(args: Args, spec_text: str, task: str, seed: int) -> dict[str, Any]:
    """What a run's results depend on: agent spec, task, seed, :data:`RESULT_ARGS`, device, threads and the files used.

    Files and folders (a task file, a checkpoint, a model folder) count by a SHA-256 of their
    content, not their modification time: replaced weights replay, a copy or a ``touch`` does not.
    """
    import torch

    from agents.modeling.loading import resolve_device

    key = {"spec": spec_text, "task": task, "seed": seed, **{name: getattr(args, name) for name in RESULT_ARGS}}
    key["temperature"] = float(key["temperature"])  # 1 and 1.0 play the same
    key["device"] = str(resolve_device(args.device))  # "auto" as it resolves on this machine
    key["threads"] = args.threads or torch.get_num_threads()  # 0: torch's default, here
    paths = (AgentSpec.parse(spec_text).model, task, args.model)
    key["files"] = {p: content_hash(p) for p in dict.fromkeys(paths) if p and Path(p).exists()}
    return key


def content_hash(path: str | os.PathLike[str]) -> str:
    """A SHA-256 of a file's bytes, or of a folder's files (relative paths and bytes, in sorted order)."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(root).as_posix()}\0".encode())
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        digest.update(_file_sha256(str(file.resolve()), stamp).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, stamp: tuple[int, ...]) -> str:
    # Memoised within a process (each run of each agent keys the same model folder). The stamp
    # only decides when to read again (the change time, which a copy or utime cannot set back,
    # is in it); the key holds the content's hash.
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def key_text(key: dict[str, Any]) -> str:
    """A :func:`run_key` as the text that :func:`finished_runs` indexes by."""
    return json.dumps(key, sort_keys=True)


def finished_runs(log: str | os.PathLike[str], fresh: bool) -> dict[str, dict[str, Any]]:
    """The runs of ``log`` (``runs.jsonl``) by :func:`key_text`; none, and ``log`` emptied, when ``fresh``."""
    if fresh:
        atomic_write_text(log, "")
        return {}
    return {key_text(r["key"]): r["run"] for r in read_jsonl(log) if "key" in r and "run" in r}
