"""A 50 MB file goes up and comes back down byte for byte, and chat between two other clients keeps flowing
while it does: each chat message arrives before the transfer it overlaps has ended (an ordering, not a
timing: the latency is measured by `python -m benchmarks.files`, not here)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, FileOffered, FileProgress, Said, Say

from .client import ChatTestClient, wait_until
from .files_client import download, offer, send_chunks, sha256

SIZE = 50 * 1024 * 1024


class Transfer(threading.Thread):
    """Runs one transfer on its own thread; `progress` grows as it goes; `error` holds what failed."""

    def __init__(self, work: Callable[[Transfer], None]) -> None:
        super().__init__(name="transfer", daemon=True)
        self.work = work
        self.progress = 0
        self.finished = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        """Do the work, then mark the transfer finished (also when it failed)."""
        try:
            self.work(self)
        except BaseException as error:  # reported by the test thread
            self.error = error
        finally:
            self.finished.set()


def chat_while(transfer: Transfer, carol: ChatTestClient, dave: ChatTestClient, tag: str) -> None:
    """Once the transfer is under way, carol says three lines; dave gets each before the transfer ends."""
    wait_until(lambda: transfer.progress >= 1024 * 1024 or transfer.finished.is_set(), 60.0, "progress")
    for number in range(3):
        text = f"{tag} {number}"
        carol.send(Say(room="lobby", text=text, ref=number))
        carol.recv(Ack, timeout=30, ref=number)
        dave.recv(Said, timeout=30, text=text)
        assert not transfer.finished.is_set(), f"{text!r} arrived only after the transfer had ended"


def test_chat_flows_during_a_50_mb_upload_and_download(
    server: ChatServer, login: Callable[..., ChatTestClient]
) -> None:
    """Upload 50 MB while carol chats with dave, then download it while they chat again; the bytes match."""
    alice, bob, carol, dave = login("alice"), login("bob"), login("carol"), login("dave")
    data = os.urandom(1024 * 1024) * (SIZE // (1024 * 1024))
    started = offer(alice, data)
    assert isinstance(started, FileProgress)

    def up(transfer: Transfer) -> None:
        offset = 0
        step = 2 * 1024 * 1024
        while offset < SIZE:
            offset = send_chunks(alice, started.upload, data, offset, end=offset + step)
            transfer.progress = offset

    uploading = Transfer(up)
    uploading.start()
    chat_while(uploading, carol, dave, "during upload")
    uploading.join(120)
    assert uploading.error is None, uploading.error
    offered = bob.recv(FileOffered, timeout=60)
    assert (offered.size, offered.sha256) == (SIZE, sha256(data))
    received: list[bytes] = []

    def down(transfer: Transfer) -> None:
        held = b""
        while len(held) < SIZE:
            held = download(bob, offered.id, start=held, stop_after=len(held) + 2 * 1024 * 1024)
            transfer.progress = len(held)
        received.append(held)

    downloading = Transfer(down)
    downloading.start()
    chat_while(downloading, carol, dave, "during download")
    downloading.join(120)
    assert downloading.error is None, downloading.error
    assert received[0] == data
