"""One run per folder: a fresh run refuses another run's --out, a live run locks it, pruning keeps to its own files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from agents.run_folder import RunFolderError, RunLock, check_fresh_folder
from agents.train import main
from agents.trainers.grpo import GRPO
from agents.trainers.periodic import PeriodicCheckpoints

ECHO = ["--env", "TextGen-EchoLetter-v0", "--model", "tiny", "--max-new-tokens", "3", "--n-envs", "4"]
ECHO += ["--group-size", "2", "--checkpoint-minutes", "0", "--eval-episodes", "0", "--no-progress", "--threads", "1"]


def test_a_fresh_run_refuses_a_folder_with_another_runs_files(tmp_path, capsys):
    out = tmp_path / "run"
    main([*ECHO, "--steps", "8", "--out", str(out)])
    first = (out / "model.zip").read_bytes()
    with pytest.raises(
        RunFolderError, match=rf"--out {out} holds another run's files \(.*model.zip, progress.csv"
    ) as info:
        main([*ECHO, "--steps", "8", "--seed", "1", "--out", str(out)])
    assert f"continue it with --resume {out / 'model.zip'}, replace it with --overwrite" in str(info.value)
    assert (out / "model.zip").read_bytes() == first  # untouched
    main([*ECHO, "--steps", "8", "--seed", "1", "--overwrite", "--out", str(out)])
    assert (out / "model.zip").read_bytes() != first and not (out / ".lock").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="expected a folder for the run's files, got the file"):
        check_fresh_folder(tmp_path / "file", overwrite=False)
    for resume in ([], ["--resume", str(out / "model.zip")]):  # refused with the argument checks, exit 2
        with pytest.raises(SystemExit) as exit_info:
            main([*ECHO, *resume, "--steps", "8", "--out", str(tmp_path / "file")])
        assert exit_info.value.code == 2 and "--out: expected a folder" in capsys.readouterr().err


def test_a_run_resumed_from_another_folder_does_not_mix_with_the_run_in_out(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    main([*ECHO, "--steps", "8", "--checkpoint-minutes", "1e-9", "--out", str(first)])
    main([*ECHO, "--steps", "8", "--seed", "1", "--out", str(second)])
    kept = (second / "model.zip").read_bytes()
    checkpoint = sorted((first / "checkpoints").glob("*.zip"))[-1]
    for saved in (first / "model.zip", checkpoint):  # either way, the run's own folder is a
        with pytest.raises(
            RunFolderError, match=rf"--out {second} holds another run's files \(.*\), and --resume {saved} is not"
        ) as info:
            main(["--resume", str(saved), "--steps", "8", "--out", str(second)])
        assert f"resume into the run's own folder (--out {first}) or an empty one" in str(info.value)
    assert (second / "model.zip").read_bytes() == kept and not (second / ".lock").exists()
    fresh = main(["--resume", str(first / "model.zip"), "--steps", "8", "--out", str(tmp_path / "c"), "--no-progress"])
    assert fresh["total_train_tokens"] > 8  # resumed into an empty folder: goes on from the checkpoint's tokens
    main(["--resume", str(first / "model.zip"), "--steps", "8", "--out", str(second), "--overwrite", "--no-progress"])
    assert (second / "model.zip").read_bytes() != kept


def test_a_live_run_locks_its_folder_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    second = f"from pathlib import Path; from agents.run_folder import RunLock; RunLock(Path({str(out)!r})).__enter__()"
    with RunLock(out):  # a live run holds it: a second process is refused, naming the holder
        result = subprocess.run([sys.executable, "-c", second], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 1 and f"is in use by another run (process {os.getpid()}" in result.stderr
    assert not (out / ".lock").exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0.0}))
    main([*ECHO, "--steps", "8", "--out", str(out)])
    assert "Taking over" in capsys.readouterr().out and (out / "model.zip").exists()
    assert not (out / ".lock").exists()


def test_pruning_deletes_only_its_own_runs_checkpoints(tmp_path):
    def make(seed):
        kwargs = {"env_kwargs": {"tokenizer": "tiny", "max_new_tokens": 3}, "n_envs": 4, "group_size": 2}
        return GRPO("tiny", "TextGen-EchoLetter-v0", seed=seed, verbose=0, **kwargs)

    other, ours = make(0), make(1)
    other.learn(40, checkpoints=PeriodicCheckpoints(tmp_path, minutes=1e-9, keep=2, prefix="grpo"))
    theirs = PeriodicCheckpoints(tmp_path, prefix="grpo").saved()
    assert len(theirs) == 2
    ours.learn(80, checkpoints=PeriodicCheckpoints(tmp_path, minutes=1e-9, keep=2, prefix="grpo"))
    assert all(path.exists() for path in theirs)  # the other run's files survive our pruning
    assert len(PeriodicCheckpoints(tmp_path, prefix="grpo").saved(ours.run_id)) == 2
    assert GRPO.load(theirs[-1]).run_id == other.run_id != ours.run_id
