"""Tokenizer presets, folders and objects; logits sizes; the tiny byte-level tokenizer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from text_gym import tokenization
from text_gym.errors import UnknownNameError
from text_gym.tokenization import (
    SMOLLM2_VOCAB_SIZE,
    TINY_VOCAB_SIZE,
    TOKENIZER_PRESETS,
    build_tiny_tokenizer,
    load_tokenizer,
    logits_size,
)

SPECIALS = (tokenization.TINY_EOS, tokenization.TINY_PAD)


@pytest.fixture(scope="module")
def tiny():
    return load_tokenizer("tiny")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_tiny_round_trips_any_text_byte_by_byte(text):
    tok = load_tokenizer("tiny")
    if any(special in text for special in SPECIALS):
        return  # special tokens are matched in the input by design
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == [byte + 2 for byte in text.encode("utf-8")]
    assert tok.decode(ids) == text
    assert tok.decode([*ids, tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == text


@pytest.mark.parametrize("text", ["", " ", "  leading and trailing  ", "a . b , c", "naïve 😀 中文 \x00\t\n", "é"])
def test_tiny_round_trips_edge_cases(tiny, text):
    assert tiny.decode(tiny(text)["input_ids"]) == text


def test_tiny_special_ids_and_size(tiny):
    assert (tiny.eos_token, tiny.eos_token_id) == ("<|endoftext|>", 0)
    assert (tiny.pad_token, tiny.pad_token_id) == ("<pad>", 1)
    assert len(tiny) == TINY_VOCAB_SIZE == 258


def test_tiny_is_deterministic():
    a, b = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert a is not b
    assert a.get_vocab() == b.get_vocab()


def test_tiny_chat_template(tiny):
    messages = [{"role": "user", "content": "copy: abc"}]
    text = tiny.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "copy: abc\nA:"
    assert tiny.apply_chat_template(messages, tokenize=False) == "copy: abc"
    turns = [{"role": "system", "content": "S"}, *messages, {"role": "assistant", "content": " abc"}]
    assert tiny.apply_chat_template(turns, tokenize=False) == "S\ncopy: abc\nA: abc<|endoftext|>\n"


def test_presets_are_shared(tiny):
    assert load_tokenizer("tiny") is tiny


def test_object_is_returned_as_is():
    tok = build_tiny_tokenizer()
    assert load_tokenizer(tok) is tok


def test_unknown_name_lists_presets():
    with pytest.raises(UnknownNameError, match="smollm2-135m") as info:
        load_tokenizer("gpt-17")
    assert all(name in str(info.value) for name in TOKENIZER_PRESETS)
    assert "'gpt-17'" in str(info.value)


@pytest.mark.parametrize("spec", [3, None, ["tiny"]])
def test_wrong_type_names_the_type(spec):
    with pytest.raises(TypeError, match=type(spec).__name__):
        load_tokenizer(spec)
    with pytest.raises(TypeError):
        logits_size(spec, load_tokenizer("tiny"))


def test_folder_loads_fresh_equal_tokenizer(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    for spec in (tmp_path, str(tmp_path)):
        tok = load_tokenizer(spec)
        assert tok is not tiny and tok is not load_tokenizer(spec)
        assert (tok.eos_token_id, tok.pad_token_id, len(tok)) == (0, 1, 258)
        assert tok("héllo")["input_ids"] == tiny("héllo")["input_ids"]
        messages = [{"role": "user", "content": "x"}]
        assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == "x\nA:"


def test_folder_without_pad_gets_eos_as_pad(tmp_path):
    tok = build_tiny_tokenizer()
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.pad_token_id == loaded.eos_token_id == 0


def test_logits_size_of_presets_needs_no_model(tiny):
    assert logits_size("tiny", tiny) == TINY_VOCAB_SIZE
    # The smollm2 preset's size is known without converting or loading anything.
    assert logits_size("smollm2-135m", tiny) == SMOLLM2_VOCAB_SIZE == 49152


def test_logits_size_of_folders_and_objects(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    assert logits_size(tmp_path, tiny) == len(tiny)  # no config.json: the tokenizer's size
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 320}))
    assert logits_size(tmp_path, tiny) == 320
    assert logits_size(str(tmp_path), tiny) == 320
    loaded = load_tokenizer(tmp_path)
    assert logits_size(loaded, loaded) == 320  # found through the object's name_or_path
    assert logits_size(tiny, tiny) == len(tiny)
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"vocab_size": 384}}))
    assert logits_size(tmp_path, tiny) == 384


def test_logits_size_unknown_name(tiny):
    with pytest.raises(UnknownNameError, match="tiny"):
        logits_size("no-such-model", tiny)
