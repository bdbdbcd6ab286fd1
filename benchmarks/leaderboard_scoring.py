"""The leaderboard's columns: every metric of a run (:data:`METRICS`), then mean and spread over seeds.

Quality comes from the evaluator's own figures (:func:`agents.evaluation.score_episodes`) and
:mod:`text_gym.rewards`; diversity and repetition from :mod:`benchmarks.metrics`.
"""

from __future__ import annotations

from typing import Any

from benchmarks import metrics
from benchmarks.leaderboard_agents import TRIVIAL_KINDS
from benchmarks.leaderboard_args import AgentSpec, Args, task_label

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


def score_run(run: dict[str, Any], coherence: bool, repetition_n: int) -> dict[str, float]:
    """The metrics of one run (one agent, task and seed); see :data:`METRICS`.

    The episodes are :func:`agents.evaluation.play`'s: each carries its reply (``"text"``), its
    reply's ``"tokens"`` and the task's ``"references"`` as a list.
    """
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
    per_seed = [
        {
            "task": run["task"],
            "agent": run["agent"],
            "seed": run["seed"],
            "episodes": len(run["episodes"]),
            **score_run(run, args.coherence, args.repetition_n),
        }
        for run in runs
    ]
    order = [task_label(task) for task in args.tasks]
    rows = []
    keys = list(dict.fromkeys((r["task"], r["agent"]) for r in per_seed))
    for task, agent in sorted(keys, key=lambda k: order.index(k[0])):
        group = [r for r in per_seed if (r["task"], r["agent"]) == (task, agent)]
        row: dict[str, Any] = {"task": task, "agent": agent, "seeds": len(group), "episodes": group[0]["episodes"]}
        for key in METRICS:
            row[key], row[f"{key}_std"] = metrics.mean_std([r[key] for r in group])
        rows.append(row)
    add_margins(rows, args)
    return rows, per_seed


def add_margins(rows: list[dict[str, Any]], args: Args) -> None:
    """Give each row its BLEU minus the best trivial row of its task (NaN when the task has no trivial agent).

    The trivial rows are the untrained model (greedy, sampling) and copy-prompt, told apart by
    their agent spec; the margin is :func:`agents.evaluation.add_margins`'s, task by task.
    """
    from agents import evaluation

    trivial = [
        spec.label for spec in map(AgentSpec.parse, args.agents) if spec.kind in TRIVIAL_KINDS and spec.model is None
    ]
    for task in dict.fromkeys(row["task"] for row in rows):
        group = [row for row in rows if row["task"] == task]
        if any(row["agent"] in trivial for row in group):  # else the rows keep score_run's NaN
            evaluation.add_margins(group, "bleu", trivial)
        for row in group:
            row["margin_std"] = 0.0
