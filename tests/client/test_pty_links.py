"""What the TUI writes to a real terminal for a message with URLs and markup that looks like a link: the
bytes read from a pseudo-terminal's master side, where every escape sequence the client sends can be seen
(tmux would hide hyperlinks)."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

from shared import Hello, Say, encode

from .terminal import PtyProcess
from .test_tmux_e2e import ROOT, start_server, stop

#: An OSC 8 hyperlink as the terminal receives it: ESC ] 8 ; params ; target, ended by ST (ESC \) or BEL.
OSC8 = re.compile(rb"\x1b\]8;[^;\x1b\x07]*;([^\x1b\x07]*)(?:\x1b\\|\x07)")
#: Every OSC sequence (title, clipboard, colours, links...), and its parameters.
OSC = re.compile(rb"\x1b\]([0-9]*);([^\x1b\x07]*)")
#: The OSC sequences Textual writes of its own: 22 sets the mouse pointer's shape.
TEXTUAL_OSC = b"22"


def test_links_in_a_real_terminal_go_where_their_text_says(tmp_path: Path) -> None:
    """The only hyperlinks written are the message's URLs, each to itself: ``[link=...]`` markup is text
    (its URL is a URL like any other, linked to itself), and no other OSC sequence is written."""
    server, port = start_server(tmp_path / "server")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MPCHAT_CONFIG_DIR": str(tmp_path / "alice"),
        "TEXTUAL_ANIMATIONS": "none",
        "TERM": "xterm-256color",
        "COLUMNS": "",
        "LINES": "",
    }
    command = [
        sys.executable,
        "-m",
        "chat_client",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--nick",
        "alice",
    ]
    terminal = PtyProcess(command, env=env, cwd=ROOT, columns=120)
    try:
        terminal.read_until(b"connected")
        text = (
            "see https://good.example/docs, [link=https://evil.example]this[/link] "
            "[@click=app.quit]x[/] *ok* end-of-test"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(encode(Hello(proto="mpchat", version=1, nick="mallory")))
            raw.sendall(encode(Say(room="lobby", text=text)))
            terminal.read_until(b"end-of-test")
        output = terminal.output
        targets = {target for target in OSC8.findall(output) if target}
        assert targets == {b"https://good.example/docs", b"https://evil.example"}
        others = {osc for osc in OSC.findall(output) if osc[0] != b"8"}
        assert {number for number, _ in others} <= {TEXTUAL_OSC}, others
        assert terminal.process.poll() is None  # the @click was not run
    finally:
        terminal.close()
        stop(server)
