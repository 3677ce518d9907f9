"""House rules a reader relies on: lint and format (ruff), types (mypy, strict for camera/, models/,
inspection/), and pieces small enough to take one at a time (modules and functions of the core)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = ("camera", "models", "inspection")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def _tool(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    proc = _run(_tool("ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_code_is_formatted():
    proc = _run(_tool("ruff"), "format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_finds_nothing():
    proc = _run(_tool("mypy"), "--no-incremental")  # (files and strictness from pyproject.toml)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def core_modules() -> list[Path]:
    return sorted(p for pkg in CORE for p in (REPO / pkg).rglob("*.py") if "migrations" not in p.parts)


def too_long(paths: list[Path]) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and functions over MAX_FUNCTION_LINES (def to last line)."""
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{name}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}:{node.lineno} {node.name}(): {length} lines")
    return found


def test_no_long_module_or_function_in_the_core():
    assert len(core_modules()) > 50
    found = too_long(core_modules())
    assert not found, "break these into named pieces:\n" + "\n".join(found)


@pytest.mark.parametrize("lines,expected", [(MAX_FUNCTION_LINES, False), (MAX_FUNCTION_LINES + 1, True)])
def test_the_length_rule_counts_a_function_from_def_to_its_last_line(tmp_path, lines, expected):
    body = "".join(f"    x{k} = {k}\n" for k in range(lines - 1))
    (tmp_path / "m.py").write_text(f"def f():\n{body}")
    assert bool(too_long([tmp_path / "m.py"])) is expected
