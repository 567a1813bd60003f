"""Every entry point answers ``--help``: the console scripts and every ``python -m`` module or script.

The list is discovered, not written down: the console scripts from pyproject.toml, every package with a
``__main__.py`` and every module or example holding ``if __name__ == "__main__"``. A new entry point is
covered without touching this file. All of them start at once (in a module fixture), so the whole check
costs about as long as the slowest one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where entry points live; tests/ holds helper processes started by tests, not programs for people.
SEARCHED = ("chat_server", "chat_client", "chat_lab", "shared", "benchmarks", "examples")
MAIN_GUARD = re.compile(r"""^if __name__ == ["']__main__["']:""", re.MULTILINE)
#: Seconds one `--help` may take (a loaded 2-core machine imports Textual slowly).
HELP_TIMEOUT = 60.0


def console_scripts() -> list[tuple[str, list[str]]]:
    """``chat-server --help`` and the like: the scripts pyproject.toml installs, from this virtualenv."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    bin_dir = Path(sys.executable).parent
    return [(name, [str(bin_dir / name), "--help"]) for name in sorted(scripts)]


def module_entry_points() -> list[tuple[str, list[str]]]:
    """``python -m X --help`` for every package with a ``__main__.py`` and every module with a main guard;
    ``python path --help`` for the examples (a folder of scripts, not a package)."""
    found: list[tuple[str, list[str]]] = []
    for top in SEARCHED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if ".venv" in path.parts or "__snapshots__" in path.parts:
                continue
            relative = path.relative_to(ROOT)
            if top == "examples":
                if MAIN_GUARD.search(path.read_text(encoding="utf-8")):
                    found.append((str(relative), [sys.executable, str(relative), "--help"]))
                continue
            if path.name == "__main__.py":
                module = ".".join(relative.parent.parts)
            elif MAIN_GUARD.search(path.read_text(encoding="utf-8")):
                module = ".".join(relative.with_suffix("").parts)
            else:
                continue
            found.append((f"python -m {module}", [sys.executable, "-m", module, "--help"]))
    return found


ENTRY_POINTS = console_scripts() + module_entry_points()


def test_discovery_finds_the_known_entry_points() -> None:
    """The discovery itself works: the entry points the README and the issues name are all found."""
    names = {name for name, _ in ENTRY_POINTS}
    expected = {
        "chat-server",
        "chat-client",
        "python -m chat_server",
        "python -m chat_client",
        "python -m benchmarks.run",
        "python -m benchmarks.cloadgen",
        "examples/echo_bot.py",
    }
    assert expected <= names, expected - names


@pytest.fixture(scope="module")
def help_runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Start every ``--help`` at once; the tests then wait for their own."""
    env = {**os.environ, "COLUMNS": "120", "PYTHONDONTWRITEBYTECODE": "1"}
    runs = {
        name: subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, command in ENTRY_POINTS
    }
    yield runs
    for run in runs.values():
        if run.poll() is None:
            run.kill()
            run.communicate()


@pytest.mark.parametrize("name", [name for name, _ in ENTRY_POINTS])
def test_help_exits_0_with_a_usage(name: str, help_runs: dict[str, subprocess.Popen[str]]) -> None:
    out, err = help_runs[name].communicate(timeout=HELP_TIMEOUT)
    assert help_runs[name].returncode == 0, f"{name} --help exited {help_runs[name].returncode}:\n{err}"
    assert "usage:" in out.lower(), f"{name} --help printed no usage:\n{out}\n{err}"
