"""benchmarks.learning_merge: runs that differ only in their seeds make one report; anything else is refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from benchmarks import learning, learning_merge, learning_report
from benchmarks.common import read_jsonl


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One --quick run of seed 0 (the tiny model, seconds)."""
    out = tmp_path_factory.mktemp("run")
    learning.main(learning.parse_args(learning.Args, ["--quick", "--seeds", "0", "--out", str(out), "--name", "s0"]))
    return json.loads((out / "s0.json").read_text())


def _as_seed(record: dict, seed: int, bump: float) -> dict:
    """``record`` relabelled as seed ``seed``, every test BLEU raised by ``bump`` (a second run, by hand)."""
    other = copy.deepcopy(record)
    other["args"]["seeds"], other["args"]["name"] = [seed], f"s{seed}"
    other["command"] = record["command"].replace("--seeds 0", f"--seeds {seed}")
    for row in other["rows"]:
        row["seed"] = seed
        row["bleu per prompt"] = [b + bump for b in row["bleu per prompt"]]
        row["bleu"] += bump
    return other


def _write(folder: Path, records: list[dict]) -> list[str]:
    paths = []
    for i, record in enumerate(records):
        path = folder / f"run{i}.json"
        path.write_text(json.dumps(record))
        paths.append(str(path))
    return paths


def test_merged_report_has_every_seed_and_intervals_over_them(seed_run: dict, tmp_path: Path) -> None:
    paths = _write(tmp_path, [_as_seed(seed_run, 1, 0.1), seed_run])
    readme = tmp_path / "README.md"
    readme.write_text("<!-- learning:start -->\nold\n<!-- learning:end -->\n")
    argv = ["--runs", *paths, "--name", "merged", "--out", str(tmp_path), "--readme", str(readme)]
    report = learning_merge.merge_reports(learning_merge.parse_args(learning_merge.MergeArgs, argv))

    assert [row["seed"] for row in report["rows"]] == [1] * 7 + [0] * 7  # the seeds in the order of --runs
    assert report["rows"][7:] == seed_run["rows"]  # each run's rows as it recorded them
    by_arm = {entry["arm"]: entry for entry in report["summary"]}
    assert by_arm["supervised"]["seeds"] == 2
    supervised = next(row["bleu"] for row in seed_run["rows"] if row["arm"] == "supervised")
    assert by_arm["supervised"]["bleu"] == pytest.approx(supervised + 0.05)  # seed 0 and seed 0 + 0.1
    for interval in report["intervals"]:
        assert interval["seeds"] == 2 and interval["low"] <= interval["mean"] <= interval["high"]
    assert report["intervals"] == learning_report.intervals(report["rows"])
    assert report["equivalent command"].startswith("python -m benchmarks.learning --quick --seeds 1 0")
    assert [s["path"] for s in report["sources"]] == paths

    written = json.loads((tmp_path / "merged.json").read_text())
    assert written["args"]["seeds"] == [1, 0] and written["args"]["name"] == "merged"
    table = (tmp_path / "merged.md").read_text()
    assert "--quick --seeds 1 " in table and "--quick --seeds 0 " in table  # each run's command, with its --out
    assert f"--name s0 --out {seed_run['args']['out']}\n" in table
    assert "python -m benchmarks.learning_merge --runs" in table
    assert "seeds 1, 0" in table  # the configuration paragraph
    assert (tmp_path / "merged.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "old" not in readme.read_text() and "learning_merge" in readme.read_text()
    (record,) = read_jsonl(tmp_path / learning.RUNS_LOG)
    assert record["status"] == "ok" and record["name"] == "merged" and record["args"]["seeds"] == [1, 0]


def test_an_argument_a_run_predates_counts_as_its_default(seed_run: dict, tmp_path: Path) -> None:
    older = _as_seed(seed_run, 1, 0.0)
    del older["args"]["rl_only_learning_rate"]  # as if recorded before the flag existed (its default: 0)
    paths = _write(tmp_path, [seed_run, older])
    report = learning_merge.merge_reports(learning_merge.MergeArgs(runs=paths, out=str(tmp_path)))
    assert len(report["rows"]) == 14
    older["args"]["rl_only_learning_rate"] = 1e-3  # but a different value is a different configuration
    paths = _write(tmp_path, [seed_run, older])
    with pytest.raises(ValueError, match="got rl_only_learning_rate=0.001 instead of 0"):
        learning_merge.merge_reports(learning_merge.MergeArgs(runs=paths, out=str(tmp_path)))


def _changed(record: dict, **args: object) -> dict:
    other = _as_seed(record, 1, 0.0)
    other["args"].update(args)
    return other


@pytest.mark.parametrize(
    ("second", "match"),
    [
        (lambda r: _changed(r, minutes=0.5), r"but for the seeds, got minutes=0.5 instead of 0.02"),
        (lambda r: _changed(r, baseline="risk"), r"got baseline='risk' instead of 'group'"),
        (lambda r: copy.deepcopy(r), r"expected every seed in one run only, got seeds \[0, 0\]"),
        (lambda r: {"rows": []}, r"expected a benchmarks.learning report with keys"),
        (lambda r: _changed(r, lever=1), r"got unknown \[.lever.\]"),
    ],
)
def test_runs_that_differ_beyond_their_seeds_are_refused(seed_run: dict, tmp_path: Path, second, match: str) -> None:
    paths = _write(tmp_path, [seed_run, second(seed_run)])
    args = learning_merge.MergeArgs(runs=paths, out=str(tmp_path))
    with pytest.raises(ValueError, match=match):
        learning_merge.merge_reports(args)
    assert not (tmp_path / "learning.json").exists() and not (tmp_path / learning.RUNS_LOG).exists()


def test_bad_paths_and_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two or more"):
        learning_merge.MergeArgs(runs=["only.json"])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: expected a benchmarks.learning report"):
        learning_merge.merge_reports(learning_merge.MergeArgs(runs=[str(broken), str(broken)], out=str(tmp_path)))
    with pytest.raises(ValueError, match="missing.json: expected a benchmarks.learning report"):
        learning_merge.load_run(tmp_path / "missing.json")
