"""Failed saves never lose the model: a fallback for the final save, warnings for periodic ones, no stray files."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import agents.trainers.checkpoint as checkpoint
from agents.train import main
from agents.trainers.grpo import GRPO
from agents.trainers.periodic import PeriodicCheckpoints

ECHO = {"tokenizer": "tiny", "max_new_tokens": 3}
CLI = ["--env", "TextGen-EchoLetter-v0", "--model", "tiny", "--max-new-tokens", "3", "--n-envs", "4"]
CLI += ["--group-size", "2", "--eval-episodes", "0", "--no-progress", "--threads", "1"]


def grpo(**kwargs):
    defaults = {"env_kwargs": ECHO, "n_envs": 4, "group_size": 2, "seed": 0, "verbose": 0}
    return GRPO("tiny", "TextGen-EchoLetter-v0", **{**defaults, **kwargs})


def full_disk_in(monkeypatch, folder: Path) -> None:
    """Every archive written under ``folder`` fails as on a full disk."""
    write = checkpoint.write_folder

    def failing(target, staged):
        if folder in Path(target).parents:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return write(target, staged)

    monkeypatch.setattr(checkpoint, "write_folder", failing)


def test_a_failed_final_save_keeps_the_weights_at_a_printed_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    full_disk_in(monkeypatch, out)
    main([*CLI, "--steps", "8", "--checkpoint-minutes", "0", "--out", str(out)])
    err = capsys.readouterr().err
    rescued = list((tmp_path / "home" / ".cache" / "text_gym" / "rescued").glob("*-model.zip"))
    assert len(rescued) == 1 and not (out / "model.zip").exists()
    assert f"Saving {out / 'model.zip'} failed" in err and f"Saved to {rescued[0]}" in err
    assert GRPO.load(rescued[0]).num_timesteps >= 8


def test_a_failed_periodic_save_warns_and_training_goes_on(tmp_path, monkeypatch):
    full_disk_in(monkeypatch, tmp_path)
    trainer = grpo()
    with pytest.warns(UserWarning, match="Periodic checkpoint in .* failed .*No space left.*training goes on"):
        trainer.learn(24, checkpoints=PeriodicCheckpoints(tmp_path / "checkpoints", minutes=1e-9))
    assert trainer.num_timesteps >= 24 and trainer.iteration >= 2  # past the first failed save


def _stray(folder: Path, name: str, pid: int, as_folder: bool) -> Path:
    path = folder / f".{name}.tmp-{pid}-{'dir' if as_folder else 'zip'}"
    if as_folder:
        (path / "model").mkdir(parents=True)
        (path / "model" / "weights").write_bytes(b"0" * 100)
    else:
        path.write_bytes(b"half a zip")
    return path


def test_strays_of_killed_saves_are_removed_at_the_next_save_and_at_exit(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    strays = [_stray(tmp_path, "model.zip", dead.pid, as_folder) for as_folder in (False, True)]
    live = _stray(tmp_path, "model.zip", os.getppid(), False)  # another process's save in progress
    grpo().save(tmp_path / "model.zip")
    assert not any(p.exists() for p in strays) and live.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name and p != live]  # the save left none of its own

    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    strays = [
        _stray(out / "checkpoints", "grpo_8_steps.zip", dead.pid, True),
        _stray(out, "results.json", 1 << 22, False),
    ]
    main([*CLI, "--steps", "8", "--checkpoint-minutes", "0", "--out", str(out)])
    assert not any(p.exists() for p in strays)


SAVE_AND_DIE = """
import os, sys
import safetensors.torch
from agents.trainers.grpo import GRPO
trainer = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs={"tokenizer": "tiny", "max_new_tokens": 3}, n_envs=4,
               group_size=2, seed=0, verbose=0)
safetensors.torch.save_file = lambda *args, **kwargs: os.kill(os.getpid(), 9)  # killed while the state is written
trainer.save(sys.argv[1])
"""


def test_a_killed_save_leaves_its_model_copy_beside_the_target_where_the_next_save_removes_it(tmp_path):
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    target = tmp_path / "model.zip"
    killed = subprocess.run([sys.executable, "-c", SAVE_AND_DIE, str(target)], env=env, cwd=root, timeout=300)
    assert killed.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".model.zip.tmp-")]
    assert left and (left[0] / "model" / "lm").is_dir()  # the model copy: here, not in the system temp folder
    grpo().save(target)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name] and GRPO.load(target).num_timesteps == 0
