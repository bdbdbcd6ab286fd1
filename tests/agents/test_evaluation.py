"""agents.evaluation: one figure whichever report asks, deterministic agents once, margins, copy-prompt."""

from __future__ import annotations

import json

import pytest

from agents.baselines import CopyPromptAgent, GreedyLMAgent, SamplingLMAgent
from agents.evaluation import add_margins, evaluate, trivial_evaluations
from agents.modeling.lm import LMActorCritic
from text_gym.rewards import sentence_bleu
from text_gym.tasks import make_task

KWARGS = {"tokenizer": "tiny", "max_new_tokens": 6}


def test_the_same_figure_whichever_report_asks(tiny_args, tmp_path):
    from agents.train import main as train_cli
    from benchmarks import leaderboard

    direct = evaluate(lambda envs, seed: GreedyLMAgent("tiny"), "TextGen-Copy-v0", KWARGS, n_episodes=12, batch_size=4)
    rebatched = evaluate(GreedyLMAgent("tiny"), "TextGen-Copy-v0", KWARGS, n_episodes=12, batch_size=5)
    assert rebatched.metrics == pytest.approx(direct.metrics)  # batching changes nothing

    args = tiny_args(agents=["greedy"], episodes=12, max_new_tokens=6, batch_size=4)
    rows, _ = leaderboard.summarize(leaderboard.run_agents(args), args)
    assert rows[0]["bleu"] == pytest.approx(direct.metrics["bleu"])

    results = train_cli(
        [
            "--env",
            "TextGen-Copy-v0",
            "--model",
            "tiny",
            "--max-new-tokens",
            "6",
            "--eval-episodes",
            "12",
            "--n-envs",
            "4",
            "--group-size",
            "2",
            "--steps",
            "8",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    cli = next(row for row in results["rows"] if row["agent"] == "untrained greedy")
    assert cli["bleu"] == pytest.approx(direct.metrics["bleu"]) and cli["reward"] == pytest.approx(
        direct.metrics["reward"]
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"][0]["bleu"] == pytest.approx(direct.metrics["bleu"])


def test_deterministic_agents_play_once_and_say_so(capsys):
    greedy = evaluate(GreedyLMAgent("tiny"), "TextGen-Copy-v0", KWARGS, n_episodes=3, seeds=[0, 1, 2], label="g")
    assert greedy.seeds == [0] and len(greedy.episodes) == 1
    assert (
        "g: TextGen-Copy-v0 task 'copy', split 'test', 3 prompts, deterministic, played once (seed 0)"
        in capsys.readouterr().out
    )
    policy = LMActorCritic("tiny")
    sampled = evaluate(
        lambda envs, seed: SamplingLMAgent(policy, seed=seed), "TextGen-Copy-v0", KWARGS, n_episodes=3, seeds=[0, 1]
    )
    assert sampled.seeds == [0, 1] and len(sampled.episodes) == 2 and "seeds [0, 1]" in capsys.readouterr().out
    again = evaluate(
        lambda envs, seed: SamplingLMAgent(policy, seed=seed),
        "TextGen-Copy-v0",
        KWARGS,
        n_episodes=3,
        seeds=[0, 1],
        verbose=False,
    )
    assert again.metrics == sampled.metrics  # seeded: reproducible


def test_copy_prompt_replies_with_the_source_and_scores_by_hand(tmp_path):
    path = tmp_path / "rewrite.jsonl"
    records = [
        {
            "prompt": "Rewrite: the cat sat on the mat",
            "source": "the cat sat on the mat",
            "reference": "the cat sat on a mat",
            "split": "test",
        },
        {"prompt": "What is the capital of France?", "reference": "Paris", "split": "test"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    kwargs = {"task": str(path), "tokenizer": "tiny", "max_new_tokens": 64, "max_prompt_tokens": 128}
    copy, reference = trivial_evaluations("TextGen-v0", kwargs, verbose=False)
    episodes = copy.episodes[0]
    assert [e["text"] for e in episodes] == ["the cat sat on the mat", "What is the capital of France?"]
    expected = sentence_bleu(
        ["the cat sat on the mat", "What is the capital of France?"], [["the cat sat on a mat"], ["Paris"]]
    )
    assert copy.metrics["bleu"] == pytest.approx(float(expected.mean()))
    # By hand: clipped n-gram precisions 5/6, 3/5, 2/4, 1/3, same length (no brevity penalty).
    assert float(expected[0]) == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25) and float(expected[1]) == 0.0
    # The ceiling row plays each sample's reference (that it then scores 1 is test_baselines.py's to check).
    assert [e["text"] for e in reference.episodes[0]] == ["the cat sat on a mat", "Paris"]


def test_the_reference_ceiling_plays_at_the_same_budget():
    def copy_at(budget: int) -> dict:
        kwargs = {"tokenizer": "tiny", "max_new_tokens": budget}
        return evaluate(
            lambda envs, seed: CopyPromptAgent(envs), "TextGen-Copy-v0", kwargs, n_episodes=5, verbose=False
        )

    long, short = copy_at(64).metrics, copy_at(4).metrics
    assert long["bleu"] == pytest.approx(1.0) and short["bleu"] < 0.5 and short["length"] == 4


def test_per_prompt_scores_in_prompt_order():
    kwargs = {"tokenizer": "tiny", "max_new_tokens": 4}  # copies cut short: BLEU between 0 and 1
    copy = evaluate(lambda envs, seed: CopyPromptAgent(envs), "TextGen-Copy-v0", kwargs, n_episodes=5, verbose=False)
    episodes = copy.episodes[0]
    expected = sentence_bleu([e["text"] for e in episodes], [e["references"] for e in episodes])

    bleu = copy.per_prompt("bleu")
    assert bleu.shape == (1, 5) and bleu[0] == pytest.approx(expected)  # (1 seed, 5 prompts), in prompt order
    assert bleu.mean() == pytest.approx(copy.metrics["bleu"]) and 0 < bleu.mean() < 1
    assert copy.per_prompt("chrf").mean() == pytest.approx(copy.metrics["chrf"])
    assert copy.per_prompt("reward")[0].tolist() == [e["scores"]["reward"] for e in episodes]


def test_margins_and_bad_arguments():
    rows = [
        {"agent": "untrained greedy", "bleu": 0.1},
        {"agent": "copy-prompt", "bleu": 0.25},
        {"agent": "trained greedy", "bleu": 0.3},
    ]
    assert add_margins(rows) == 0.25 and [round(r["margin"], 3) for r in rows] == [-0.15, 0.0, 0.05]
    with pytest.raises(ValueError, match="labelled one of"):
        add_margins([{"agent": "x", "bleu": 0.1}])
    with pytest.raises(ValueError, match="n_episodes: expected a positive int, got 0"):
        evaluate(GreedyLMAgent("tiny"), "TextGen-Copy-v0", KWARGS, n_episodes=0)
    assert len(make_task("copy", "test")) == 200
