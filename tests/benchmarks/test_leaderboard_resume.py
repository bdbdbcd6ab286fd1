"""benchmarks.leaderboard: finished runs survive a late failure in runs.jsonl, and a rerun skips them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import common, leaderboard, plots
from benchmarks.leaderboard import METRICS, Args

QUALITY = [key for key in METRICS if key not in ("episodes_per_s", "tokens_per_s", "peak_mb")]


def argv(out: Path, *extra: str) -> list[str]:
    return [
        "--agents",
        "reference",
        "copy-prompt",
        "--tasks",
        "copy",
        "--seeds",
        "0",
        "--episodes",
        "2",
        "--model",
        "tiny",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "8",
        "--no-coherence",
        "--no-isolate",
        "--threads",
        "1",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture
def played(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Counts the agents that play (spec -> its (task, seed) runs); ``played["fail"]`` makes that spec raise."""
    calls: dict = {"runs": [], "fail": None}
    real = leaderboard.evaluate_agent

    def spy(args, spec, todo=None, log=None):
        calls["runs"].append((spec, list(todo)))
        if spec == calls["fail"]:
            raise RuntimeError("CUDA out of memory")
        return real(args, spec, todo, log)

    monkeypatch.setattr(leaderboard, "evaluate_agent", spy)
    return calls


def test_a_late_failure_keeps_earlier_runs_and_a_rerun_plays_only_the_missing(
    tmp_path: Path, played: dict, capsys
) -> None:
    out = tmp_path / "lb"
    played["fail"] = "copy-prompt"
    with pytest.raises(RuntimeError, match="out of memory"):
        leaderboard.main(argv(out))
    logged = common.read_jsonl(out / "runs.jsonl")
    assert [(r["run"]["agent"], r["run"]["seed"], len(r["run"]["episodes"])) for r in logged] == [("reference", 0, 2)]
    assert not (out / "results.json").exists()

    played.update(fail=None, runs=[])
    resumed = leaderboard.main(argv(out))
    assert played["runs"] == [("copy-prompt", [("copy", 0)])]  # the reference run came from runs.jsonl
    assert "reference: skipped 1 run(s): copy seed 0, already in" in capsys.readouterr().out
    assert [row["agent"] for row in resumed["rows"]] == ["reference", "copy-prompt"]
    assert len(common.read_jsonl(out / "runs.jsonl")) == 2

    played["runs"] = []
    again = leaderboard.main(argv(out))  # everything is in runs.jsonl: nothing plays, the same table
    assert played["runs"] == [] and again["rows"] == resumed["rows"]

    fresh = leaderboard.main(argv(out, "--fresh"))
    assert [spec for spec, _ in played["runs"]] == ["reference", "copy-prompt"]
    assert len(common.read_jsonl(out / "runs.jsonl")) == 2  # overwritten, not appended to
    for old, new in zip(resumed["rows"], fresh["rows"], strict=True):
        assert {k: old[k] for k in QUALITY} == {k: new[k] for k in QUALITY}


def test_runs_of_other_settings_are_replayed(tmp_path: Path, played: dict) -> None:
    out = tmp_path / "lb"
    leaderboard.main(argv(out))
    played["runs"] = []
    leaderboard.main(argv(out, "--episodes", "3"))
    assert [spec for spec, _ in played["runs"]] == ["reference", "copy-prompt"]
    assert len(common.read_jsonl(out / "runs.jsonl")) == 4  # both settings kept, told apart by their key


def test_run_key_tells_settings_and_changed_files_apart(tmp_path: Path) -> None:
    task = tmp_path / "mine.jsonl"
    task.write_text('{"prompt": "Say hi", "reference": "hi", "split": "test"}\n')
    args = Args(agents=["reference"], tasks=[str(task)], model="tiny")
    key = leaderboard.run_key(args, "reference", str(task), 0)
    assert key == leaderboard.run_key(
        Args(agents=["reference"], tasks=[str(task)], model="tiny", temperature=1), "reference", str(task), 0
    )
    assert key != leaderboard.run_key(
        Args(agents=["reference"], tasks=[str(task)], model="tiny", num_beams=2), "reference", str(task), 0
    )
    assert key != leaderboard.run_key(args, "reference", str(task), 1)
    os.utime(task, ns=(1, 1))  # touched, not edited: the same content plays the same
    assert key == leaderboard.run_key(args, "reference", str(task), 0)
    task.write_text('{"prompt": "Say ho", "reference": "ho", "split": "test"}\n')  # edited, same size
    assert key != leaderboard.run_key(args, "reference", str(task), 0)


