"""File sharing in the TUI (Pilot) and in the plain line mode (pipes), against the real server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from dataclasses import replace
from pathlib import Path

from textual.widgets import ProgressBar

from chat_client import TransferState, TransferUpdate
from chat_client.model.chat import LineKind
from chat_client.tui.app import ChatApp
from chat_client.tui.ui_messages import NetEvents
from chat_client.tui.widgets.chat_input import ChatInput
from chat_client.tui.widgets.transfers import TransferRow, TransfersPanel
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_files_library import random_file
from .test_library import FAST
from .test_plain import LINE, killed_on_exit, plain_client
from .tui_helpers import connected_app, submit, wait_for_chat, wait_for_text

SIZE = (120, 36)


def make_app(server: LiveServer, nick: str, config_dir: Path, downloads: Path) -> ChatApp:
    options = replace(FAST, downloads_dir=downloads, progress_interval=0.05)
    return connected_app(server, config_dir, nick, options=options, discovery=None)


async def test_send_and_get_in_the_tui(server: LiveServer, tmp_path: Path) -> None:
    """/send in one TUI; the other shows the entry; /get shows a bar that advances and completes."""
    source = random_file(tmp_path / "src", "holiday photos.tar", 20 * 1024 * 1024)
    sender = make_app(server, "alice", tmp_path / "alice-config", tmp_path / "alice-downloads")
    receiver = make_app(server, "bob", tmp_path / "bob-config", tmp_path / "bob-downloads")
    progress_seen: list[int] = []

    def record(message: object) -> None:
        if isinstance(message, NetEvents):
            for event in message.events:
                if isinstance(event, TransferUpdate) and event.info.state is TransferState.RUNNING:
                    progress_seen.append(event.info.done)

    async with (
        sender.run_test(size=SIZE) as alice,
        receiver.run_test(size=SIZE, message_hook=record) as bob,
    ):
        alice_screen = await wait_for_chat(sender, alice)
        bob_screen = await wait_for_chat(receiver, bob)
        await wait_until(lambda: alice_screen.model.current == "#lobby" == bob_screen.model.current)
        await submit(alice, f"/send {source}")
        await wait_for_text(sender, alice, "sending holiday photos.tar (20.0 MiB)")
        await wait_for_text(sender, alice, "alice offers holiday photos.tar (20.0 MiB)", timeout=60)
        await wait_for_text(receiver, bob, "alice offers holiday photos.tar (20.0 MiB)", timeout=30)
        (entry,) = [line for line in bob_screen.model.buffers["#lobby"].lines if line.kind is LineKind.FILE]
        await bob.press("f3")  # puts "/get ID" of the newest offer in the input
        assert bob_screen.query_one(ChatInput).value == f"/get {entry.id}"
        await bob.press("enter")
        panel = bob_screen.query_one(TransfersPanel)
        await wait_until(lambda: panel.display and panel.query(TransferRow), what="a transfer row")
        row = panel.query_one(TransferRow)
        bar = row.query_one(ProgressBar)
        assert bar.total == source.stat().st_size
        await wait_until(lambda: bar.progress == bar.total, timeout=60, what="the bar to complete")
        await wait_for_text(receiver, bob, "SHA-256 verified", timeout=30)
        assert any(0 < done < source.stat().st_size for done in progress_seen), progress_seen
    saved = tmp_path / "bob-downloads" / "holiday photos.tar"
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


async def test_send_and_get_in_plain_mode(server: LiveServer, tmp_path: Path) -> None:
    """`--plain`: /send uploads; /get prints the offer's id, progress and the saved path, verified."""
    source = random_file(tmp_path / "src", "report.pdf", 3 * 1024 * 1024)
    downloads = Path(os.environ["MPCHAT_DOWNLOADS_DIR"])
    with killed_on_exit(plain_client(server, "alice")) as sender:
        out, err = await asyncio.to_thread(sender.communicate, f"/send {source}\n", timeout=60)
    assert sender.returncode == 0, err
    assert all(LINE.match(line) for line in out.splitlines()), out
    sent = re.search(r"lobby -!- sent report\.pdf \(3\.0 MiB\), offered as #(\d+)", out)
    assert sent is not None, out
    offer_id = int(sent.group(1))

    with killed_on_exit(plain_client(server, "bob", "--downloads", str(downloads))) as getter:
        out, err = await asyncio.to_thread(getter.communicate, f"/get {offer_id}\n", timeout=60)
    assert getter.returncode == 0, err
    assert "\x1b" not in out
    assert f"alice offers file #{offer_id}: report.pdf (3.0 MiB) (/get {offer_id})" in out, out
    assert re.search(r"transfer 1: getting report\.pdf: \d+% of 3\.0 MiB", out), out
    assert f"saved report.pdf as {downloads / 'report.pdf'} (3.0 MiB, SHA-256 verified)" in out, out
    assert (downloads / "report.pdf").read_bytes() == source.read_bytes()
