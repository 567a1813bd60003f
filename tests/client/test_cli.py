"""The command line: --help, argument checks, and --local (a server in a child process) end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_until_sync

from .test_plain import killed_on_exit
from .test_plain_pacing import Lines

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
    """--local starts a local server; a second run sees the first run's message as history."""
    data = private_dirs.parent / "data"
    first = run_client("--plain", "--local", "--nick", "alice", stdin="remember me\n")
    assert first.returncode == 0, first.stderr
    assert "lobby <alice> remember me" in first.stdout
    assert (data / "history.sqlite3").exists()
    second = run_client("--plain", "--local", "--nick", "bob", stdin="")
    assert second.returncode == 0, second.stderr
    assert "lobby <alice> remember me" in second.stdout


def child_pids(pid: int) -> set[int]:
    """The process ids whose parent is `pid` (from /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def command_line(pid: int) -> list[str]:
    """The arguments of process `pid` (empty once it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def test_local_runs_the_server_as_its_own_process_and_stops_it(private_dirs: Path) -> None:
    """--local starts `python -m chat_server` as a child process, and the server is gone when the client
    exits."""
    client = subprocess.Popen(
        [sys.executable, "-m", "chat_client", "--plain", "--local", "--nick", "alice"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    with killed_on_exit(client):
        lines = Lines(client)
        assert client.stdin is not None
        client.stdin.write("hello from a child server\n")
        client.stdin.flush()
        wait_until_sync(lambda: lines.find("<alice> hello from a child server"), 30, "the message echoed")
        servers = [pid for pid in child_pids(client.pid) if "chat_server" in command_line(pid)]
        assert len(servers) == 1, [command_line(pid) for pid in child_pids(client.pid)]
        server = servers[0]
        assert server != client.pid
        assert command_line(server)[1:3] == ["-m", "chat_server"]
        assert "127.0.0.1" in command_line(server)
        client.stdin.close()
        assert client.wait(30) == 0
    assert not Path(f"/proc/{server}").exists()


def test_a_local_server_that_cannot_start_is_reported(private_dirs: Path) -> None:
    """--local on a port that is taken: the server's reason on one line, and a non-zero exit."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_client("--plain", "--local", "--port", str(port), "--nick", "alice")
    assert result.returncode == 1
    assert result.stderr.startswith("chat-client: cannot start a local server: "), result.stderr
    assert "in use" in result.stderr, result.stderr
