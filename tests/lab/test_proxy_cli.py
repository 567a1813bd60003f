"""`chat-lab proxy` on the command line: its switches, and the console's live toggles (docs/lab.md)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from chat_lab.proxycli import address
from chat_server.server import ChatServer
from shared import Ping, Pong, Welcome
from tests.server.client import ChatTestClient

#: How long "nothing arrives" is watched for.
QUIET = 0.3
#: Seconds the proxy process may take to start, answer or stop (a loaded machine imports slowly).
PROCESS_TIMEOUT = 30.0


class Console:
    """A `chat-lab proxy` process: where it listens, and its console."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("chat-lab proxy listening on "), first
        self.address = address(first.split()[4])

    def command(self, line: str) -> str:
        """Send one command and return the first line of its answer."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()


@contextmanager
def proxy_process(*options: str) -> Iterator[Console]:
    process = subprocess.Popen(
        [sys.executable, "-m", "chat_lab", "proxy", "--listen", "0", *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield Console(process)
    finally:
        process.kill()
        process.wait(PROCESS_TIMEOUT)


def test_a_switch_given_at_start_and_toggled_from_the_console(server: ChatServer) -> None:
    """Started with `--freeze up`, the hello is held; `thaw` on the console lets it through, and the welcome
    comes; `discard on down` then loses a pong, `discard off down` lets the next one through."""
    host, port = server.address[:2]
    with (
        proxy_process("--to", f"{host}:{port}", "--freeze", "up") as console,
        ChatTestClient(console.address) as client,
    ):
        client.hello("alice")
        assert client.drain(QUIET) == []
        assert console.command("thaw up") == "ok thaw up"
        client.recv(Welcome)
        client.drain(QUIET)
        assert console.command("discard on down") == "ok discard on down"
        client.send(Ping(token=8))
        assert client.drain(QUIET) == []
        assert console.command("discard off down") == "ok discard off down"
        client.send(Ping(token=9))
        assert client.recv(Pong).token == 9


def test_the_console_freezes_thaws_reports_and_quits(server: ChatServer) -> None:
    """`freeze down` holds the answers, `thaw` delivers them, `status` reports, a bad line is an error, and
    `quit` ends the process."""
    host, port = server.address[:2]
    with proxy_process("--to", f"{host}:{port}") as console, ChatTestClient(console.address) as client:
        client.login("alice")
        client.drain(QUIET)  # the login's last notifications
        assert console.command("freeze down") == "ok freeze down"
        client.send(Ping(token=1))
        assert client.drain(QUIET) == []
        assert console.command("thaw") == "ok thaw both"
        assert client.recv(Pong).token == 1
        assert console.command("status") == "ok"
        assert console.process.stdout is not None
        assert console.process.stdout.readline().startswith("connections 1 open 1")
        assert console.process.stdout.readline().startswith("up: clean; in ")
        assert console.process.stdout.readline().startswith("down: clean; in ")
        assert console.command("split 1 sideways").startswith("error split:")
        assert console.command("loss 0.5").startswith("error loss: only for udp")
        assert console.command("frobnicate").startswith("error unknown command")
        assert console.command("quit") == "ok quit"
        assert console.process.wait(PROCESS_TIMEOUT) == 0


def test_a_tcp_only_switch_is_refused_for_udp() -> None:
    """`--split` with `--udp` is an error at start, with the reason."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chat_lab",
            "proxy",
            "--listen",
            "0",
            "--to",
            "127.0.0.1:9",
            "--udp",
            "--split",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert "--split: only for tcp" in result.stderr


def test_chat_lab_help_lists_the_tools() -> None:
    """`chat-lab --help` names every tool."""
    from chat_lab.__main__ import TOOLS

    result = subprocess.run(
        [sys.executable, "-m", "chat_lab", "--help"],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=True,
    )
    listed = [
        line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line.strip()
    ]
    assert [name for name, *_ in TOOLS] == [word for word in listed if word in {n for n, *_ in TOOLS}]
    assert len(TOOLS) >= 4
