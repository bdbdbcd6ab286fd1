"""benchmarks.leaderboard: the --quick run, known scores of the reference agent, specs, README, plots."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from agents import evaluation
from benchmarks import common, leaderboard, leaderboard_args, plots
from benchmarks.leaderboard import METRICS, AgentSpec, Args

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.parametrize("module", [common, leaderboard_args])
def test_doctests(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_quick_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- leaderboard:start -->\nold table\n<!-- leaderboard:end -->\nafter\n")
    report = leaderboard.main(["--quick", "--out", str(tmp_path / "lb"), "--readme", str(readme)])

    out = tmp_path / "lb"
    data = json.loads((out / "results.json").read_text())
    assert {"git_sha", "machine", "args", "command", "date", "rows", "per_seed", "samples"} <= set(data)
    assert data["args"]["model"] == "tiny" and data["args"]["quick"] is True
    assert data["machine"]["torch"] and "--quick" in data["command"]
    agents = [row["agent"] for row in data["rows"]]
    assert agents == ["random", "greedy", "sampling", "beam", "copy-prompt", "reference"]
    for row in data["rows"]:
        assert row["task"] == "copy" and row["episodes"] == 4
        assert row["seeds"] == (2 if row["agent"] in ("random", "sampling") else 1)  # deterministic agents play once
        for key in METRICS:
            assert key in row and f"{key}_std" in row
        assert row["coherence"] is None  # --quick skips coherence; NaN is written as null
        assert row["tokens_per_s"] > 0 and row["peak_mb"] is not None
    assert len(data["per_seed"]) == 2 + 2 + 4

    md = (out / "leaderboard.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| task |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns == ["task", "agent"] + [title for key, (title, _) in METRICS.items() if key != "coherence"]
    assert md.count("\n| copy |") == 6

    for key in METRICS:
        if key != "coherence":
            assert_png(out / f"bar_{key}.png")
    assert not (out / "bar_coherence.png").exists()

    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert "| copy | reference |" in text and "python -m benchmarks.leaderboard --quick" in text
    assert len(report["rows"]) == 6

    # --render redraws the outputs and the README from results.json alone, without playing.
    (out / "leaderboard.md").unlink()
    readme.write_text("<!-- leaderboard:start -->\n<!-- leaderboard:end -->\n")
    leaderboard.main(["--render", str(out), "--readme", str(readme)])
    assert (out / "leaderboard.md").read_text() == md
    assert "| copy | reference |" in readme.read_text()


def test_summary_has_a_row_per_task_with_corpus_bleu(tiny_args, tmp_path: Path) -> None:
    task = tmp_path / "mine.jsonl"
    task.write_text(
        '{"prompt": "Greet", "reference": "hello there my good friend", "split": "test"}\n'
        '{"prompt": "Say bye", "references": ["bye now", "bye"], "split": "test"}\n'
        '{"prompt": "Say hi", "reference": "hi", "split": "train"}\n'
    )
    args = tiny_args(agents=["reference"], tasks=["copy", str(task)], episodes=3, max_new_tokens=64, batch_size=2)
    rows, per_seed = leaderboard.summarize(leaderboard.run_agents(args), args)
    assert [row["task"] for row in rows] == ["copy", "mine"]
    assert rows[1]["episodes"] == 2  # the file's test split has 2 samples, fewer than --episodes
    for row in rows:  # corpus BLEU needs a 4-gram: "corner tea pen glass" (copy) and "hello there my good friend"
        assert row["corpus_bleu"] == pytest.approx(1.0)
        assert row["length"] > 0 and 0 < row["distinct_1"] <= 1


@pytest.mark.parametrize("row_free", [False, True])
def test_play_gives_every_agent_the_same_prompts(row_free: bool) -> None:
    from text_gym.envs.text_gen import TextGenEnv

    args = Args(agents=["reference"], tasks=["copy"], seeds=[0], model="tiny", isolate=False, coherence=False)
    envs = [TextGenEnv(task="copy", tokenizer="tiny", split="test", max_new_tokens=8) for _ in range(3)]
    agent = leaderboard.make_agent(AgentSpec.parse("random"), None, envs, 0, args)
    batches = []
    act = agent.act
    agent.act = lambda obs, masks, deterministic: (
        batches.append(len(obs["input_ids"])) or act(obs, masks, deterministic)
    )
    episodes, seconds = evaluation.play(agent, envs, list(range(7)), seed=0, deterministic=False, row_free=row_free)
    assert [e["index"] for e in episodes] == list(range(7)) and seconds > 0
    assert [e["prompt"] for e in episodes] == [envs[0].task[i].prompt for i in range(7)]
    assert all(1 <= e["steps"] <= 8 and len(e["tokens"]) <= e["steps"] for e in episodes)
    assert sum(e["steps"] for e in episodes) <= sum(batches)
    assert (min(batches) < 3) == row_free  # finished rows leave the batch only when row_free


def test_trained_checkpoint_agent(tiny_args, tmp_path: Path) -> None:
    from agents.trainers.grpo import GRPO

    trainer = GRPO(
        "tiny",
        "TextGen-Copy-v0",
        env_kwargs={"tokenizer": "tiny", "max_new_tokens": 4},
        n_envs=2,
        group_size=2,
        seed=0,
        verbose=0,
        device="cpu",
    )
    trainer.save(tmp_path / "run" / "model.zip")
    (tmp_path / "run" / "progress.csv").write_text("time/total_timesteps,rollout/ep_rew_mean\n8,0.1\n16,0.2\n24,0.25\n")
    args = tiny_args(
        agents=["mine=ckpt:" + str(tmp_path / "run" / "model.zip")],
        episodes=2,
        max_new_tokens=4,
        batch_size=2,
        out=str(tmp_path / "lb"),
    )
    runs = leaderboard.run_agents(args)
    rows, per_seed = leaderboard.summarize(runs, args)
    assert rows[0]["agent"] == "mine" and rows[0]["episodes"] == 2
    leaderboard.write_outputs(args, rows, per_seed, runs, "test", 1.0)
    assert_png(tmp_path / "lb" / "learning_curves.png")  # found next to the checkpoint


def test_agent_specs() -> None:
    assert AgentSpec.parse("greedy") == AgentSpec("greedy", "greedy", None)
    assert AgentSpec.parse("beam:some/folder") == AgentSpec("beam:some/folder", "beam", "some/folder")
    assert AgentSpec.parse("ckpt:runs/grpo/model.zip") == AgentSpec(
        "trained (grpo/model.zip)", "greedy", "runs/grpo/model.zip"
    )
    assert AgentSpec.parse("x=sampling:/a=b/m").model == "/a=b/m"
    for bad, match in [("nucleus", "expected a kind"), ("ckpt", "needs a path"), ("random:tiny", "takes no model")]:
        with pytest.raises(ValueError, match=match):
            AgentSpec.parse(bad)
    with pytest.raises(ValueError, match="expected a kind"):
        Args(agents=["greedy", "typo"])
    with pytest.raises(ValueError, match="episodes: expected a positive int, got 0"):
        Args(episodes=0)
    with pytest.raises(
        ValueError, match=r"max_new_tokens: expected a positive int \(or 0 for the env's default\), got -1"
    ):
        Args(max_new_tokens=-1)
    assert Args(max_new_tokens=0).max_new_tokens == 0


def test_replace_section(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("a\n<!-- x:start -->\n<!-- x:end -->\nb\n")
    common.replace_section(path, "x", "new\n")
    common.replace_section(path, "x", "newer $1 \\1")  # idempotent; no regex escapes in the body
    assert path.read_text() == "a\n<!-- x:start -->\nnewer $1 \\1\n<!-- x:end -->\nb\n"
    with pytest.raises(ValueError, match="<!-- y:start -->"):
        common.replace_section(path, "y", "z")


def test_bar_chart_and_curves_are_pngs(tmp_path: Path) -> None:
    rows = [
        {"task": t, "agent": a, "bleu": v, "bleu_std": 0.1}
        for t in ("qa", "copy")
        for a, v in (("g", 0.2), ("b", float("nan")))
    ]
    assert_png(plots.bar_chart(rows, "bleu", tmp_path / "b.png", log=False))
    log = tmp_path / "progress.csv"
    log.write_text("rollout/batch_rew_mean,time/total_timesteps\n0.1,10\n0.3,20\n")
    assert plots.read_curve(log) == ([10.0, 20.0], [0.1, 0.3])
    assert_png(plots.learning_curves({"run": log}, tmp_path / "c.png"))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="time/total_timesteps"):
        plots.read_curve(tmp_path / "bad.csv")


def test_checkpoint_of_another_tokenizer_is_refused(tmp_path: Path) -> None:
    from agents.trainers.grpo import GRPO

    trainer = GRPO(
        "tiny", "TextGen-Copy-v0", env_kwargs={"tokenizer": "tiny"}, n_envs=2, group_size=2, verbose=0, device="cpu"
    )
    trainer.save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match="pass --model tiny"):
        leaderboard.load_policy(str(tmp_path / "model.zip"), "cpu", "smollm2-135m")


def test_isolated_agent_runs_in_a_fresh_process(tiny_args, tmp_path: Path) -> None:
    args = tiny_args(agents=["reference"], episodes=2, max_new_tokens=4, batch_size=2, isolate=True)
    runs = leaderboard.run_agents(args, log=tmp_path / "runs.jsonl")
    assert [len(run["episodes"]) for run in runs] == [2] and runs[0]["memory"] == "rss" and runs[0]["peak_mb"] >= 0
    logged = json.loads((tmp_path / "runs.jsonl").read_text())  # appended by the agent's process as the run finished
    assert logged["run"] == runs[0] and logged["key"] == leaderboard.run_key(args, "reference", "copy", 0)


def test_bad_tasks_and_checkpoints_fail_before_any_agent_plays(tiny_args, tmp_path: Path, capsys) -> None:
    task = tmp_path / "train_only.jsonl"
    task.write_text('{"prompt": "Say hi", "reference": "hi", "split": "train"}\n')
    with pytest.raises(ValueError, match="expected a trainer checkpoint at .*missing.zip, found no such file"):
        Args(agents=["greedy", "ckpt:" + str(tmp_path / "missing.zip")])
    args = tiny_args(agents=["reference"], tasks=["copy", str(task)])
    with pytest.raises(ValueError, match="the 'test' split is empty"):
        leaderboard.run_agents(args)
    assert "[evaluate]" not in capsys.readouterr().out  # nothing played


def test_copy_prompt_and_margins_on_a_file_with_sources(tiny_args, tmp_path: Path) -> None:
    task = tmp_path / "rewrite.jsonl"
    task.write_text(
        '{"prompt": "Rewrite: the big dog ran", "source": "the big dog ran", "reference": "the big dog ran fast", "split": "test"}\n'
    )
    args = tiny_args(agents=["greedy", "copy-prompt", "reference"], tasks=[str(task)], episodes=1, batch_size=1)
    rows, _ = leaderboard.summarize(leaderboard.run_agents(args), args)
    by_agent = {row["agent"]: row for row in rows}
    from text_gym.rewards import sentence_bleu

    expected = float(sentence_bleu(["the big dog ran"], [["the big dog ran fast"]])[0])
    assert by_agent["copy-prompt"]["bleu"] == pytest.approx(expected)  # copies the source, not the instruction
    best = max(by_agent["greedy"]["bleu"], expected)
    assert by_agent["reference"]["margin"] == pytest.approx(1.0 - best)
