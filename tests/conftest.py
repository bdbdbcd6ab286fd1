"""Fixtures shared by every test folder."""

from __future__ import annotations

import shutil

import pytest
import torch

from text_gym import tokenization


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``cuda`` on machines without a GPU (``python -m benchmarks.gpu_check`` runs them there)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: no GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


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
