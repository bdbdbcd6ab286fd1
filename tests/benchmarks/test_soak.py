"""benchmarks.soak --quick writes its JSON, markdown and plot; only their structure is checked.

RSS slopes are noisy (the allocator, other tests in the same process), so no number is asserted.
"""

from __future__ import annotations

import doctest
import json
import sys
from pathlib import Path

import pytest

from benchmarks import soak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")


def test_doctests() -> None:
    result = doctest.testmod(soak)
    assert result.attempted > 0 and result.failed == 0


def test_quick_run_writes_the_report(tmp_path: Path) -> None:
    rows = soak.main(soak.parse_args(soak.Args, ["--quick", "--threads", "1", "--out", str(tmp_path)]))

    assert [row["phase"] for row in rows] == list(soak.PHASES)
    report = json.loads((tmp_path / "soak_quick.json").read_text())
    assert report["benchmark"] == "soak_quick" and report["git_sha"] and report["machine"]["cpu_count"]
    assert report["args"]["quick"] is True
    for row in report["rows"]:
        assert set(soak.COLUMNS) <= set(row)
        assert len(row["progress"]) == len(row["rss MB"]) == row["samples"] >= 3
        assert row["progress"][0] == 0 and row["progress"] == sorted(row["progress"])
        assert 0 < row["warmup samples"] < row["samples"] - 1  # warm-up left out, at least two points fitted
        assert all(rss > 0 for rss in row["rss MB"])
        assert row["peak MB"] == pytest.approx(max(row["rss MB"]), abs=1e-3) and row["peak MB"] >= row["end MB"] - 1e-3
    assert [row["progress"][-1] for row in report["rows"]] == [100, 16, 4]  # quick: episodes, episodes, iterations
    table = (tmp_path / "soak_quick.md").read_text()
    assert (
        "| phase | units | samples |" in table and "MB per 1,000 episodes" in table and "MB per 100 iterations" in table
    )
    assert (tmp_path / "soak_quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp-*"))  # the atomic writes left no temporary file


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--phases", "env", "leak"], "unknown"),
        (["--samples", "1"], "at least 2"),
        (["--warmup", "1.0"], "fraction"),
        (["--n-envs", "6", "--group-size", "4"], "multiple"),
        (["--env-episodes", "0"], "env_episodes: expected a positive int, got 0"),
        (["--group-size", "0"], "group_size: expected a positive int, got 0"),
    ],
)
def test_bad_arguments(flags: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        soak.parse_args(soak.Args, flags)


def test_fit_leaves_out_the_warmup() -> None:
    slope, intercept, start = soak.fit([0, 10, 20, 30], [100.0, 200.0, 200.0, 200.0], warmup=0.3)
    assert (slope, intercept, start) == (0.0, 200.0, 1)