def test_deterministic_agents_plan_one_seed() -> None:
    args = Args(tasks=["copy", "qa"], seeds=[3, 4], model="tiny")
    assert leaderboard.plan(args, "reference") == [("copy", 3), ("qa", 3)]
    assert leaderboard.plan(args, "sampling") == [("copy", 3), ("copy", 4), ("qa", 3), ("qa", 4)]
    assert len(leaderboard.plan(Args(seeds=[3, 4], repeat_deterministic=True), "greedy")) == 4 * 2


def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path: Path, played: dict) -> None:
    log = tmp_path / "runs.jsonl"
    common.append_jsonl(log, {"a": 1})
    with open(log, "a") as file:
        file.write('{"a": 2, "b"')  # the process died during this write
    assert common.read_jsonl(log) == [{"a": 1}]
    common.append_jsonl(log, {"a": 3})
    assert log.read_text() == '{"a": 1}\n{"a": 3}\n'
    log.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        common.read_jsonl(log)
    assert common.read_jsonl(tmp_path / "missing.jsonl") == []

    out = tmp_path / "lb"
    first = leaderboard.main(argv(out))
    with open(out / "runs.jsonl", "a") as file:
        file.write('{"key": {"spec": "refer')
    played["runs"] = []
    assert leaderboard.main(argv(out))["rows"] == first["rows"] and played["runs"] == []


def test_outputs_appear_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), common.atomic_output(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"half")
        raise RuntimeError("killed while drawing")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    with common.atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_unwritable_out_and_readme_without_markers_fail_before_any_agent_plays(tmp_path: Path, played: dict) -> None:
    file = tmp_path / "results"
    file.write_text("not a folder")
    for out in (file, file / "sub"):
        with pytest.raises(ValueError, match="Expected a writable folder, got .*results"):
            leaderboard.main(argv(out))
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(
        ValueError, match="Expected the markers <!-- leaderboard:start --> and <!-- leaderboard:end -->"
    ):
        leaderboard.main(argv(tmp_path / "lb", "--readme", str(readme)))
    with pytest.raises(ValueError, match="got .*missing.md.*, which is missing"):
        leaderboard.main(argv(tmp_path / "lb", "--readme", str(tmp_path / "missing.md")))
    assert played["runs"] == [] and not (tmp_path / "lb" / "runs.jsonl").exists()


def test_checkpoint_of_another_tokenizer_is_refused_before_any_agent_plays(
    tmp_path: Path, played: dict, capsys
) -> None:
    from agents.trainers.grpo import GRPO

    trainer = GRPO(
        "tiny", "TextGen-Copy-v0", env_kwargs={"tokenizer": "tiny"}, n_envs=2, group_size=2, verbose=0, device="cpu"
    )
    trainer.save(tmp_path / "model.zip")
    # The mismatched checkpoint is the last agent: without the check, the others would play first.
    args = Args(
        agents=["reference", "ckpt:" + str(tmp_path / "model.zip")],
        tasks=["copy"],
        seeds=[0],
        episodes=2,
        model="smollm2-135m",
        coherence=False,
        isolate=False,
    )
    with pytest.raises(
        ValueError, match="trained on envs with tokenizer 'tiny', got --model 'smollm2-135m'; pass --model tiny"
    ):
        leaderboard.run_agents(args, log=tmp_path / "runs.jsonl")
    assert played["runs"] == [] and "[evaluate]" not in capsys.readouterr().out
    (tmp_path / "broken.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="broken.zip is not a trainer checkpoint: expected a zip archive"):
        leaderboard.run_agents(Args(agents=["ckpt:" + str(tmp_path / "broken.zip")], tasks=["copy"], model="tiny"))


def test_a_plot_that_fails_midway_leaves_the_old_one_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lb"
    report = leaderboard.main(argv(out))
    before = (out / "bar_bleu.png").read_bytes()

    def killed(rows, metric, path, **kwargs):
        Path(path).write_bytes(before[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "bar_chart", killed)
    with pytest.raises(KeyboardInterrupt):
        leaderboard.render(Args(model="tiny", coherence=False, out=str(out)), report)
    assert (out / "bar_bleu.png").read_bytes() == before
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
