"""The architecture holds: dependency direction, no import cycles, small files and functions, the README's map, the exports.

These read the source (``ast``), so they see imports inside functions too.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("text_gym", "agents", "benchmarks")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60  # code lines: the docstring is not counted


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
        if rank[target.split(".")[0]] > rank[module.split(".")[0]]
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


def test_the_trainers_walk_names_files_that_exist():
    """The walk through one GRPO iteration in agents/trainers/__init__.py names real files, in its folder."""
    walk = importlib.import_module("agents.trainers").__doc__.split("One GRPO iteration")[1]
    named = set(re.findall(r"``(\w+\.py)``", walk))
    assert {"on_policy.py", "grpo.py", "rollout.py", "scoring.py"} <= named
    assert len(named) <= 6, f"one iteration should read through about four files, the walk names {sorted(named)}"
    assert sorted(name for name in named if not (ROOT / "agents" / "trainers" / name).exists()) == []


@pytest.mark.parametrize("package", ["agents", "agents.baselines", "agents.modeling", "agents.sb3", "agents.trainers"])
def test_package_exports_resolve_to_their_modules(package):
    """``__all__`` is the exports table, each name is its module's object, and type checkers see the same names."""
    module = importlib.import_module(package)
    assert module.__all__ == list(module._EXPORTS)
    for name, home in module._EXPORTS.items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name), name
    guarded = next(n for n in ast.parse(Path(module.__file__).read_text()).body if isinstance(n, ast.If))
    assert sorted(alias.name for node in guarded.body for alias in node.names) == sorted(module._EXPORTS)


def test_no_import_hook_and_no_unreleased_paths():
    """The flat paths of an unreleased layout (``agents.grpo``...) are gone, not forwarded (``text_gym.models`` too: see the map)."""
    code = (
        "import sys, importlib.util, agents, agents.baselines; "
        "print([type(f).__module__ for f in sys.meta_path if type(f).__module__.startswith(('agents', 'text_gym'))], "
        "[m for m in ('agents.grpo', 'agents.policy', 'agents.rollout') "
        "if importlib.util.find_spec(m) is not None], hasattr(agents.baselines, 'run_episodes'))"
    )
    # -S: no site-packages, so an editable install of another checkout cannot answer for this one.
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[] [] False"


@pytest.mark.parametrize(
    ("package", "why"),
    [
        ("sacrebleu", "text_gym/rewards/sentence.py calls its private Metric methods"),
        ("transformers", "the agents pass the KV cache as cache=, which 5.24 introduced"),
        ("stable-baselines3", "LMPolicy subclasses ActorCriticPolicy"),
        ("sb3-contrib", "MaskableLMPolicy subclasses MaskableActorCriticPolicy"),
    ],
)
def test_dependencies_we_reach_into_are_capped_below_their_next_major(package, why):
    requirements = (ROOT / "setup.cfg").read_text()
    spec = re.search(rf"^\s+{re.escape(package)}(\S*)$", requirements, re.MULTILINE)
    assert spec and "<" in spec[1], f"{package} needs an upper bound in setup.cfg: {why}"
