"""benchmarks.learning: --quick writes every arm x seed, the intervals, the selection rows, within budget.

The figures themselves are not asserted (a tiny model in seconds learns what it learns); the
structure, the budgets and the bookkeeping are.
"""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import learning, learning_args, learning_report
from benchmarks.common import read_jsonl
from benchmarks.learning_arms import make_trainer

MARKERS = "# Title\n\n<!-- learning:start -->\nold table\n<!-- learning:end -->\n\nafter\n"


TWO = ("supervised", "supervised+RL")


def test_doctests() -> None:
    result = doctest.testmod(learning_args)
    assert result.attempted > 0 and result.failed == 0


def test_quick_run_writes_every_arm_seed_interval_and_selection(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(MARKERS)
    argv = ["--quick", "--out", str(tmp_path), "--readme", str(readme)]
    learning.main(learning.parse_args(learning.Args, argv))

    report = json.loads((tmp_path / "learning_quick.json").read_text())
    args = report["args"]
    assert report["git_sha"] and report["machine"]["cpu_count"] and args["quick"] is True
    assert report["command"] == "python -m benchmarks.learning --quick"
    seeds, env = args["seeds"], args["tasks"][0]
    assert len(seeds) == 2
    cells = {(row["arm"], row["seed"]) for row in report["rows"]}
    assert cells == {(arm, seed) for arm in learning_args.ARMS for seed in seeds}
    prompts = {len(row["bleu per prompt"]) for row in report["rows"]}
    assert prompts == {report["rows"][0]["test prompts"]}  # every arm played every test prompt
    for row in report["rows"]:
        assert set(learning_report.SEED_COLUMNS) <= set(row)
        assert np.mean(row["bleu per prompt"]) == pytest.approx(row["bleu"])
        if row["arm"] in learning_args.TRAINED:
            _check_trained_row(row, args)
        else:
            assert row["selection"] is None and row["train CPU-min"] == 0
    for seed in seeds:  # supervised+RL forked the supervised arm at t: their first t is one run
        sft, sft_rl = ({row["arm"]: row for row in report["rows"] if row["seed"] == seed}[arm] for arm in TWO)
        shared = [point for point in sft_rl["selection"]["history"] if point["phase"] == "supervised"]
        assert shared and shared == sft["selection"]["history"][: len(shared)]
        assert 0 < sft_rl["SFT tokens"] < sft["SFT tokens"]
    assert [(i["a"], i["b"]) for i in report["intervals"]] == list(learning_report.COMPARISONS)
    for interval in report["intervals"]:
        assert interval["env"] == env and interval["low"] <= interval["mean"] <= interval["high"]
        assert (interval["seeds"], interval["n_resamples"]) == (2, 10_000)
    assert {entry["arm"] for entry in report["summary"]} == set(learning_args.ARMS)

    table = (tmp_path / "learning_quick.md").read_text()
    assert "| supervised+RL − supervised |" in table and "| arm | seeds | test BLEU |" in table
    assert (tmp_path / "learning_quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    section = readme.read_text()
    assert "old table" not in section and "python -m benchmarks.learning --quick" in section
    assert section.endswith("<!-- learning:end -->\n\nafter\n") and "| supervised+RL − beam |" in section
    assert "[learning_quick.md](learning_quick.md)" in section  # links relative to the README
    (record,) = read_jsonl(tmp_path / learning.RUNS_LOG)
    assert record["status"] == "ok" and record["args"] == args and len(record["intervals"]) == 4
    assert not list(tmp_path.glob(".*tmp-*"))  # the atomic writes left no temporary file


def _check_trained_row(row: dict, args: dict) -> None:
    """Selection rows exist and name the kept step; the training CPU time is the budget T."""
    selection, budget = row["selection"], args["minutes"]
    assert selection["history"] and selection["split"] == "validation" and selection["metric"] == "bleu"
    assert selection["score"] == max(point["score"] for point in selection["history"])
    assert row["val bleu"] == selection["score"] and row["selected"] == f"{selection['phase']} {selection['step']}"
    phases = {point["phase"] for point in selection["history"]}
    expected = {"supervised": {"supervised"}, "RL": {"rl"}, "supervised+RL": {"supervised", "rl"}}[row["arm"]]
    assert phases <= expected and (row["arm"] != "supervised+RL" or "supervised" in phases)
    times = [point["train_cpu_seconds"] for point in selection["history"]]
    assert times == sorted(times) and times[-1] <= row["train CPU-min"] * 60 + 1e-6
    # Budget: at least T, and over it by no more than one step's worth (T is 1.2 s here).
    assert budget * 0.97 <= row["train CPU-min"] <= budget * 1.25 + 0.5 / 60
    assert (row["SFT tokens"] > 0) == (row["arm"] != "RL") and (row["RL tokens"] > 0) == (row["arm"] != "supervised")


def test_a_failed_run_is_logged_then_raised(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jsonl")
    args = learning.parse_args(learning.Args, ["--quick", "--out", str(tmp_path), "--task", missing])
    with pytest.raises(Exception, match="missing"):
        learning.main(args)

    (record,) = read_jsonl(tmp_path / learning.RUNS_LOG)
    assert record["status"] == "failed" and "missing" in record["error"] and record["finished"] == []
    assert record["args"]["task"] == missing and "--task" in record["command"]
    assert not (tmp_path / "learning_quick.json").exists()


def test_summary_and_intervals_by_hand() -> None:
    rows = [
        {"env": "E", "arm": arm, "seed": seed, "bleu": float(np.mean(scores)), "chrf": 0.5, "reward": 0.5}
        | {"train CPU-min": 1.0, "selected": "", "bleu per prompt": scores}
        for arm, seed, scores in [
            ("supervised", 0, [0.2, 0.4]),
            ("supervised", 1, [0.4, 0.6]),
            ("supervised+RL", 0, [0.3, 0.5]),
            ("supervised+RL", 1, [0.5, 0.7]),
        ]
    ]
    (sft, sft_rl) = learning_report.summarize(rows)
    assert (sft["arm"], sft["seeds"], sft["bleu"]) == ("supervised", 2, pytest.approx(0.4))
    assert sft["bleu_std"] == pytest.approx(np.std([0.3, 0.5], ddof=1)) and sft["chrf_std"] == 0.0
    (interval,) = learning_report.intervals(rows, n_resamples=500)  # only supervised+RL and supervised are here
    assert interval["difference"] == "supervised+RL − supervised"
    assert interval["mean"] == interval["low"] == interval["high"] == pytest.approx(0.1)  # +0.1 on every prompt


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--sft-minutes", "30"], "sft_minutes < minutes"),
        (["--eval-every-minutes", "-1"], "eval_every_minutes"),
        (["--minutes", "0"], "minutes: expected a positive"),
        (["--baseline", "critic"], "baseline"),
        (["--loss-type", "tokens"], "loss_type"),
        (["--seeds", "0", "0"], "distinct"),
        (["--beams", "0"], "beams: expected a positive int, got 0"),
        (["--val-prompts", "-1"], "val_prompts"),
        (["--beta", "-0.1"], "beta >= 0"),
        (["--temperature", "0"], "temperature: expected a finite positive number"),
        (["--sft-learning-rate", "inf"], "sft_learning_rate"),
        (["--rl-only-learning-rate", "-1"], "rl_only_learning_rate: expected a finite number >= 0"),
        (["--baseline", "risk", "--risk-alpha", "-1"], "risk_alpha >= 0"),
        (["--candidates", "nbest"], "candidates"),
        (["--sft-lr-schedule", "cosine"], "sft_lr_schedule"),
    ],
)
def test_bad_arguments(flags: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        learning.parse_args(learning.Args, flags)


def test_defaults_follow_the_budget() -> None:
    args = learning.parse_args(learning.Args, ["--minutes", "0.5"])
    assert (args.sft_minutes, args.eval_every_minutes) == (0.25, 0.05)  # half of T; ten validations per arm
    assert learning_args.command_line(args) == (
        "python -m benchmarks.learning --minutes 0.5 --sft-minutes 0.25 --eval-every-minutes 0.05"
    )


def test_command_line_names_every_lever_that_differs() -> None:
    args = learning.Args(reward="bleu=0.5,chrf=0.5", baseline="scst", beta=0.05, scale_rewards=False, seeds=[0, 1])
    command = learning_args.command_line(args)
    assert command == (
        "python -m benchmarks.learning --seeds 0 1 --reward bleu=0.5,chrf=0.5 --baseline scst --beta 0.05 "
        "--no-scale-rewards"
    )
    assert learning.parse_args(learning.Args, command.split()[3:]) == args  # the command reproduces the run


def test_the_rl_arm_learns_from_the_reward_alone() -> None:
    """``sft_coef`` adds the references' NLL to supervised+RL's GRPO, never to the RL arm's; its own lr applies."""
    args = learning.parse_args(
        learning.Args,
        ["--model", "tiny", "--tasks", "TextGen-EchoLetter-v0", "--sft-coef", "0.5", "--learning-rate", "1e-4"]
        + ["--rl-only-learning-rate", "3e-4"],
    )
    env_id = args.tasks[0]
    rl, after_sft = make_trainer(args, env_id, 0, rl_only=True), make_trainer(args, env_id, 0)
    assert (rl.config.sft_coef, rl.config.learning_rate) == (0.0, 3e-4)
    assert (after_sft.config.sft_coef, after_sft.config.learning_rate) == (0.5, 1e-4)
