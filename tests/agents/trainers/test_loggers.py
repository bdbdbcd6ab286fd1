"""The trainers' SB3 loggers: no stray temporary folders, a progress.csv that a resumed run extends, a bar that keeps its total."""

from __future__ import annotations

import csv
import tempfile

import pytest

from agents.trainers.grpo import GRPO
from agents.trainers.loggers import make_logger

ECHO = {"tokenizer": "tiny", "max_new_tokens": 3}


def grpo(**kwargs):
    return GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs=ECHO, n_envs=4, group_size=2, seed=0, **kwargs)


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("verbose", [0, 1])
def test_training_makes_no_temporary_folder(tmp_path, monkeypatch, verbose):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what SB3's configure would create SB3-<date> in
    trainer = grpo(verbose=verbose)
    trainer.learn(8)
    assert trainer.logger.dir is None and list(tmp_path.iterdir()) == []


def test_make_logger_creates_a_folder_only_for_files(tmp_path, capsys):
    logger = make_logger(None, ["stdout"])
    logger.record("a", 1)
    logger.dump(0)
    assert "| a | 1 |" in capsys.readouterr().out
    assert make_logger(None, []).output_formats == []
    with pytest.raises(ValueError, match=r"expected a folder for the file formats \['csv'\], got folder=None"):
        make_logger(None, ["stdout", "csv"])
    make_logger(tmp_path / "logs", ["csv"])
    assert (tmp_path / "logs" / "progress.csv").exists()


def test_a_resumed_log_keeps_the_first_segment_and_adds_columns(tmp_path):
    first = make_logger(tmp_path, ["csv"])
    for step in (10, 20, 30):  # the run went on to 30 after its checkpoint at 20, then was killed
        first.record("time/total_timesteps", step)
        first.record("rollout/ep_rew_mean", step / 10)
        first.dump(step)
    first.close()
    with open(tmp_path / "progress.csv", "a") as file:
        file.write("4")  # a row cut short by the kill

    second = make_logger(tmp_path, ["csv"], resume_at=20)
    for step in (30, 40):
        second.record("time/total_timesteps", step)
        second.record("rollout/ep_rew_mean", step / 100)
        second.record("train/new_stat", 1)  # a column the first segment did not have
        second.dump(step)
    second.close()

    logged = rows(tmp_path / "progress.csv")
    assert [int(r["time/total_timesteps"]) for r in logged] == [10, 20, 30, 40]
    assert [float(r["rollout/ep_rew_mean"]) for r in logged] == [1.0, 2.0, 0.3, 0.4]  # the resumed run's 30
    assert [r["train/new_stat"] for r in logged] == ["", "", "1", "1"]


def test_a_fresh_log_starts_over_and_resume_without_a_file_starts_one(tmp_path):
    for resume_at in (None, 5):
        logger = make_logger(tmp_path / str(resume_at), ["csv"], resume_at=resume_at)
        logger.record("time/total_timesteps", 7)
        logger.dump(7)
        logger.close()
        assert [r["time/total_timesteps"] for r in rows(tmp_path / str(resume_at) / "progress.csv")] == ["7"]


def test_the_progress_bar_ends_at_the_tokens_that_really_ran_and_says_rollouts_are_whole(capsys):
    trainer = grpo(verbose=0)
    trainer.learn(1, progress_bar=True)  # one rollout of 4 episodes: at least 4 tokens
    err = capsys.readouterr().err
    final = err.split("\r")[-1]
    n, most = trainer.num_timesteps, trainer.env.num_envs * trainer.layout.max_new_tokens
    assert n > 1 and f"0/1 [00:00<?, ?tok/s, whole rollouts=up to +{most}tok]" in err, err
    assert f"{n}/{n} " in final and "100%" in final, final
