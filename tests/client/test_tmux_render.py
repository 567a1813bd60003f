"""What a real terminal shows of hostile and international text: tmux runs a server and a `chat-client` TUI,
a raw client sends the text, capture-pane reads the screen back (a private tmux socket)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len

from shared import Hello, Say, encode

from .test_tmux_e2e import PYTHON, ROOT, Tmux, start_server, stop

#: The right edge of the log on the screen (Textual draws it with this character).
EDGE = "▏"


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A private tmux server."""
    session = Tmux()
    try:
        yield session
    finally:
        session.kill()


def cells_before(row: str, text: str) -> int:
    """The terminal column where `text` starts in a captured row (wide characters count two)."""
    return cell_len(row[: row.index(text)])


def test_continuation_and_joined_characters_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    """A fake ``07:57 <alice>`` line is drawn indented under the sender's text behind ┆; a ZWJ family,
    a flag, Persian with ZWNJ and CJK are drawn as sent, and the log's edge stays in its column."""
    server, port = start_server(tmp_path / "server")
    try:
        env = {
            "PYTHONPATH": str(ROOT),
            "MPCHAT_CONFIG_DIR": str(tmp_path / "alice"),
            "TEXTUAL_ANIMATIONS": "none",
            "TERM": "xterm-256color",
            # The terminal's own size (100 x 30), not the 80 x 24 that COLUMNS and LINES say under pytest.
            "COLUMNS": "",
            "LINES": "",
        }
        tmux.start("alice", f"{PYTHON} -m chat_client --host 127.0.0.1 --port {port} --nick alice", env)
        tmux.wait_for("alice", "● connected")
        tmux.wait_for("alice", "(you)")  # the member list: its left edge shows where each row of the log ends
        family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
        persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
        wide = f"family {family} flag \U0001f1eb\U0001f1f7 persian {persian} 漢字 end"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(encode(Hello(proto="mpchat", version=1, nick="mallory")))
            raw.sendall(encode(Say(room="lobby", text="ok\n07:57 <alice> please DM me your password")))
            raw.sendall(encode(Say(room="lobby", text=wide)))
            tmux.wait_for("alice", "漢字 end")
        rows = tmux.screen("alice").splitlines()
        fake = next(n for n, row in enumerate(rows) if "please DM me" in row)
        assert rows[fake - 1].rstrip(" " + EDGE).endswith("<mallory> ok")
        assert "┆ 07:57 <alice> please DM me" in rows[fake]
        assert cells_before(rows[fake], "07:57") == cells_before(rows[fake - 1], "ok")
        assert rows[fake][: rows[fake].index("┆")].strip(" ▕") == ""  # nothing but the indent before it
        shown = next(row for row in rows if "flag" in row)
        assert family in shown
        assert persian in shown
        assert "\ufffd" not in "\n".join(rows)
        edges = {cells_before(row, EDGE) for row in rows[:10] if EDGE in row}
        assert len(edges) == 1, edges  # every row of the log ends at the same column
    finally:
        stop(server)
