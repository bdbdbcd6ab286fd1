"""Lazy package exports: ``from agents.trainers import GRPO`` imports the module only when asked."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], moved: dict[str, str] | None = None) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``exports[name]`` (a module path) on first use.

    So ``import agents`` stays cheap (no torch, no SB3) while its names read as one namespace.
    ``moved`` maps names that lived in ``package`` before 0.2 to their module now: they still
    resolve, with a ``DeprecationWarning`` (once: the value is then cached in the package).
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name) or (moved or {}).get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        if name in (moved or {}):
            from agents._moved import warn_moved

            warn_moved(f"{package}.{name}", f"{module}.{name}")
            sys.modules[package].__dict__[name] = value  # `from package import name` looks twice
        return value

    return __getattr__
