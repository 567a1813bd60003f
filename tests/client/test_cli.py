"""The command line: --help, argument checks, and --local (an embedded server) end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_client(*args: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `python -m chat_client` with the test's environment (temp config and data folders)."""
    return subprocess.run(
        [sys.executable, "-m", "chat_client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def test_help_documents_every_option() -> None:
    """--help names every flag and the commands."""
    result = run_client("--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--nick",
        "--room",
        "--plain",
        "--local",
        "--theme",
        "--bell",
        "--log-file",
    ):
        assert flag in result.stdout
    assert "/join ROOM" in result.stdout


def test_bad_arguments_are_refused_clearly() -> None:
    """An invalid nick or port is an argument error (status 2) naming the problem."""
    result = run_client("--plain", "--host", "127.0.0.1", "--nick", "bad nick")
    assert result.returncode == 2
    assert "--nick" in result.stderr
    result = run_client("--port", "70000")
    assert result.returncode == 2
    assert "--port" in result.stderr


def test_local_server_keeps_history_in_the_data_folder(private_dirs: Path) -> None:
    """--local starts a server in the process; a second run sees the first run's message as history."""
    data = private_dirs.parent / "data"
    first = run_client("--plain", "--local", "--nick", "alice", stdin="remember me\n")
    assert first.returncode == 0, first.stderr
    assert "lobby <alice> remember me" in first.stdout
    assert (data / "history.sqlite3").exists()
    second = run_client("--plain", "--local", "--nick", "bob", stdin="")
    assert second.returncode == 0, second.stderr
    assert "lobby <alice> remember me" in second.stdout
