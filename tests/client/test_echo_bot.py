"""examples/echo_bot.py, run as its own process against a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from chat_client import ChatClient
from shared import Joined, Said, Told
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST, Recorder

ROOT = Path(__file__).resolve().parents[2]


async def test_echo_bot_answers_and_stops_cleanly(server: LiveServer) -> None:
    """The bot echoes a DM and a message addressed to it, ignores others, and exits 0 on SIGTERM."""
    async with ChatClient(server.host, server.port, "alice", options=FAST) as alice:
        events = Recorder(alice)
        bot = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "examples" / "echo_bot.py"),
                "--host",
                server.host,
                "--port",
                str(server.port),
                "--nick",
                "echobot",
                "--room",
                "lobby",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            await wait_until(lambda: any(e.nick == "echobot" for e in events.of(Joined)), what="bot joined")
            await alice.tell("echobot", "ping 1")
            await alice.say("lobby", "not for the bot")
            await alice.say("lobby", "EchoBot: hello there")
            await wait_until(lambda: any(e.text == "ping 1" and e.nick == "echobot" for e in events.of(Told)))
            await wait_until(lambda: any(e.text == "alice: hello there" for e in events.of(Said)))
            assert [e.text for e in events.of(Said) if e.nick == "echobot"] == ["alice: hello there"]
            bot.send_signal(signal.SIGTERM)
            _, err = bot.communicate(timeout=10)
            assert bot.returncode == 0, err
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.communicate()
