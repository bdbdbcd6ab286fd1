"""One evaluation path for every report: agents play a task's held-out split through TextGen envs.

The command line's before/after table (``python -m agents.train``), ``benchmarks.learning``, the
leaderboard and the demo all call :func:`evaluate`, so one agent on one split gives one figure
whichever report asks::

    from agents.baselines import CopyPromptAgent, GreedyLMAgent
    from agents.evaluation import evaluate

    greedy = evaluate(lambda envs, seed: GreedyLMAgent("smollm2-135m"), "TextGen-v0", split="test")
    copy = evaluate(lambda envs, seed: CopyPromptAgent(envs), "TextGen-v0", split="test")
    greedy.metrics["bleu"], copy.metrics["bleu"]

Each prompt of the split (or its first ``n_episodes``) is played once per seed, in order
(``reset(options={"index": i})``), ``batch_size`` episodes at a time with the agent's batched
``act``. The episodes' replies are scored by the env itself (its reward components, as training
saw them) and, whatever the training reward, by sentence BLEU and chrF against the references,
so every report can state BLEU. Deterministic agents (greedy, beam, copy-prompt, reference) play
only the first seed, and the log says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baselines.base import Agent
from agents.baselines.lm import GreedyLMAgent, SamplingLMAgent
from agents.baselines.scripted import CopyPromptAgent, ReferenceAgent
from text_gym.errors import check_positive_int

__all__ = [
    "TRIVIAL_LABELS",
    "Evaluation",
    "add_margins",
    "evaluate",
    "lm_evaluations",
    "make_eval_envs",
    "play",
    "run_episodes",
    "score_episodes",
    "trivial_evaluations",
]

AgentFactory = Callable[[list[gym.Env], int], Agent]
"""Builds the agent for one seed, given the envs it plays (scripted agents read their tasks)."""

TRIVIAL_LABELS: tuple[str, ...] = ("untrained greedy", "untrained sampling", "copy-prompt")
"""The rows a trained agent must beat: the model before training, and replying with the input."""


@dataclass
class Evaluation:
    """What one agent scored on one split.

    Attributes:
        label: The agent's name in reports.
        env_id: The env id played (``"TextGen-v0"``...).
        task: The task as given to the env (a name, a ``.jsonl`` path or a mapping of files), as text.
        split: The split played.
        seeds: The seeds actually played (one for a deterministic agent).
        metrics: Mean over seeds of each score: the env's reward components and ``"reward"``,
            and ``"bleu"``, ``"chrf"`` and ``"length"`` (reply tokens, end-of-sequence included).
        metrics_std: Standard deviation over seeds of each metric (0 with one seed).
        episodes: Per seed, the episodes in prompt order (``index``, ``prompt``, ``source``,
            ``text``, ``references``, ``scores``, ``tokens``, ``steps``, and ``return``, the sum
            of the env's rewards).
        seconds: Per seed, the wall time of playing.
    """

    label: str
    env_id: str
    task: str
    split: str
    seeds: list[int]
    metrics: dict[str, float]
    metrics_std: dict[str, float]
    episodes: list[list[dict[str, Any]]] = field(repr=False)
    seconds: list[float] = field(repr=False)

    def row(self, metric: str = "bleu") -> dict[str, Any]:
        """A flat report row: label, task, split, episodes, seeds and every metric."""
        return {
            "agent": self.label,
            "task": self.task,
            "split": self.split,
            "episodes": len(self.episodes[0]),
            "seeds": len(self.seeds),
            **self.metrics,
            f"{metric}_std": self.metrics_std.get(metric, 0.0),
        }

    def per_prompt(self, metric: str = "bleu") -> np.ndarray:
        """Each prompt's score, ``(seeds, prompts)`` in prompt order, for paired comparisons of agents.

        ``"bleu"`` and ``"chrf"`` are scored against the references, as in :func:`score_episodes`
        (so a row's mean is ``metrics[metric]`` for one seed); any other name is an env score (``"reward"``).
        """
        from text_gym.rewards import sentence_bleu, sentence_chrf

        scorers = {"bleu": sentence_bleu, "chrf": sentence_chrf}
        rows = []
        for episodes in self.episodes:
            if metric in scorers:
                texts, refs = [e["text"] for e in episodes], [e["references"] for e in episodes]
                rows.append(np.asarray(scorers[metric](texts, refs), dtype=float))
            else:
                rows.append(np.array([e["scores"][metric] for e in episodes], dtype=float))
        return np.stack(rows)

    def samples(self, n: int = 3) -> list[tuple[str, str, float]]:
        """The first ``n`` ``(prompt, reply, reward)`` of the first seed."""
        return [(e["prompt"], e["text"], e["scores"].get("reward", float("nan"))) for e in self.episodes[0][:n]]


def make_eval_envs(env_id: str, env_kwargs: Mapping[str, Any] | None, split: str, n: int) -> list[gym.Env]:
    """``n`` envs of ``env_id`` on ``split``, built with ``gym.make`` so registered defaults apply."""
    kwargs = {**(env_kwargs or {}), "split": split}
    return [gym.make(env_id, **kwargs) for _ in range(n)]


def play(
    agent: Agent,
    envs: Sequence[gym.Env],
    indices: Sequence[int],
    seed: int,
    deterministic: bool,
    row_free: bool = False,
) -> tuple[list[dict[str, Any]], float]:
    """Play one episode per task index, ``len(envs)`` at a time with batched ``agent.act``.

    By default a row whose episode ends takes the next index at once, and once no index is left
    it keeps its last observation in the batch (its actions are ignored), so that row ``i`` stays
    env ``i`` for agents that keep per-row state (the KV cache, the scripted agents). With
    ``row_free`` (agents whose state does not depend on row positions), finished rows leave the
    batch and all rows start together, in waves, so that beam search plans a whole batch of
    replies in one ``generate`` call instead of one reply per call.

    Returns:
        The episodes in ``indices`` order and the wall time in seconds; see :class:`Evaluation`.
    """
    todo = iter(enumerate(indices))
    obs: list[Any] = [None] * len(envs)
    playing: list[tuple[int, int]] = [(-1, -1)] * len(envs)  # (position in indices, task index) of each row
    returns = [0.0] * len(envs)
    live = [False] * len(envs)
    episodes: dict[int, dict[str, Any]] = {}

    def start(row: int, first: bool) -> None:
        position, index = next(todo, (None, None))
        if index is None:
            live[row] = False
            return
        obs[row], info = envs[row].reset(seed=seed * 1000 + row if first else None, options={"index": int(index)})
        agent.reset([info], rows=[row])
        live[row], playing[row], returns[row] = True, (position, int(index)), 0.0

    begin = time.perf_counter()
    for row in range(len(envs)):
        start(row, first=True)
    masks = np.stack([env.unwrapped.action_masks() for env in envs])
    while any(live):
        rows = [row for row in range(len(envs)) if live[row] or not row_free]
        batch = {key: np.stack([obs[row][key] for row in rows]) for key in obs[0]}  # (B, S)
        actions = dict(zip(rows, agent.act(batch, masks[rows], deterministic), strict=True))
        for row, env in enumerate(envs):
            if not live[row]:
                continue
            obs[row], reward, terminated, truncated, info = env.step(int(actions[row]))
            returns[row] += float(reward)
            if terminated or truncated:
                live[row] = False
                position, index = playing[row]
                episodes[position] = _episode(env.unwrapped, index, info, terminated, returns[row])
                if not row_free:
                    start(row, first=False)
        if row_free and not any(live):
            for row in range(len(envs)):
                start(row, first=False)
    seconds = time.perf_counter() - begin
    return [episodes[position] for position in range(len(indices))], seconds


def _episode(env: Any, index: int, info: dict[str, Any], terminated: bool, total: float) -> dict[str, Any]:
    ids = env.reply_ids()
    sample = env.task[index]
    return {
        "index": index,
        "prompt": sample.prompt,
        "source": sample.source,
        "text": info["text"],
        "references": list(sample.references),
        "scores": {name: float(value) for name, value in info["scores"].items()},
        "tokens": (ids[:-1] if terminated else ids).tolist(),
        "steps": len(ids),
        "return": total,
    }


def run_episodes(
    env: gym.Env,
    agent: Agent,
    n_episodes: int,
    seed: int | None = None,
    deterministic: bool = True,
    use_masks: bool | None = None,
) -> list[dict[str, Any]]:
    """Play ``n_episodes`` episodes of one env on prompts drawn from its task with ``seed``.

    The same loop as :func:`evaluate` (:func:`play`), for a quick look at an agent on any env.
    ``seed`` draws the prompts and seeds the env's first reset (0 when None). ``use_masks`` is
    accepted for 0.1 callers and ignored: the agent always gets the env's action masks.

    Returns:
        One dict per episode: ``"return"`` (the sum of the env's rewards), ``"length"`` (steps),
        and the episode's ``"index"``, ``"prompt"``, ``"text"``, ``"references"`` and ``"scores"``.

    Raises:
        ValueError: ``n_episodes`` is not a positive int.
    """
    check_positive_int("n_episodes", n_episodes)
    del use_masks  # 0.1's switch; play() always passes the masks, which only restrict to real tokens
    indices = np.random.default_rng(seed).integers(len(env.unwrapped.task), size=n_episodes).tolist()
    episodes, _ = play(agent, [env], indices, 0 if seed is None else seed, deterministic)
    return [{**episode, "length": episode["steps"]} for episode in episodes]


def score_episodes(episodes: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean scores of played episodes: the env's components and ``"reward"``, BLEU, chrF and length.

    BLEU and chrF are computed from the replies and references whatever reward the env paid, so
    a report always has them; when the env's reward was BLEU the two agree exactly.
    """
    from text_gym.rewards import sentence_bleu, sentence_chrf

    texts = [e["text"] for e in episodes]
    refs = [e["references"] for e in episodes]
    names = list(dict.fromkeys(name for e in episodes for name in e["scores"]))
    metrics = {name: float(np.mean([e["scores"][name] for e in episodes])) for name in names}
    metrics["bleu"] = float(sentence_bleu(texts, refs).mean())
    metrics["chrf"] = float(sentence_chrf(texts, refs).mean())
    metrics["length"] = float(np.mean([e["steps"] for e in episodes]))
    return metrics


def evaluate(
    agent: Agent | AgentFactory,
    env_id: str = "TextGen-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    split: str = "test",
    n_episodes: int | None = None,
    batch_size: int = 16,
    seeds: Sequence[int] = (0,),
    label: str | None = None,
    row_free: bool = False,
    verbose: bool = True,
) -> Evaluation:
    """Play the first ``n_episodes`` prompts of ``split`` (all when None) once per seed; score them.

    Args:
        agent: An agent, or a factory ``(envs, seed) -> agent`` (needed for scripted agents,
            which read the envs' tasks, and for sampling agents seeded per seed).
        env_id: A registered TextGen env id.
        env_kwargs: Keyword arguments of the env (``task``, ``tokenizer``, ``reward``,
            ``max_new_tokens``...); unset ones keep the env's defaults.
        split: The split to play; reports use a held-out one (``"test"``).
        n_episodes: How many prompts, from the first; None plays the whole split.
        batch_size: Episodes played at once.
        seeds: Seeds of the envs and of a factory-built agent; a deterministic agent plays only
            the first one.
        label: The agent's name in reports (default: its class name).
        row_free: See :func:`play` (for beam search).
        verbose: Print one line per evaluation.

    Raises:
        ValueError: ``n_episodes`` or ``batch_size`` is not a positive int, or ``seeds`` is empty.
    """
    check_positive_int("batch_size", batch_size)
    if n_episodes is not None:
        check_positive_int("n_episodes", n_episodes)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none.")
    envs = make_eval_envs(env_id, env_kwargs, split, batch_size)
    size = len(envs[0].unwrapped.task)
    indices = list(range(size if n_episodes is None else min(n_episodes, size)))
    envs = envs[: len(indices)]
    factory = agent if not isinstance(agent, Agent) else (lambda envs, seed: agent)
    played, runs, seconds = [], [], []
    for seed in seeds:
        current = factory(envs, seed)
        played.append(int(seed))
        episodes, elapsed = play(current, envs, indices, seed, current.deterministic, row_free)
        runs.append(episodes)
        seconds.append(elapsed)
        if current.deterministic:
            break
    for env in envs:
        env.close()
    per_seed = [score_episodes(episodes) for episodes in runs]
    metrics = {key: float(np.mean([m[key] for m in per_seed])) for key in per_seed[0]}
    stds = {key: float(np.std([m[key] for m in per_seed])) for key in per_seed[0]}
    task = str((env_kwargs or {}).get("task", gym.spec(env_id).kwargs.get("task")))
    result = Evaluation(label or type(current).__name__, env_id, task, split, played, metrics, stds, runs, seconds)
    if verbose:
        once = f"deterministic, played once (seed {played[0]})" if current.deterministic else f"seeds {played}"
        print(
            f"[evaluate] {result.label}: {env_id} task {task!r}, split {split!r}, {len(indices)} prompts, {once}: "
            f"bleu {metrics['bleu']:.3f}, reward {metrics.get('reward', float('nan')):.3f}",
            flush=True,
        )
    return result


def add_margins(rows: list[dict[str, Any]], metric: str = "bleu", trivial: Sequence[str] = TRIVIAL_LABELS) -> float:
    """Give every row ``"margin"``: its ``metric`` minus the best of the trivial rows; return that best.

    The trivial rows (by ``agent`` label) are the untrained model and copying the input; a
    trained result that does not beat both has learned nothing a user could not get for free.

    Raises:
        ValueError: None of the rows is trivial.

    Example:
        >>> rows = [{"agent": "copy-prompt", "bleu": 0.2}, {"agent": "untrained greedy", "bleu": 0.1},
        ...         {"agent": "trained greedy", "bleu": 0.3}]
        >>> add_margins(rows), round(rows[2]["margin"], 3)
        (0.2, 0.1)
    """
    found = [row[metric] for row in rows if row["agent"] in trivial]
    if not found:
        raise ValueError(f"Expected a row labelled one of {list(trivial)}, got labels {[r['agent'] for r in rows]}.")
    best = max(found)
    for row in rows:
        row["margin"] = row[metric] - best
    return best


def lm_evaluations(
    policy: Any,
    prefix: str,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None,
    *,
    sampling: bool = True,
    temperature: float = 1.0,
    seeds: Sequence[int] = (0,),
    **kwargs: Any,
) -> list[Evaluation]:
    """Evaluate a policy (an ``LMActorCritic``) greedily and, with ``sampling``, by sampling at ``temperature``.

    The rows are labelled ``"<prefix> greedy"`` and ``"<prefix> sampling"``; ``kwargs`` go to :func:`evaluate`.
    """
    rows = [
        evaluate(
            lambda envs, seed: GreedyLMAgent(policy),
            env_id,
            env_kwargs,
            label=f"{prefix} greedy",
            seeds=seeds,
            **kwargs,
        )
    ]
    if sampling:

        def sampler(envs: list[gym.Env], seed: int) -> Agent:
            return SamplingLMAgent(policy, temperature=temperature, seed=seed)

        rows.append(evaluate(sampler, env_id, env_kwargs, label=f"{prefix} sampling", seeds=seeds, **kwargs))
    return rows


def trivial_evaluations(env_id: str, env_kwargs: Mapping[str, Any] | None, **kwargs: Any) -> list[Evaluation]:
    """The model-free rows of every report: ``copy-prompt`` (reply with the input) and ``reference`` (the ceiling).

    Both play at the env's reply budget, like every other agent; ``kwargs`` go to :func:`evaluate`.
    """
    return [
        evaluate(lambda envs, seed: CopyPromptAgent(envs), env_id, env_kwargs, label="copy-prompt", **kwargs),
        evaluate(lambda envs, seed: ReferenceAgent(envs), env_id, env_kwargs, label="reference", **kwargs),
    ]
