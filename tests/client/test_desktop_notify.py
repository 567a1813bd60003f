"""Desktop notifications through the terminal (issue 18): the OSC 9, 777 and 99 sequences, their
sanitising (property-tested), and a real `chat-client` in a pseudo-terminal writing one for a direct
message."""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat_client import ChatClient
from chat_client.tui.desktop import MAX_CHARS, STYLES, clean, notification
from shared import Joined
from tests.waiting import wait_until

from .helpers import LiveServer
from .terminal import PtyProcess
from .test_library import FAST, Recorder

ROOT = Path(__file__).resolve().parents[2]
#: C0 and C1 controls and DEL: none may appear inside a sequence but its own framing.
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@given(title=st.text(max_size=400), body=st.text(max_size=400))
def test_osc9_and_osc777_carry_no_control_character_but_their_framing(title: str, body: str) -> None:
    for style, start in (("osc9", "\x1b]9;"), ("osc777", "\x1b]777;notify;")):
        sequence = notification(style, title, body)
        assert sequence.startswith(start)
        assert sequence.endswith("\x07")
        assert not CONTROLS.search(sequence[len(start) : -1]), style
    fields = notification("osc777", title, body)[len("\x1b]777;notify;") : -1].split(";", 1)
    assert fields == [clean(title).replace(";", ","), clean(body)]  # a title cannot add a field


@given(title=st.text(max_size=400), body=st.text(max_size=400))
def test_osc99_carries_base64_of_the_cleaned_texts(title: str, body: str) -> None:
    sequence = notification("osc99", title, body)
    one = r"\x1b\]99;(i=\d+):d=%d:e=1:p=%s;([A-Za-z0-9+/=]*)\x1b\\"
    parts = re.fullmatch(one % (0, "title") + one % (1, "body"), sequence)
    assert parts is not None
    assert parts.group(1) == parts.group(3)  # one notification
    assert base64.b64decode(parts.group(2)).decode() == clean(title)
    assert base64.b64decode(parts.group(4)).decode() == clean(body)


def test_clean_makes_one_bounded_line_of_visible_text() -> None:
    assert clean("a\nb\x1b]0;x\x07") == "a b␛]0;x␇"
    long = clean("x" * 1000)
    assert len(long) == MAX_CHARS
    assert long.endswith("…")
    with pytest.raises(ValueError, match="unknown desktop notification style"):
        notification("osc1337", "t", "b")
    assert set(STYLES) == {"osc9", "osc777", "osc99"}


async def test_a_real_terminal_gets_an_osc9_notification_for_a_direct_message(
    server: LiveServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MPCHAT_CONFIG_DIR": str(tmp_path / "bob"),
        "TEXTUAL_ANIMATIONS": "none",
        "TERM": "xterm-256color",
    }
    command = [sys.executable, "-m", "chat_client", "--host", server.host, "--port", str(server.port)]
    command += ["--nick", "bob", "--room", "lobby", "--desktop-notify", "osc9"]
    async with ChatClient(server.host, server.port, "alice", rooms=["lobby"], options=FAST) as alice:
        events = Recorder(alice)
        terminal = PtyProcess(command, env=env, cwd=ROOT, rows=30, columns=100)
        try:
            await wait_until(
                lambda: any(isinstance(e, Joined) and e.nick == "bob" for e in events.events),
                timeout=60,
                what="bob's TUI in the lobby",
            )
            await alice.tell("bob", "hi there; [b]not bold[/b]", wait=True)
            terminal.read_until(b"\x1b]9;Message from alice: alice: hi there; [b]not bold[/b]\x07")
            terminal.write(b"\x11")  # Ctrl+Q
            assert terminal.wait() == 0
        finally:
            terminal.close()
