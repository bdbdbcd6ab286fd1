"""The warm start has RL's protection: a signal saves a loadable checkpoint, periodic saves, an exact resume, quiet logs."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents.train import main
from agents.trainers.grpo import GRPO
from agents.trainers.interrupts import TrainingInterrupted
from agents.trainers.periodic import PeriodicCheckpoints
from agents.trainers.supervised import TeacherForcing

ROOT = Path(__file__).resolve().parents[3]
ECHO = {"tokenizer": "tiny", "max_new_tokens": 3}


def grpo(**kwargs):
    defaults = {"env_kwargs": ECHO, "n_envs": 4, "group_size": 2, "seed": 0, "verbose": 0}
    return GRPO("tiny", "TextGen-EchoLetter-v0", **{**defaults, **kwargs})


def signal_at_step(monkeypatch, n: int, sig: int = signal.SIGINT) -> None:
    """Send ``sig`` to this process during the ``n``-th warm-start step (the step finishes, then it stops)."""
    step, calls = TeacherForcing.step, []

    def step_then_signal(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), sig)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(TeacherForcing, "step", step_then_signal)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_a_signal_during_the_warm_start_saves_and_the_resume_is_exact(tmp_path, monkeypatch, schedule):
    straight = grpo()
    straight.warm_start(120, learning_rate=1e-3, batch_size=4, lr_schedule=schedule)

    signal_at_step(monkeypatch, 3)
    first = grpo()
    with pytest.raises(TrainingInterrupted, match=r"SIGINT.*resume with GRPO.load\(.*\).warm_start\(\)") as info:
        first.warm_start(
            120, learning_rate=1e-3, batch_size=4, lr_schedule=schedule, checkpoint_on_interrupt=tmp_path / "stop.zip"
        )
    monkeypatch.undo()
    assert info.value.exit_code == 130 and len(first.supervised_history) == 3
    resumed = GRPO.load(tmp_path / "stop.zip")
    done = resumed.warm_start_progress
    assert done == first.supervised_history[-1]["supervised/tokens"] > 0
    with pytest.raises(ValueError, match="expected no budget: this trainer has a warm start in progress"):
        resumed.warm_start(10)
    resumed.warm_start()
    assert resumed.warm_start_progress is None
    keys = ("supervised/loss", "supervised/tokens", "supervised/grad_norm", "supervised/learning_rate")  # not CPU-s
    assert [[r[k] for k in keys] for r in resumed.supervised_history] == [
        [r[k] for k in keys] for r in straight.supervised_history
    ]
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_warm_start_saves_periodically_and_logs_one_line_per_interval(tmp_path, capsys):
    trainer = grpo(verbose=1)
    checkpoints = PeriodicCheckpoints(tmp_path, minutes=1e-9, keep=2, prefix="grpo")
    rows = trainer.warm_start(200, batch_size=4, log_interval=5, checkpoints=checkpoints)
    saved = checkpoints.saved()
    assert [p.name for p in saved] == [f"grpo_warm_{int(r['supervised/tokens'])}_tokens.zip" for r in rows[-3:-1]]
    assert GRPO.load(saved[-1]).warm_start_progress == int(rows[-2]["supervised/tokens"])
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("warm start: ")]
    assert len(lines) == -(-len(rows) // 5) and "supervised/" not in printed  # no logger tables
    assert lines[-1].startswith(f"warm start: {int(rows[-1]['supervised/tokens'])}/200 tokens, step {len(rows)}")


ECHO_CLI = ["--env", "TextGen-EchoLetter-v0", "--model", "tiny", "--max-new-tokens", "3", "--n-envs", "4"]
ECHO_CLI += ["--group-size", "2", "--checkpoint-minutes", "0", "--eval-episodes", "0", "--no-progress"]


def test_ctrl_c_during_the_cli_warm_start_saves_and_the_printed_command_finishes_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    signal_at_step(monkeypatch, 2)
    with pytest.raises(SystemExit) as info:
        main([*ECHO_CLI, "--warm-start-tokens", "100", "--steps", "8", "--threads", "1", "--out", str(out)])
    monkeypatch.undo()
    printed = capsys.readouterr().out
    assert info.value.code == 130 and "Resume with:" in printed
    assert GRPO.load(out / "interrupted.zip").warm_start_progress > 0
    command = shlex.split(printed.split("Resume with:\n")[1].splitlines()[0])
    results = main(command[3:])
    assert results["supervised_history"][-1]["supervised/tokens"] >= 100 and len(results["supervised_history"]) > 2
    assert GRPO.load(out / "model.zip").num_timesteps >= 8 and "supervised greedy" not in printed


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signalled_cli_warm_start_exits_like_a_shell(tmp_path, sig, code):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "agents.train", *ECHO_CLI, "--warm-start-tokens", "100000000", "--threads", "1"]
    args += ["--checkpoint-minutes", "0.001", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((out / "checkpoints").glob("grpo_warm_*_tokens.zip")):
        time.sleep(0.2)
    process.send_signal(sig)
    printed, _ = process.communicate(timeout=240)
    assert process.returncode == code, printed[-2000:]
    assert "Traceback" not in printed and f"--resume {out / 'interrupted.zip'}" in printed
    assert GRPO.load(out / "interrupted.zip").warm_start_progress > 0
