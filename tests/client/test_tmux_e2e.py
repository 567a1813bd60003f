"""End to end in a real terminal: tmux runs a server and two `chat-client` TUIs; keys go in with
send-keys, the screens come out with capture-pane. A private tmux socket keeps other sessions untouched."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import Hello, Say, encode
from tests.waiting import wait_until_sync

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


class Tmux:
    """A private tmux server (its own socket), killed at the end."""

    def __init__(self) -> None:
        self.socket = f"mpchat-e2e-{uuid.uuid4().hex[:12]}"

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return result.stdout

    def start(self, name: str, command: str, env: dict[str, str]) -> None:
        env_flags = [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]
        self.run("new-session", "-d", "-s", name, "-x", "100", "-y", "30", *env_flags, command)

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name)

    def title(self, name: str) -> str:
        return self.run("display-message", "-p", "-t", name, "#{pane_title}").strip()

    def keys(self, name: str, *keys: str) -> None:
        self.run("send-keys", "-t", name, *keys)

    def wait_for(self, name: str, text: str, timeout: float = 15) -> None:
        wait_until_sync(lambda: text in self.screen(name), timeout, what=f"{text!r} on {name}'s screen")

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10, check=False
        )


def start_server(data_dir: Path, port: int = 0) -> tuple[subprocess.Popen[str], int]:
    """Run `chat-server` as a process and read its port from its one stdout line."""
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "chat_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    assert line.startswith("mpchat server listening on "), line
    return server, int(line.rsplit(":", 1)[1])


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A private tmux server."""
    session = Tmux()
    try:
        yield session
    finally:
        session.kill()


def test_two_clients_chat_in_real_terminals(tmux: Tmux, tmp_path: Path) -> None:
    """Two TUIs in tmux exchange messages, survive a server restart, resist a title injection, and quit."""
    server, port = start_server(tmp_path / "server")
    try:
        for nick in ("alice", "bob"):
            env = {
                "PYTHONPATH": str(ROOT),
                "MPCHAT_CONFIG_DIR": str(tmp_path / nick),
                "TEXTUAL_ANIMATIONS": "none",
                "TERM": "xterm-256color",
            }
            client = f"{PYTHON} -m chat_client --host 127.0.0.1 --port {port} --nick {nick}"
            command = f"{client}; echo EXITED rc=$?; tail -f /dev/null"  # the pane stays: the exit status
            tmux.start(nick, command, env)
        title_before = tmux.title("alice")
        tmux.wait_for("alice", "● connected")
        tmux.wait_for("bob", "● connected")
        tmux.keys("alice", "hello from alice", "Enter")
        tmux.wait_for("bob", "<alice> hello from alice")
        tmux.keys("bob", "hi alice [bold]literally[/bold]", "Enter")
        tmux.wait_for("alice", "<bob> hi alice [bold]literally[/bold]")

        # A raw client tries to smuggle an OSC title sequence past the client library's own checks.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(encode(Hello(proto="mpchat", version=1, nick="mallory")))
            raw.sendall(encode(Say(room="lobby", text="\x1b]2;PWNED\x07 title?")))
            raw.sendall(encode(Say(room="lobby", text="after the attempt")))
            tmux.wait_for("alice", "<mallory> after the attempt")
        assert "PWNED" not in tmux.title("alice")
        assert tmux.title("alice") == title_before

        stop(server)
        tmux.wait_for("alice", "reconnecting")
        server, _ = start_server(tmp_path / "server", port)
        tmux.wait_for("alice", "● connected")
        tmux.wait_for("bob", "● connected")
        tmux.keys("bob", "after the restart", "Enter")
        tmux.wait_for("alice", "<bob> after the restart")
        assert tmux.screen("alice").count("hello from alice") == 1

        tmux.keys("alice", "C-q")
        tmux.wait_for("alice", "EXITED rc=0")
        tmux.keys("bob", "/quit", "Enter")
        tmux.wait_for("bob", "EXITED rc=0")
    finally:
        stop(server)
