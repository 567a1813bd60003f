"""Everyday polish of the command line, each through a real `chat-client` (or example) process.

`/join bad room!` is refused before anything is sent; `/who` is sorted; `/rooms` has a header; `--log-file`
tells the connection's story; an unreachable server is one clear line and a non-zero exit; `--local` with no
nick picks one from the login name.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from chat_client import ChatClient
from chat_lab.proxy import FaultProxy
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST
from .test_plain import ROOT, killed_on_exit, plain_client
from .test_plain_pacing import RUN_TIMEOUT, Lines


async def test_join_who_and_rooms_in_the_line_mode(server: LiveServer) -> None:
    async with (
        ChatClient(server.host, server.port, "zed", options=FAST) as zed,
        ChatClient(server.host, server.port, "Bob", options=FAST) as bob,
    ):
        await zed.join("dev")
        await bob.join("dev")
        process = plain_client(server, "alice", "--room", "dev")
        output = Lines(process)
        with killed_on_exit(process):
            assert process.stdin is not None
            await wait_until(lambda: output.find("you joined dev"), what="alice in dev")
            process.stdin.write("/join bad room!\n/who\n/rooms\n")
            process.stdin.flush()
            await wait_until(lambda: output.find("in dev (3): "), what="the member list")
            await wait_until(lambda: output.find("  lobby ("), what="the room list")
            process.stdin.close()
            assert await asyncio.to_thread(process.wait, RUN_TIMEOUT) == 0
        rooms = await zed.list_rooms()
    refusal = output.find("cannot join bad room!")
    assert refusal is not None
    assert "-!- error:" in refusal
    assert rooms is not None
    assert "bad" not in {summary.name for summary in rooms.rooms}  # nothing was sent
    members = output.find("in dev (3): ")
    assert members is not None
    assert members.endswith("in dev (3): alice, Bob, @zed")  # by nick, case-insensitively
    header = next(i for i, line in enumerate(output.lines) if "rooms on this server (2)" in line)
    assert "name (members): topic" in output.lines[header]
    assert {line.split()[3] for line in output.lines[header + 1 : header + 3]} == {"dev", "lobby"}


async def test_log_file_tells_the_connections_story(server: LiveServer, tmp_path: Path) -> None:
    """connect, login, disconnect, reconnect, resume with its counts, and a server error, in --log-file."""
    log = tmp_path / "client.log"
    proxy = FaultProxy(lambda: (server.host, server.port))
    await proxy.start()
    try:

        class Via:
            host, port = "127.0.0.1", proxy.port

        process = plain_client(Via(), "alice", "--room", "dev", "--log-file", str(log))  # type: ignore[arg-type]
        output = Lines(process)
        with killed_on_exit(process):
            assert process.stdin is not None
            await wait_until(lambda: output.find("you joined dev"), what="logged in")
            await proxy.cut()
            await wait_until(
                lambda: "resumed on" in log.read_text(encoding="utf-8"), what="the resume logged"
            )
            process.stdin.write("/who nosuchroom\n")
            process.stdin.flush()
            await wait_until(
                lambda: "server error" in log.read_text(encoding="utf-8"), what="the error logged"
            )
            process.stdin.close()
            assert await asyncio.to_thread(process.wait, RUN_TIMEOUT) == 0
    finally:
        await proxy.close()
    text = log.read_text(encoding="utf-8")
    for expected in (
        f"connecting to 127.0.0.1:{proxy.port} as alice",
        "logged in to",
        "disconnected: ",
        "reconnecting in ",
        "resumed on",
        "rejoining 1 rooms, resending 0 messages",
        "history of dev: ",
        "server error ",
    ):
        assert expected in text, f"{expected!r} not in the log:\n{text}"


def unused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_server_is_one_clear_line_and_a_non_zero_exit() -> None:
    port = str(unused_port())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {
        "chat-client": [
            sys.executable,
            "-m",
            "chat_client",
            "--plain",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--nick",
            "ci",
        ],
        "echo_bot": [sys.executable, "examples/echo_bot.py", "--port", port],
    }
    for name, command in runs.items():
        done = subprocess.run(
            command, input="hi\n", capture_output=True, text=True, cwd=ROOT, env=env, timeout=RUN_TIMEOUT
        )
        assert done.returncode != 0, name
        assert "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"cannot log in to 127.0.0.1:{port}" in lines[0]
        assert lines[0].endswith("cannot connect: Connection refused"), lines[0]


def test_local_without_a_nick_uses_the_login_name(tmp_path: Path) -> None:
    """`chat-client --local` with nothing remembered: a nick from the login name, made valid."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGNAME": "Bob Smith!", "USER": "Bob Smith!"}
    done = subprocess.run(
        [sys.executable, "-m", "chat_client", "--local", "--plain"],
        input="hello from nowhere\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert " as Bob_Smith" in done.stdout, done.stdout
    assert "<Bob_Smith> hello from nowhere" in done.stdout
