"""shared/ is sans-I/O: no module in it imports sockets, selectors, asyncio, threading or textual."""

from __future__ import annotations

import ast
from pathlib import Path

import shared

FORBIDDEN = {"socket", "selectors", "asyncio", "threading", "textual", "ssl", "select", "multiprocessing"}
SHARED_DIR = Path(shared.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The top-level names of every module `path` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_check_sees_the_package() -> None:
    """The scan finds the package's modules (so an empty scan cannot pass by accident)."""
    modules = sorted(SHARED_DIR.glob("*.py"))
    assert len(modules) >= 5
    assert "msgpack" in set().union(*(imported_modules(path) for path in modules))


def test_shared_imports_no_io_modules() -> None:
    """No module in shared/ imports an I/O or concurrency module."""
    offenders = {
        path.name: sorted(imported_modules(path) & FORBIDDEN)
        for path in SHARED_DIR.rglob("*.py")
        if imported_modules(path) & FORBIDDEN
    }
    assert offenders == {}
