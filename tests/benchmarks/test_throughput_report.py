"""benchmarks.throughput_report gathers the other benchmarks' JSON into one table and the README."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from benchmarks import throughput_report

MACHINE = {"processor": "CPU", "cpu_count": 2, "gpu": None}


def write(folder: Path, name: str, rows: list[dict]) -> None:
    report = {
        "benchmark": name,
        "date": "2026-11-29T03:00:00+00:00",
        "git_sha": "abc1234",
        "machine": MACHINE,
        "args": {},
        "rows": rows,
    }
    (folder / f"{name}.json").write_text(json.dumps(report))


def test_doctests() -> None:
    result = doctest.testmod(throughput_report)
    assert result.attempted > 0 and result.failed == 0


def test_gathers_the_three_benchmarks_into_one_table(tmp_path: Path) -> None:
    write(
        tmp_path,
        "env_throughput",
        [{"env": "TextGen-v0", "num_envs": 1, "shaping": "sparse", "env steps/s": 2e4, "env cost vs LM step": "0.01%"}],
    )
    write(
        tmp_path,
        "rollout_throughput_quick",
        [{"phase": "rollout", "method": "generate", "tokens/s": 1e3, "ratio": "1.00x generate"}],
    )
    write(
        tmp_path,
        "trainer_throughput",
        [{"trainer": "GRPO", "tokens": 512, "seconds": 2.0, "tokens/s": 256.0, "x SB3 PPO": 3.5}],
    )
    (tmp_path / "notes.json").write_text("[1, 2]")  # not a report: skipped
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- throughput:start -->\n<!-- throughput:end -->\n")

    rows = throughput_report.main(["--results", str(tmp_path), "--readme", str(readme)])
    assert [r["benchmark"] for r in rows] == ["env_throughput", "trainer_throughput"]  # no quick run unless asked
    assert rows[0]["configuration"] == "TextGen-v0, num_envs=1, sparse" and rows[0]["unit"] == "env steps/s"
    assert rows[1] == {
        "benchmark": "trainer_throughput",
        "configuration": "GRPO",
        "throughput": 256.0,
        "unit": "tokens/s",
        "relative": "x SB3 PPO: 3.50x",
        "date": "2026-11-29",
        "commit": "abc1234",
    }
    text = readme.read_text()
    assert "| trainer_throughput | GRPO | 256 | tokens/s | x SB3 PPO: 3.50x |" in text
    assert "`trainer_throughput.json`: 2026-11-29T03:00 UTC, commit abc1234, CPU, 2 cores" in text
    assert json.loads((tmp_path / "throughput.json").read_text())["rows"] == rows

    rows = throughput_report.main(["--results", str(tmp_path), "--include-quick"])
    assert [r["benchmark"] for r in rows] == ["env_throughput", "rollout_throughput_quick", "trainer_throughput"]


def test_no_results_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="run those benchmarks first"):
        throughput_report.main(["--results", str(tmp_path)])
