"""The validation sweep of supervised+RL's levers: one warm start, every configuration, no test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import learning_sweep
from benchmarks.common import parse_args, read_jsonl
from benchmarks.learning_args import Args


def test_quick_sweep_reports_every_configuration_failures_included(tmp_path: Path) -> None:
    configs = [
        "beta=0.05",
        "baseline=risk;candidates=beam;learning_rate=0.001;sft_coef=0.5",
        "n_envs=6",
    ]  # 6 is not a multiple of group 4
    argv = ["--quick", "--seeds", "0", "--sft-lr-schedule", "linear", "--out", str(tmp_path), "--configs", *configs]
    learning_sweep.main(parse_args(learning_sweep.SweepArgs, argv))

    report = json.loads((tmp_path / "learning_sweep.json").read_text())
    supervised, *rows = report["rows"]
    assert supervised["configuration"].startswith("supervised") and supervised["RL tokens"] == 0
    assert [row["configuration"] for row in rows] == configs
    for row in rows[:2]:
        assert row["RL tokens"] > 0 and row["vs supervised"] == pytest.approx(row["val BLEU"] - supervised["val BLEU"])
        phases = [point["phase"] for point in row["history"]]
        assert phases[0] == "supervised" and "rl" in phases  # from the supervised arm's model at t, then RL
        shared = [point for point in row["history"] if point["phase"] == "supervised"]
        assert shared == supervised["history"][: len(shared)]
    assert "group_size" in rows[2]["error"] or "n_envs" in rows[2]["error"]
    assert all("test" not in json.dumps(point) for row in rows[:2] for point in row["history"])
    table = (tmp_path / "learning_sweep.md").read_text()
    assert (
        "python -m benchmarks.learning_sweep --quick --seeds 0 --sft-lr-schedule linear --configs beta=0.05 " in table
    )
    assert "'baseline=risk;candidates=beam;learning_rate=0.001;sft_coef=0.5'" in table and "n_envs=6" in table
    (record,) = read_jsonl(tmp_path / "learning_runs.jsonl")
    assert record["sweep"] == "learning_sweep" and record["best"] in [supervised["configuration"], *configs]


def test_levers_parse_like_the_flags() -> None:
    args = Args(reward="bleu", beta=0.0)
    configured = learning_sweep.with_levers(args, "reward=bleu=0.5,chrf=0.5; beta=0.05;scale_rewards=false")
    assert (configured.reward, configured.beta, configured.scale_rewards) == ("bleu=0.5,chrf=0.5", 0.05, False)
    assert (args.reward, args.beta) == ("bleu", 0.0)  # the arguments are left as they were


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("sft_learning_rate=1", "names in"),  # the warm start is shared: not a lever
        ("beta", "name=value"),
        ("beta=much", "beta: expected a float, got 'much'"),
        ("scale_rewards=maybe", "scale_rewards: expected a bool"),
        ("temperature=0", "temperature: expected a finite positive number"),
        ("baseline=critic", "baseline"),
        ("sft_coef=-1", "sft_coef >= 0"),
    ],
)
def test_a_bad_configuration_is_refused_before_anything_trains(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_args(learning_sweep.SweepArgs, ["--configs", "beta=0.05", spec])
