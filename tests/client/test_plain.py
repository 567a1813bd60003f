"""The plain line mode driven through pipes: a real `chat-client --plain` process and a real server."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from chat_client import ChatClient
from shared import Said
from tests.waiting import wait_until

from .helpers import LiveServer, run_plain_captured
from .test_library import FAST, Recorder

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\d\d:\d\d:\d\d \S+ .+$")
#: The further line of a multi-line message: indented, behind the continuation mark.
CONTINUED = re.compile(r"^ +┆ .*$")


def plain_client(server: LiveServer, nick: str, *extra: str) -> subprocess.Popen[str]:
    """Start `chat-client --plain` with piped stdin and stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chat_client",
            "--plain",
            "--host",
            server.host,
            "--port",
            str(server.port),
            "--nick",
            nick,
            *extra,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=ROOT,
    )


@contextlib.contextmanager
def killed_on_exit(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Kill `process` at the end of the block if it still runs: a failed test must not leave it behind."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_plain_mode_through_pipes(server: LiveServer) -> None:
    """Lines on stdin are sent; events come out one per line, without escape codes; EOF logs out."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        events = Recorder(bob)
        await bob.join("dev")
        with killed_on_exit(plain_client(server, "alice", "--room", "dev")) as process:
            assert process.stdin is not None
            process.stdin.write("hello from a pipe\n")
            process.stdin.write("/me waves\n")
            process.stdin.write("/msg bob a secret\n")
            process.stdin.flush()
            await wait_until(lambda: any(e.text == "hello from a pipe" for e in events.of(Said)))
            await bob.say("dev", "hostile \x1b]2;x [bold]text[/]".replace("\x1b", ""), wait=True)
            await bob.tell("alice", "line one\nline two", wait=True)
            await wait_until(lambda: any(e.text == "waves" and e.action for e in events.of(Said)))
            process.stdin.write("/quit done\n")
            process.stdin.flush()
            out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        lines = out.splitlines()
        assert all(LINE.match(line) or CONTINUED.match(line) for line in lines), lines
        assert "\x1b" not in out
        assert any(
            line.endswith("dev <alice> hello from a pipe ✓") or line.endswith("dev <alice> hello from a pipe")
            for line in lines
        ), lines
        assert any(line.endswith("dev * alice waves") for line in lines), lines
        assert any(line.endswith("@bob <alice> a secret") for line in lines), lines
        assert any(line.endswith("dev <bob> hostile ]2;x [bold]text[/]") for line in lines), lines
        first = next(n for n, line in enumerate(lines) if line.endswith("@bob <bob> line one"))
        assert lines[first + 1] == " " * (len(lines[first]) - len("line one") - 2) + "┆ line two"


async def test_plain_mode_reports_a_refused_login(server: LiveServer) -> None:
    """A nick in use ends the line mode with status 2 and a clear message on stderr."""
    async with ChatClient(server.host, server.port, "alice", options=FAST):
        process = plain_client(server, "alice")
        out, err = process.communicate("", timeout=15)
    assert process.returncode == 2
    assert "nick_taken" in err
    assert out == ""


async def test_plain_mode_end_of_input_delivers_then_exits(server: LiveServer) -> None:
    """Piping a message in and closing stdin delivers it before exiting."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        events = Recorder(bob)
        await bob.join("builds")
        process = plain_client(server, "ci", "--room", "builds")
        out, err = process.communicate("one-shot message\n", timeout=15)  # stdin is complete at once
        assert process.returncode == 0, err
        await wait_until(lambda: any(e.text == "one-shot message" for e in events.of(Said)))
        assert "builds <ci> one-shot message" in out


async def test_plain_mode_exits_quietly_when_its_reader_goes_away(server: LiveServer) -> None:
    """`chat-client --plain | head -1`: once stdout is closed the client exits 0, with no traceback."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        with killed_on_exit(plain_client(server, "alice")) as process:
            assert process.stdout is not None
            assert process.stdin is not None
            first = process.stdout.readline()
            assert "connected to" in first
            process.stdout.close()
            for n in range(20):  # output to a closed pipe: the client must notice and leave
                await bob.say("lobby", f"anyone there? {n}", wait=True)
            # Its standard input is still open: only the closed output can make it leave.
            await wait_until(lambda: process.poll() is not None, what="the client exits")
            _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert "Traceback" not in err
        assert "BrokenPipe" not in err


async def test_plain_mode_marks_where_the_join_history_ends(server: LiveServer) -> None:
    """Joining prints "you joined", the room's history in time order, then the history/live divider."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        await bob.say("lobby", "old one", wait=True)
        await bob.say("lobby", "old two\nwith a second line", wait=True)
        run = await run_plain_captured(server, "alice", lines="live\n", room="lobby", options=FAST)
    assert run.status == 0, run.err
    lines = run.out.splitlines()

    def at(text: str) -> int:
        return next(n for n, line in enumerate(lines) if line.endswith(text))

    assert (
        at("-!- you joined lobby")
        < at("<bob> old one")
        < at("<bob> old two")
        < at("-!- history above · live below")
    )
    assert lines[at("<bob> old two") + 1].endswith("┆ with a second line")
    assert at("-!- history above · live below") < at("<alice> live")
