"""The shape of the house: the import arrows of the design guide (import-linter contracts in
pyproject.toml) and no import cycle among the modules of any package.

The cycle check walks every module's syntax tree itself, so that it counts what a reader counts:
imports at module level, inside functions and under `TYPE_CHECKING` alike.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "camera", "inspection", "models")


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    proc = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: str, root: Path = REPO) -> dict[str, Path]:
    """Every module of `package` (its sub-packages included, data folders such as migrations not)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        if all((root / d / "__init__.py").is_file() for d in path.relative_to(root).parents if d != Path(".")):
            out[module_name(path, root)] = path
    return out


def imported_modules(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The modules of `known` that the module `name` (at `path`) imports, wherever the import stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known_prefix(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                anchor = here[: len(here) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:  # `from pkg import module`
                    yield sub
                else:
                    yield from _known_prefix(base, known)


def _known_prefix(dotted: str, known: set[str]) -> Iterator[str]:
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in known:
            yield candidate
            return


def import_graph(package: str, root: Path = REPO) -> dict[str, set[str]]:
    modules = package_modules(package, root)
    known = set(modules)
    return {name: set(imported_modules(path, name, known)) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_among_the_modules_of_a_package(package):
    graph = import_graph(package)
    assert len(graph) > 3, f"{package}: no modules found"
    found = cycles(graph)
    assert not found, f"import cycles in {package}/ (counting imports in functions and under TYPE_CHECKING): {found}"


def test_the_cycle_check_finds_a_cycle_through_a_function_level_import(tmp_path):
    """The check itself: a cycle closed only inside a function, and one under TYPE_CHECKING, are found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from pkg import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import D\n")
    (pkg / "d.py").write_text("from . import c\n")
    (pkg / "e.py").write_text("import pkg.a\n")  # (imports into a cycle, is not part of one)
    found = cycles(import_graph("pkg", tmp_path))
    assert sorted(found) == [["pkg.a", "pkg.sub.b"], ["pkg.c", "pkg.d"]]
