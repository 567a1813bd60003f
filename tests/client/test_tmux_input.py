"""What is typed is what gets sent, through a real terminal: tmux writes several keys in one write (as a fast
typist on a laggy link, type-ahead, or a terminal without bracketed paste does), and the test reads what the
server stored in its history database."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_server.config import HISTORY_FILE_NAME
from shared import Hello, encode
from tests.waiting import wait_until_sync

from .test_tmux_e2e import PYTHON, ROOT, Tmux, start_server, stop


def stored(data_dir: Path, nick: str) -> list[str]:
    """The texts `nick` said in rooms, oldest first, as the server stored them."""
    path = data_dir / HISTORY_FILE_NAME
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT text FROM messages WHERE sender = ? AND room_key IS NOT NULL ORDER BY id", (nick,)
        ).fetchall()
    return [text for (text,) in rows]


def wait_stored(data_dir: Path, nick: str, last: str) -> list[str]:
    """Wait until `last` is the newest text `nick` said, and return all of them."""
    try:
        wait_until_sync(lambda: stored(data_dir, nick)[-1:] == [last], 15, what=f"{last!r} stored")
    except AssertionError as error:
        raise AssertionError(f"{error}; {nick}'s lines: {stored(data_dir, nick)!r}") from None
    return stored(data_dir, nick)


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[tuple[Tmux, Path, int]]:
    """A server process and a private tmux server, with `alice`'s TUI connected in the session "alice"."""
    data_dir = tmp_path / "server"
    server, port = start_server(data_dir)
    tmux = Tmux()
    try:
        env = {
            "PYTHONPATH": str(ROOT),
            "MPCHAT_CONFIG_DIR": str(tmp_path / "alice"),
            "TEXTUAL_ANIMATIONS": "none",
            "TERM": "xterm-256color",
        }
        command = f"{PYTHON} -m chat_client --host 127.0.0.1 --port {port} --nick alice; tail -f /dev/null"
        tmux.start("alice", command, env)
        tmux.wait_for("alice", "● connected")
        yield tmux, data_dir, port
    finally:
        tmux.kill()
        stop(server)


def test_lines_typed_in_one_write_are_each_sent_once_in_order(chat: tuple[Tmux, Path, int]) -> None:
    """Keys arriving in one read with Enter between them make one message per line, none merged or lost."""
    tmux, data_dir, _ = chat
    tmux.keys("alice", "burst one", "Enter", "burst two", "Enter")
    assert wait_stored(data_dir, "alice", "burst two") == ["burst one", "burst two"]

    tmux.keys("alice", "first", "Enter", "second-unsent")
    assert wait_stored(data_dir, "alice", "first") == ["burst one", "burst two", "first"]
    tmux.wait_for("alice", "second-unsent")
    tmux.keys("alice", "Enter")
    assert wait_stored(data_dir, "alice", "second-unsent")[-2:] == ["first", "second-unsent"]

    tmux.keys("alice", "A", "Enter")
    tmux.keys("alice", "B")
    tmux.keys("alice", "Enter")
    assert wait_stored(data_dir, "alice", "B")[-3:] == ["second-unsent", "A", "B"]

    tmux.keys("alice", "ab", "BSpace", "c", "Enter")
    assert wait_stored(data_dir, "alice", "ac")[-2:] == ["B", "ac"]


def test_tab_completes_the_word_typed_in_the_same_write(chat: tuple[Tmux, Path, int]) -> None:
    """`ca` Tab in one write completes `carol` (completion sees every key typed before the Tab)."""
    tmux, data_dir, port = chat
    with socket.create_connection(("127.0.0.1", port), timeout=5) as carol:
        carol.sendall(encode(Hello(proto="mpchat", version=1, nick="carol")))
        tmux.wait_for("alice", "carol")
        tmux.keys("alice", "ca", "Tab", "hi", "Enter")
        assert wait_stored(data_dir, "alice", "carol: hi") == ["carol: hi"]
        tmux.keys("alice", "/jo", "Tab", "side", "Enter")
        tmux.wait_for("alice", "you joined side")


def test_bracketed_multi_line_paste_is_one_message(chat: tuple[Tmux, Path, int]) -> None:
    """A bracketed paste of three lines, then Enter, sends one message holding all three lines."""
    tmux, data_dir, _ = chat
    tmux.run("set-buffer", "-b", "lines", "one line\nanother line\nlast line")
    tmux.keys("alice", "pasted: ")
    tmux.run("paste-buffer", "-p", "-b", "lines", "-t", "alice")
    tmux.wait_for("alice", "3 lines")
    tmux.keys("alice", " (end)", "Enter")
    text = "pasted: one line\nanother line\nlast line (end)"
    assert wait_stored(data_dir, "alice", text) == [text]


def test_paste_over_the_byte_limit_is_kept_and_refused_visibly(chat: tuple[Tmux, Path, int]) -> None:
    """1,500 × 漢 (4,500 bytes) is over the 4,096-byte limit: the input says so, keeps it, sends nothing."""
    tmux, data_dir, _ = chat
    tmux.run("set-buffer", "-b", "big", "漢" * 1500)
    tmux.run("paste-buffer", "-p", "-b", "big", "-t", "alice")
    tmux.wait_for("alice", "4,500/4,096 B")
    tmux.keys("alice", "Enter")
    tmux.wait_for("alice", "Send as a file")
    tmux.keys("alice", "Escape")  # alone: an Escape followed at once by a key reads as Alt+key
    wait_until_sync(lambda: "Send as a file" not in tmux.screen("alice"), 15, what="the dialog closed")
    tmux.wait_for("alice", "4,500/4,096 B")
    tmux.keys("alice", "C-u", "small one", "Enter")
    assert wait_stored(data_dir, "alice", "small one") == ["small one"]


def test_alt_enter_typed_in_one_write_makes_one_multi_line_message(chat: tuple[Tmux, Path, int]) -> None:
    """`first` Alt+Enter `second` Enter in one write (as a plain terminal sends Alt+Enter: ESC CR) is one
    message of two lines; a line typed after it in the same write is a message of its own."""
    tmux, data_dir, _ = chat
    tmux.keys("alice", "first", "M-Enter", "second", "Enter", "third", "Enter")
    assert wait_stored(data_dir, "alice", "third") == ["first\nsecond", "third"]
    tmux.wait_for("alice", "┆ second")
