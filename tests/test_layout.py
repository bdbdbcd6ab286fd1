"""The architecture holds: dependency direction, no import cycles, small files and functions, the README's map.

These read the source (``ast``), so they see imports inside functions too.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("text_gym", "agents", "benchmarks")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60  # code lines: the docstring is not counted
# Deprecated 0.1 path (removed in 0.3): it forwards to agents.modeling.loading, and nothing in text_gym imports it.
ALLOWED_UPWARD = {"text_gym.models"}


def source_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in source_files()}


def imported_modules(path: Path) -> set[str]:
    """The project modules ``path`` imports anywhere (a name imported from a package counts as its module when it is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def test_dependency_direction_text_gym_then_agents_then_benchmarks():
    rank = {"text_gym": 0, "agents": 1, "benchmarks": 2}
    upward = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if rank[target.split(".")[0]] > rank[module.split(".")[0]] and module not in ALLOWED_UPWARD
    ]
    assert upward == []


def test_no_module_is_imported_by_a_module_it_imports():
    """No import cycles, counting imports inside functions (a package's implicit import of its parent aside)."""
    cycles = []
    for start in GRAPH:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in GRAPH[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_import_text_gym_loads_neither_agents_nor_torch():
    code = "import sys, text_gym; print(sorted(m for m in sys.modules if m.split('.')[0] in ('agents', 'torch', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def function_lengths(path: Path) -> list[tuple[str, int]]:
    lengths = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            docstring = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
            skip = body[0].end_lineno - body[0].lineno + 1 if docstring else 0
            lengths.append((node.name, node.end_lineno - node.lineno + 1 - skip))
    return lengths


def test_files_and_functions_stay_small():
    big_files = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in source_files()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    long_functions = [
        f"{p.relative_to(ROOT)}: {name} has {n} lines"
        for p in source_files()
        for name, n in function_lengths(p)
        if n > MAX_FUNCTION_LINES
    ]
    assert big_files == [] and long_functions == []


def layout_paths() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- layout:start -->")[1].split("<!-- layout:end -->")[0]
    paths, folders = set(), []
    for line in section.splitlines():
        match = re.match(r"^(?P<indent>[ │├└─]*)(?P<name>[\w./]+)", line)
        if not match or not match["name"].strip():
            continue
        depth = len(match["indent"]) // 4
        folders = folders[:depth]
        name = match["name"]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            paths.add("/".join([*folders, name]))
    return paths


def test_readme_layout_matches_the_tree():
    """Every module of the library is in the README's map, and everything on the map exists."""
    listed = layout_paths()
    modules = {
        str(p.relative_to(ROOT))
        for package in ("text_gym", "agents")
        for p in (ROOT / package).rglob("*.py")
        if p.name != "__init__.py"
    }
    assert sorted(modules - listed) == [], "modules missing from the README's layout section"
    assert sorted(p for p in listed if not (ROOT / p).exists()) == [], "README lists files that do not exist"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("agents.grpo.GRPO", "agents.trainers.grpo.GRPO"),
        ("agents.policy.LMPolicy", "agents.sb3.policy.LMPolicy"),
        ("agents.lm.LMActorCritic", "agents.modeling.lm.LMActorCritic"),
        ("agents.rollout.EnvSpec", "agents.trainers.envs.EnvLayout"),
        ("agents.rollout.score_tokens", "agents.trainers.scoring.score_tokens"),
        ("agents.trainer_utils.resolve_device", "agents.modeling.loading.resolve_device"),
        ("agents.baselines.run_episodes", "agents.evaluation.run_episodes"),
        ("text_gym.models.load_model", "agents.modeling.loading.load_model"),
    ],
)
def test_old_import_paths_still_work_with_a_deprecation_warning(old, new):
    """The old path gives the same object, and warns at the importing line (so default filters show it)."""
    module, _, attr = old.rpartition(".")
    sys.modules.pop(module, None)  # so the import warns again
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        exec(compile(f"from {module} import {attr} as value", __file__, "exec"), namespace)
    new_module, _, new_attr = new.rpartition(".")
    assert namespace["value"] is getattr(importlib.import_module(new_module), new_attr)
    moved = [w for w in caught if issubclass(w.category, DeprecationWarning) and "moved to" in str(w.message)]
    assert moved and all(w.filename == __file__ for w in moved), [(w.filename, str(w.message)) for w in caught]
    assert all("removed in 0.3" in str(w.message) for w in moved)
