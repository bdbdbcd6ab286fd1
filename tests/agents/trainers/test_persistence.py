"""Training never loses work: exact paths, atomic saves under SIGKILL, exact resume, safe interrupts, early errors."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.modeling.loading import resolve_device
from agents.train import main
from agents.trainers.checkpoint import CheckpointError, archive_path
from agents.trainers.grpo import GRPO
from agents.trainers.sequence_ppo import SequencePPO

ROOT = Path(__file__).resolve().parents[3]
ECHO = {"tokenizer": "tiny", "max_new_tokens": 3}


def grpo(**kwargs):
    defaults = {"env_kwargs": ECHO, "n_envs": 4, "group_size": 2, "seed": 0, "verbose": 0, "learning_rate": 1e-2}
    return GRPO("tiny", "TextGen-EchoLetter-v0", **{**defaults, **kwargs})


def weights(trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.policy.parameters()]


def test_save_writes_exactly_the_path_it_is_given(tmp_path):
    trainer = grpo()
    trainer.learn(8)
    first = trainer.save(tmp_path / "model.v1")
    trainer.learn(8, reset_num_timesteps=False)
    second = trainer.save(tmp_path / "model.v2")
    assert (first.name, second.name) == ("model.v1", "model.v2") and trainer.save(
        tmp_path / "model"
    ).name == "model.zip"
    assert GRPO.load(tmp_path / "model.v1").num_timesteps < GRPO.load(tmp_path / "model.v2").num_timesteps
    assert archive_path("a/b") == Path("a/b.zip")


def test_load_names_the_archive_when_it_is_broken(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        GRPO.load(tmp_path / "nope.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.zip is not a trainer checkpoint"):
        GRPO.load(tmp_path / "junk.zip")
    with zipfile.ZipFile(tmp_path / "half.zip", "w") as archive:
        archive.writestr("model/actor_critic.json", "{}")
    with pytest.raises(CheckpointError, match=r"half.zip is incomplete: .* missing \['trainer.json'\]"):
        GRPO.load(tmp_path / "half.zip")
    grpo().save(tmp_path / "grpo.zip")
    with pytest.raises(CheckpointError, match="expected a saved SequencePPO, got a saved GRPO"):
        SequencePPO.load(tmp_path / "grpo.zip")


@pytest.mark.parametrize(
    "make",
    [
        lambda: grpo(beta=0.1),
        lambda: grpo(baseline="scst"),
        lambda: grpo(baseline="risk", candidates="beam"),
        lambda: SequencePPO(
            "tiny",
            "TextGen-EchoLetter-v0",
            env_kwargs=ECHO,
            n_envs=4,
            seed=0,
            verbose=0,
            learning_rate=1e-2,
            kl_coef=0.1,
            kl_target=0.5,
        ),
    ],
    ids=["grpo-kl", "grpo-scst", "grpo-risk-beam", "ppo-adaptive-kl"],
)
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, make):
    straight = make()
    straight.learn(24)
    straight.learn(24, reset_num_timesteps=False)

    first = make()
    first.learn(24)
    first.save(tmp_path / "half.zip")
    np.random.rand(3), torch.rand(3)  # a resumed process has other global random states: they are restored
    resumed = type(first).load(tmp_path / "half.zip")
    resumed.learn(24, reset_num_timesteps=False)

    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert resumed.num_timesteps == straight.num_timesteps and resumed.iteration == straight.iteration
    keys = ["rollout/batch_rew_mean", "train/policy_gradient_loss", "train/approx_kl", "time/total_timesteps"]
    assert [[row[k] for k in keys] for row in resumed.history] == [[row[k] for k in keys] for row in straight.history]
    state = straight.optimizer.state_dict()["state"]
    assert all(torch.equal(state[i]["exp_avg"], resumed.optimizer.state_dict()["state"][i]["exp_avg"]) for i in state)


def test_settings_round_trip_or_say_why_not(tmp_path):
    from stable_baselines3.common.utils import LinearSchedule

    trainer = grpo(learning_rate=LinearSchedule(1e-2, 1e-3, 0.5))
    trainer.save(tmp_path / "schedule.zip")
    loaded = GRPO.load(tmp_path / "schedule.zip")
    assert loaded.config.learning_rate(0.0) == pytest.approx(1e-3) and loaded.env_kwargs == ECHO

    def my_reward(prompts, outputs, references):
        return [float(o == r[0]) for o, r in zip(outputs, references, strict=True)]

    custom = grpo(env_kwargs={**ECHO, "reward": my_reward}, learning_rate=lambda progress: 1e-2 * progress)
    with pytest.warns(UserWarning, match="cannot store learning_rate=.*env_kwargs\\['reward'\\]"):
        custom.save(tmp_path / "custom.zip")
    with pytest.raises(CheckpointError, match=r"pass learning_rate=\.\.\. .*env_kwargs=\{'reward': \.\.\.\}"):
        GRPO.load(tmp_path / "custom.zip")
    again = GRPO.load(tmp_path / "custom.zip", learning_rate=1e-3, env_kwargs={"reward": my_reward})
    assert again.env_kwargs["tokenizer"] == "tiny" and again.env.single_action_space.n == 258  # nothing else dropped

    named = grpo(env_kwargs={**ECHO, "reward": {"bleu": 1.0, "source-bleu": -0.5}})
    named.save(tmp_path / "named.zip")
    assert GRPO.load(tmp_path / "named.zip").env_kwargs["reward"] == {"bleu": 1.0, "source-bleu": -0.5}

    saved = grpo()
    saved.env_kwargs["tokenizer"] = str(tmp_path / "gone")  # a tokenizer folder that no longer exists
    saved.save(tmp_path / "gone.zip")
    with pytest.raises(CheckpointError, match="trained with tokenizer .*gone.*neither a preset"):
        GRPO.load(tmp_path / "gone.zip")


def test_settings_are_checked_before_any_work():
    with pytest.raises(ValueError, match=r"Discrete\(49152\) but the model outputs 258 logits"):
        GRPO("tiny", "TextGen-EchoLetter-v0", n_envs=4, group_size=2, verbose=0)
    with pytest.raises(ValueError, match="learning_rate: expected a finite positive float"):
        grpo(learning_rate=float("inf"))
    with pytest.raises(ValueError, match="total_timesteps: expected a positive int .* got 0"):
        grpo().learn(0)
    with pytest.raises(ValueError, match=r"max_prompt_tokens \+ max_new_tokens <= 1,048,576"):
        grpo(env_kwargs={**ECHO, "max_new_tokens": 10**9})
    with pytest.raises(ValueError, match=r"<= 512 \(the tokenizer's model_max_length\)"):
        grpo(env_kwargs={**ECHO, "max_new_tokens": 500})
    with pytest.raises(ValueError, match=r"<= 512 \(the model's context\), got 600"):
        grpo().policy.check_env(258, None, 600)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="expected an available device, got 'cuda'"):
            resolve_device("cuda")


SAVE_SCRIPT = """
import os, sys, zipfile
from agents.trainers.grpo import GRPO
trainer = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs={"tokenizer": "tiny", "max_new_tokens": 3}, n_envs=4,
               group_size=2, seed=0, verbose=0)
