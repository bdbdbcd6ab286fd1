"""Manners a new user expects: a resume command that works from anywhere, and a final model without optimizer state."""

from __future__ import annotations

import json
import os
import shlex
import signal
import zipfile

import pytest

from agents.train import main
from agents.trainers.grpo import GRPO

RECORDS = [{"prompt": f"Say w{i}", "reference": f"w{i}"} for i in range(40)]
CLI = ["--model", "tiny", "--max-new-tokens", "3", "--n-envs", "4", "--group-size", "2", "--eval-episodes", "0"]
CLI += ["--no-progress", "--threads", "1", "--checkpoint-minutes", "0"]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A folder with data.jsonl, made the working directory."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_a_relative_task_path_is_stored_absolute(data_dir, tmp_path):
    kwargs = {"tokenizer": "tiny", "max_new_tokens": 3, "task": "data.jsonl"}
    trainer = GRPO("tiny", "TextGen-v0", env_kwargs=kwargs, n_envs=4, group_size=2, verbose=0)
    trainer.save("run.zip")
    os.chdir(tmp_path / "elsewhere")
    loaded = GRPO.load(data_dir / "run.zip")
    assert loaded.env_kwargs["task"] == str(data_dir / "data.jsonl")


def test_the_printed_resume_command_works_from_another_directory(data_dir, tmp_path, capsys, monkeypatch):
    train, calls = GRPO.train, []

    def train_then_ctrl_c(self, batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return train(self, batch)

    monkeypatch.setattr(GRPO, "train", train_then_ctrl_c)
    with pytest.raises(SystemExit):
        main([*CLI, "--task", "data.jsonl", "--steps", "100000", "--out", "run"])  # both relative
    monkeypatch.undo()
    command = shlex.split(capsys.readouterr().out.split("Resume with:\n")[1].splitlines()[0])
    assert command[command.index("--resume") + 1] == str(data_dir / "run" / "interrupted.zip")
    assert command[command.index("--out") + 1] == str(data_dir / "run")
    os.chdir(tmp_path / "elsewhere")
    command[command.index("--steps") + 1] = "8"
    results = main(command[3:])
    assert results["total_train_tokens"] > results["train_tokens"] > 0
    again = main(["--resume", str(data_dir / "run" / "interrupted.zip"), "--task", "../data/data.jsonl",
                  "--steps", "8", "--out", str(data_dir / "run"), *CLI])  # fmt: skip
    assert again["train_tokens"] > 0  # the same file, spelled relative to here: no contradiction


def test_the_final_model_holds_weights_and_settings_and_checkpoints_the_rest(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*CLI[:-2], "--env", "TextGen-EchoLetter-v0", "--steps", "16", "--checkpoint-minutes", "1e-9"]
    main([*args, "--out", str(out)])
    final, [checkpoint, *_] = out / "model.zip", sorted((out / "checkpoints").glob("grpo_*_steps.zip"))
    with zipfile.ZipFile(final) as archive:
        assert "trainer_state.safetensors" not in archive.namelist()
    with zipfile.ZipFile(checkpoint) as archive:
        assert "trainer_state.safetensors" in archive.namelist()
    assert final.stat().st_size < 0.75 * checkpoint.stat().st_size
    loaded = GRPO.load(final)
    assert loaded.num_timesteps >= 16 and loaded.history and loaded.env.num_envs == 4
    capsys.readouterr()
    main(["--resume", str(final), "--steps", "8", "--no-progress", "--eval-episodes", "0", "--out", str(out)])
    assert "holds weights and settings only: training goes on from its weights with a fresh optimizer" in (
        capsys.readouterr().out
    )
