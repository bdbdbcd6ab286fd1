"""The import paths of 0.1, when ``agents/`` was one flat folder: they still work, with a warning.

``import agents.grpo`` (or ``from agents.rollout import EnvSpec``) gives a stand-in module that
forwards every attribute to where it lives now and warns once per old module. The stand-ins are
made on demand by an import hook that :mod:`agents` installs, so the folder holds no shim files.
They will be removed in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED", "RENAMED", "install", "warn_moved"]

MOVED: dict[str, tuple[str, ...]] = {
    "agents.lm": ("agents.modeling.lm",),
    "agents.kv_cache": ("agents.modeling.kv_cache",),
    "agents.prefix": ("agents.modeling.prefix",),
    "agents.policy": ("agents.sb3.policy", "agents.sb3.maskable"),
    "agents.trainer_base": ("agents.trainers.base",),
    "agents.trainer_utils": ("agents.trainers.config", "agents.trainers.callbacks", "agents.modeling.loading"),
    "agents.rollout": ("agents.trainers.rollout", "agents.trainers.scoring", "agents.trainers.envs"),
    "agents.grpo": ("agents.trainers.grpo",),
    "agents.sequence_ppo": ("agents.trainers.sequence_ppo",),
    "agents.supervised": ("agents.trainers.supervised",),
    "agents.checkpoint": ("agents.trainers.checkpoint",),
    "agents.interrupts": ("agents.trainers.interrupts",),
}
"""Old module -> the modules that now hold its names, searched in order."""

RENAMED: dict[str, str] = {
    "EnvSpec": "EnvLayout",  # it shadowed gymnasium's EnvSpec
    "env_attributes": "env_layout",
    "make_vec_env": "make_trainer_envs",  # it shadowed SB3's make_vec_env, which returns a VecEnv
    "position_ids_from_mask": "positions_from_mask",
}
"""Old name -> new name, for names that changed as they moved."""


def warn_moved(old: str, new: str, skip: tuple[str, ...] = ()) -> None:
    """Warn (``DeprecationWarning``) that ``old`` is now ``new``, attributed to the user's code.

    Frames of this module, of the import machinery, of lazy ``__getattr__`` hooks and of the
    files in ``skip`` (a stand-in module of its own) are not the user's code.
    """
    warnings.warn(
        f"{old} moved to {new} in text_gym 0.2; the old path will be removed in 0.3.",
        DeprecationWarning,
        stacklevel=_caller_level(skip),
    )


def install() -> None:
    """Add the import hook for the old paths (idempotent)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())


class _MovedModule(types.ModuleType):
    """Stands in for an old module; attributes come from the modules that now hold them."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved to {', '.join(targets)}; see agents._moved.")
        self.__targets = targets

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        new = RENAMED.get(name, name)
        for target in self.__targets:
            module = importlib.import_module(target)
            if hasattr(module, new):
                value = getattr(module, new)
                if new != name:
                    warn_moved(f"{self.__name__}.{name}", f"{getattr(value, '__module__', target)}.{new}")
                setattr(self, name, value)  # later lookups neither search nor warn again
                return value
        raise AttributeError(
            f"module {self.__name__!r} (moved to {', '.join(self.__targets)}) has no attribute {name!r}"
        )


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _MovedModule(spec.name, MOVED[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        warn_moved(module.__name__, " / ".join(MOVED[module.__name__]))


def _caller_level(skip: tuple[str, ...] = ()) -> int:
    """The ``stacklevel`` of the first frame outside this module, the import machinery and lazy hooks.

    ``warnings.warn`` itself does not count importlib's ``_bootstrap`` frames, so neither do we.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_code.co_filename
        internal = "importlib" in name and "_bootstrap" in name
        ours = name in (__file__, *skip) or frame.f_code.co_name == "__getattr__"  # a lazy attribute that forwards here
        if not (internal or ours):
            break
        frame, level = frame.f_back, level + (0 if internal else 1)
    return level
