"""Fixtures shared by every test folder."""

from __future__ import annotations

import shutil

import pytest

from text_gym import tokenization


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """Point the cache at an empty folder, and forget preset tokenizers loaded from another one."""
    monkeypatch.setenv("TEXT_GYM_CACHE", str(tmp_path / "cache"))
    tokenization._load_preset.cache_clear()
    yield tmp_path / "cache"
    tokenization._load_preset.cache_clear()
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)  # a converted SmolLM2 is 540 MB


@pytest.fixture
def tiny_args():
    """Build leaderboard arguments for the tiny model on ``copy``, one seed, in this process; overrides win."""
    from benchmarks.leaderboard import Args

    def make(**overrides: object) -> Args:
        defaults = {
            "tasks": ["copy"],
            "seeds": [0],
            "model": "tiny",
            "coherence": False,
            "isolate": False,
            "threads": 1,
        }
        return Args(**{**defaults, **overrides})

    return make