path, point = sys.argv[1], sys.argv[2]
trainer.learn(8)
die = lambda *args, **kwargs: os.kill(os.getpid(), 9)
if point == "weights":   # while the model files are written
    import safetensors.torch
    safetensors.torch.save_file = die
elif point == "zip":     # halfway through the archive
    original = zipfile.ZipFile.write
    calls = []
    def write(self, *args, **kwargs):
        calls.append(1)
        return die() if len(calls) == 3 else original(self, *args, **kwargs)
    zipfile.ZipFile.write = write
elif point == "replace":  # the archive is complete, not yet moved into place
    os.replace = die
trainer.save(path)
"""


@pytest.mark.slow  # a training run in a subprocess per case
@pytest.mark.parametrize("point", ["weights", "zip", "replace"])
def test_a_save_killed_midway_leaves_the_previous_checkpoint(tmp_path, point):
    script, path = tmp_path / "save.py", tmp_path / "model.zip"
    script.write_text(SAVE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    grpo().save(path)  # the good checkpoint, at step 0
    killed = subprocess.run([sys.executable, str(script), str(path), point], env=env, cwd=ROOT, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert GRPO.load(path).num_timesteps == 0  # the good one, whole


def _cli(tmp_path, *extra):
    args = [
        sys.executable,
        "-m",
        "agents.train",
        "--env",
        "TextGen-EchoLetter-v0",
        "--model",
        "tiny",
        "--max-new-tokens",
        "3",
        "--n-envs",
        "4",
        "--group-size",
        "2",
        "--eval-episodes",
        "0",
        "--no-progress",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "run"),
        *extra,
    ]
    return args, {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow  # a training run in a subprocess per case
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signalled_cli_run_saves_and_resumes(tmp_path, sig, code):
    args, env = _cli(tmp_path, "--steps", "10000000")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = tmp_path / "run" / "progress.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (not progress.exists() or progress.read_text().count("\n") < 3):
        time.sleep(0.2)
    process.send_signal(sig)
    out, _ = process.communicate(timeout=240)
    assert process.returncode == code, out[-2000:]
    saved = tmp_path / "run" / "interrupted.zip"
    assert saved.exists() and "Resume with:" in out and f"--resume {saved}" in out
    steps = GRPO.load(saved).num_timesteps
    assert steps > 0
    command = shlex.split(out.split("Resume with:\n")[1].splitlines()[0])  # the printed command, run here
    command[command.index("--steps") + 1] = "20"
    main(command[3:])
    assert GRPO.load(tmp_path / "run" / "model.zip").num_timesteps >= steps + 20


def test_ctrl_c_in_the_python_api_saves_the_last_complete_step(tmp_path):
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.trainers.interrupts import TrainingInterrupted

    class CtrlC(BaseCallback):  # presses Ctrl-C in the middle of the third rollout
        def _on_step(self) -> bool:
            if self.model.iteration == 2 and self.n_calls % 2 == 0 and not hasattr(self, "sent"):
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)
            return True

    trainer = grpo()
    with pytest.raises(TrainingInterrupted, match="SIGINT.*resume with GRPO.load") as info:
        trainer.learn(10_000, callback=CtrlC(), checkpoint_on_interrupt=tmp_path / "stopped.zip")
    assert info.value.exit_code == 130 and info.value.checkpoint == tmp_path / "stopped.zip"
    assert trainer.iteration == 2  # the abandoned third rollout does not count
    straight = grpo()
    straight.learn(1)
    straight.learn(1, reset_num_timesteps=False)  # two iterations, uninterrupted
    resumed = GRPO.load(tmp_path / "stopped.zip")
    assert resumed.num_timesteps == straight.num_timesteps
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
    resumed.learn(1, reset_num_timesteps=False)
    straight.learn(1, reset_num_timesteps=False)  # the rewound random states: the third iteration is the same
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
