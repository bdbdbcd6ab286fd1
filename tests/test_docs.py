"""The docs say what the code does: the env's Rewards section, the interrupt checkpoint's name, the torch pin."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from text_gym.envs.text_gen import TextGenEnv
from text_gym.rewards import reward_names

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_env_docstring_names_every_registered_reward():
    rewards = TextGenEnv.__doc__.split("## Rewards")[1].split("## ")[0]
    assert [name for name in reward_names() if f'``"{name}"``' not in rewards] == []


def test_readme_names_the_torch_pin_of_the_makefile():
    pin = re.search(r"^TORCH \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1]
    assert f"`{pin}`" in README and "CPU pin" not in README


def test_readme_names_the_file_the_python_api_writes_on_ctrl_c(tmp_path, monkeypatch):
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.trainers.grpo import GRPO
    from agents.trainers.interrupts import TrainingInterrupted

    class CtrlC(BaseCallback):
        def _on_step(self) -> bool:
            if self.model.iteration == 1 and not hasattr(self, "sent"):
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)
            return True

    monkeypatch.chdir(tmp_path)
    env_kwargs = {"tokenizer": "tiny", "max_new_tokens": 3}
    trainer = GRPO("tiny", "TextGen-EchoLetter-v0", env_kwargs=env_kwargs, n_envs=4, group_size=2, seed=0, verbose=0)
    with pytest.raises(TrainingInterrupted):
        trainer.learn(10_000, callback=CtrlC())  # checkpoint_on_interrupt left at its default
    assert [p.name for p in tmp_path.glob("*.zip")] == ["GRPO_interrupted.zip"]
    assert "`<ClassName>_interrupted.zip` (`GRPO_interrupted.zip`)" in README
