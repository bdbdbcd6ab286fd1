"""Model presets, folders and objects; devices; compatibility; the real SmolLM2 (slow)."""

from __future__ import annotations

import pytest
import torch

from agents.modeling.loading import (
    MODEL_PRESETS,
    check_compatible,
    load_model,
    load_model_and_tokenizer,
    model_logits_size,
    resolve_device,
)
from text_gym import assets
from text_gym.assets import smollm2_checkpoint
from text_gym.errors import UnknownNameError
from text_gym.tokenization import build_tiny_tokenizer, load_tokenizer, logits_size


def same_weights(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == resolve_device(None).type == expected
    with pytest.raises(ValueError, match="got 'gpu'"):
        resolve_device("gpu")


def test_tiny_model_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b = load_model("tiny"), load_model("tiny")
    assert torch.equal(state, torch.get_rng_state())
    assert a is not b and same_weights(a, b)
    assert not a.training and a.device.type == "cpu" and a.dtype == torch.float32
    assert (a.config.eos_token_id, a.config.pad_token_id) == (0, 1)
    assert model_logits_size(a) == len(load_tokenizer("tiny")) == 258


def test_tiny_model_runs_with_tiny_tokenizer():
    model, tok = load_model_and_tokenizer("tiny")
    ids = torch.tensor([tok("hello")["input_ids"]])  # (B=1, T=5)
    with torch.no_grad():
        logits = model(ids).logits  # (B, T, 258)
    assert logits.shape == (1, 5, 258) and torch.isfinite(logits).all()


def test_unknown_and_wrong_type():
    with pytest.raises(UnknownNameError) as info:
        load_model("llama-9000")
    assert all(name in str(info.value) for name in MODEL_PRESETS)
    with pytest.raises(TypeError, match="int"):
        load_model(7)
    with pytest.raises(TypeError, match="load_model"):
        load_model_and_tokenizer(load_model("tiny"))


def test_object_is_returned_and_moved_only_when_asked():
    model = load_model("tiny")
    assert load_model(model) is model and model.dtype == torch.float32
    assert load_model(model, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_folder_round_trip(tmp_path):
    model = load_model("tiny")
    model.save_pretrained(tmp_path)
    build_tiny_tokenizer().save_pretrained(tmp_path)
    loaded, tok = load_model_and_tokenizer(tmp_path)
    assert same_weights(model, loaded) and not loaded.training
    assert logits_size(tmp_path, tok) == model_logits_size(loaded) == 258
    assert load_model(str(tmp_path), dtype=torch.bfloat16).dtype == torch.bfloat16


def test_check_compatible_rejects_too_few_logits():
    model, tok = load_model("tiny"), build_tiny_tokenizer()
    check_compatible(model, tok)
    tok.add_tokens([f"<extra_{i}>" for i in range(10)])
    with pytest.raises(ValueError, match=r"268.*258"):
        check_compatible(model, tok)
    model.resize_token_embeddings(len(tok))
    assert model_logits_size(model) == 268
    check_compatible(model, tok)


def test_check_compatible_rejects_other_eos():
    model = load_model("tiny")
    model.config.eos_token_id = model.generation_config.eos_token_id = 5
    with pytest.raises(ValueError, match=r"\[5\].*eos_token_id=0"):
        check_compatible(model, load_tokenizer("tiny"))
    model.generation_config.eos_token_id = [5, 0]  # one of several stop ids is fine
    model.config.eos_token_id = None
    check_compatible(model, load_tokenizer("tiny"))


@pytest.mark.slow
def test_smollm2_converts_once_and_reloads_identically(empty_cache, monkeypatch):
    pytest.importorskip("gguf")
    converted = []
    write = assets._write_smollm2
    monkeypatch.setattr(assets, "_write_smollm2", lambda folder: converted.append(write(folder)))
    model, tok = load_model_and_tokenizer("smollm2-135m")
    assert len(converted) == 1 and smollm2_checkpoint() == empty_cache / "smollm2-135m"
    assert not hasattr(model.config, "quantization_config") and model.dtype == torch.float32
    assert model_logits_size(model) == logits_size("smollm2-135m", tok) == len(tok) == 49152
    assert tok.pad_token_id is not None and tok.eos_token_id == model.config.eos_token_id
    assert load_tokenizer("smollm2-135m") is tok
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n")
    assert tok.decode(tok("Hello, world!")["input_ids"]) == "Hello, world!"

    ids = torch.tensor([tok("The capital of France is")["input_ids"]])  # (B=1, T)
    with torch.no_grad():
        logits = model(ids).logits  # (B, T, 49152)
        assert torch.equal(logits, load_model("smollm2-135m")(ids).logits)
        assert torch.equal(logits, converted[0].eval()(ids).logits)  # the model straight from the GGUF
    assert len(converted) == 1
