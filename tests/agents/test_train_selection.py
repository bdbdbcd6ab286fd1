"""`python -m agents.train --eval-every N`: select on validation, keep best_model.zip, measure it on test."""

from __future__ import annotations

import json

import pytest

from agents.baselines.lm import GreedyLMAgent
from agents.evaluation import evaluate
from agents.train import main, parse_args
from agents.trainers.grpo import GRPO

ECHO = ["--env", "TextGen-EchoLetter-v0", "--model", "tiny", "--max-new-tokens", "3", "--n-envs", "4"]
ECHO += ["--group-size", "2", "--learning-rate", "1e-2", "--checkpoint-minutes", "0", "--no-progress"]
ECHO += ["--eval-episodes", "8", "--threads", "1"]


def test_selection_keeps_the_best_model_and_the_table_measures_it(tmp_path, capsys):
    argv = [*ECHO, "--warm-start-tokens", "40", "--steps", "40", "--eval-every", "2", "--scst", "--out", str(tmp_path)]
    argv += ["--sft-coef", "0.5"]  # GRPO with the references' NLL added: stored with the model
    results = main(argv)
    printed = capsys.readouterr().out
    chosen = json.loads((tmp_path / "results.json").read_text())["selection"]
    assert chosen == results["selection"] and chosen["split"] == "validation" and chosen["metric"] == "bleu"
    phases = [row["phase"] for row in chosen["history"]]
    assert phases[0] == "supervised" and "rl" in phases and chosen["history"][0]["step"] == 0
    best = max(row["score"] for row in chosen["history"])
    first = next(row for row in chosen["history"] if row["score"] == best)  # ties go to the earlier
    assert (chosen["phase"], chosen["step"], chosen["score"]) == (first["phase"], first["step"], best)
    assert f"{chosen['phase']} step {chosen['step']} model, best validation bleu" in printed
    assert "best_model.zip" in printed

    best_model = GRPO.load(tmp_path / "best_model.zip")
    assert (best_model.config.baseline, best_model.config.sft_coef) == ("scst", 0.5)
    on_test = evaluate(
        GreedyLMAgent(best_model.policy), "TextGen-EchoLetter-v0", {"tokenizer": "tiny", "max_new_tokens": 3},
        split="test", n_episodes=8, batch_size=4, verbose=False,
    )  # fmt: skip
    row = next(r for r in results["rows"] if r["agent"] == "supervised+RL greedy")
    assert row["bleu"] == pytest.approx(on_test.metrics["bleu"])  # the table's trained row is the selected model
    assert GRPO.load(tmp_path / "model.zip").num_timesteps >= 40  # model.zip stays the last model, to resume


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--eval-every", "2", "--selection-split", "test"], "has seen the answers"),
        (["--eval-every", "-1"], "expected an int >= 0"),
        (["--algo", "ppo", "--scst"], "--baseline scst is GRPO's"),
        (["--algo", "ppo", "--sft-coef", "0.5"], "--sft-coef is GRPO's"),
        (["--sft-coef", "-1"], "--sft-coef"),
        (["--risk-alpha", "2"], "expected --baseline risk, got group"),
        (["--baseline", "risk", "--risk-alpha", "-1"], "--risk-alpha"),
        (["--algo", "ppo", "--candidates", "beam"], "--candidates beam is GRPO's"),
        (["--candidates", "nbest"], "invalid choice: 'nbest'"),
    ],
)
def test_selection_and_baseline_flags_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_baseline_flags():
    assert parse_args(["--scst"]).baseline == "scst" and parse_args([]).baseline == "group"
    assert parse_args(["--baseline", "scst"]).baseline == "scst" and parse_args([]).eval_every == 0
    risk = parse_args(["--baseline", "risk", "--risk-alpha", "0.5"])
    assert (risk.baseline, risk.risk_alpha) == ("risk", 0.5)
    assert parse_args(["--baseline", "risk", "--candidates", "beam"]).candidates == "beam"
    assert parse_args([]).candidates == "sample"


def test_a_resumed_run_goes_on_with_the_selection_in_its_folder(tmp_path, capsys):
    first = main([*ECHO, "--steps", "24", "--eval-every", "2", "--out", str(tmp_path)])["selection"]
    capsys.readouterr()
    flags = ["--eval-every", "2", "--eval-episodes", "8", "--no-progress", "--checkpoint-minutes", "0"]
    resumed = main(["--resume", str(tmp_path / "model.zip"), "--out", str(tmp_path), "--steps", "16", *flags])
    printed = capsys.readouterr().out
    assert "Selection goes on from" in printed
    chosen = resumed["selection"]
    assert chosen["history"][: len(first["history"])] == first["history"]  # the earlier rows are still candidates
    assert len(chosen["history"]) > len(first["history"]) and chosen["score"] >= first["score"]
    assert chosen == json.loads((tmp_path / "selection.json").read_text())
