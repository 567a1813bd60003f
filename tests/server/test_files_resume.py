"""Interrupted transfers resume from the last confirmed offset: a dropped connection (upload and download) and
a server killed with SIGKILL mid-upload."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from chat_server.server import ChatServer
from shared import FetchHistory, FileDone, FileOffered, FileProgress, GetFile, History
from shared.limits import DEFAULT_FILE_CHUNK

from .client import ChatTestClient, wait_until
from .files_client import download, offer, send_chunks, sha256
from .process import ServerProcess

CHUNK = DEFAULT_FILE_CHUNK
SIZE = 40 * CHUNK + 123


def relogin(server: ChatServer, nick: str, rooms: list[str] | None = None) -> ChatTestClient:
    """Log `nick` in again once its old connection is gone (the nick is free then)."""
    wait_until(lambda: nick not in server.stats().queues, 10.0, f"{nick}'s old connection to end")
    client = ChatTestClient(server.address)
    client.login(nick, rooms)
    return client


def test_upload_resumes_after_the_connection_drops(
    server: ChatServer, login: Callable[..., ChatTestClient]
) -> None:
    """The client vanishes mid-upload; offering the same file again (same nick, size, sha256) answers the
    offset the server holds, not 0, and sending from there completes with the right hash."""
    bob = login("bob")
    data = os.urandom(SIZE)
    alice = login("alice")
    started = offer(alice, data, client_msg_id="up-1")
    assert isinstance(started, FileProgress)
    assert started.offset == 0
    confirmed = send_chunks(alice, started.upload, data, 0, stop_after=10 * CHUNK)
    assert confirmed >= 10 * CHUNK
    alice.close()
    alice = relogin(server, "alice")
    resumed = offer(alice, data, client_msg_id="up-1", ref=2)
    assert isinstance(resumed, FileProgress)
    assert confirmed <= resumed.offset < SIZE
    send_chunks(alice, resumed.upload, data, resumed.offset, ref=2)
    done = alice.recv(FileDone, upload=resumed.upload)
    offered = bob.recv(FileOffered)
    assert offered.id == done.id
    assert download(bob, done.id) == data
    alice.close()


def test_download_resumes_after_the_connection_drops(
    server: ChatServer, login: Callable[..., ChatTestClient]
) -> None:
    """A download cut off midway continues from the length already held, and the bytes hash right."""
    alice, bob = login("alice"), login("bob")
    data = os.urandom(SIZE)
    started = offer(alice, data)
    assert isinstance(started, FileProgress)
    send_chunks(alice, started.upload, data, 0)
    offered = bob.recv(FileOffered)
    held = download(bob, offered.id, stop_after=15 * CHUNK)
    assert 15 * CHUNK <= len(held) < SIZE
    bob.close()
    bob = relogin(server, "bob")
    whole = download(bob, offered.id, start=held)
    assert whole == data
    assert sha256(whole) == offered.sha256
    bob.close()


def server_arguments(data_dir: Path) -> list[str]:
    """A durable server with rate limits out of the way."""
    return [
        "--port", "0", "--data-dir", str(data_dir), "--history-sync", "FULL",
        "--rate-messages", "100000", "--rate-burst", "100000", "--log-level", "WARNING",
    ]  # fmt: skip


def test_upload_resumes_after_the_server_is_killed(tmp_path: Path) -> None:
    """SIGKILL mid-upload: what was confirmed is on disk, so after a restart the same offer resumes from a
    non-zero offset and completes; the stored file and its download are byte for byte right."""
    data = os.urandom(SIZE)
    with ServerProcess(*server_arguments(tmp_path)) as first:
        assert first.address is not None, first.first_line
        alice = ChatTestClient(first.address)
        alice.login("alice")
        started = offer(alice, data, client_msg_id="k-1")
        assert isinstance(started, FileProgress)
        confirmed = send_chunks(alice, started.upload, data, 0, stop_after=20 * CHUNK)
        first.kill()
        alice.close()
    assert confirmed >= 20 * CHUNK
    with ServerProcess(*server_arguments(tmp_path)) as second:
        assert second.address is not None, second.first_line
        with ChatTestClient(second.address) as alice, ChatTestClient(second.address) as bob:
            alice.login("alice")
            bob.login("bob")
            resumed = offer(alice, data, client_msg_id="k-1", ref=2)
            assert isinstance(resumed, FileProgress)
            assert confirmed <= resumed.offset < SIZE
            send_chunks(alice, resumed.upload, data, resumed.offset, ref=2)
            done = alice.recv(FileDone, upload=resumed.upload)
            assert bob.recv(FileOffered).id == done.id
            assert download(bob, done.id) == data
        second.stop()
    stored = tmp_path / "files" / "objects" / sha256(data)[:2] / sha256(data)
    assert stored.read_bytes() == data
    assert list((tmp_path / "files" / "partial").iterdir()) == []


def test_retention_sweep_deletes_old_files_and_abandoned_uploads(
    server: ChatServer, login: Callable[..., ChatTestClient]
) -> None:
    """A sweep leaves fresh files alone. Past the retention period the stored file is deleted (file_get says
    no_such_file, its history entry stays) and so is an interrupted upload past `partial_days`; the same
    bytes can be offered again afterwards."""
    files = server.files
    assert files is not None
    alice, bob = login("alice"), login("bob")
    kept = b"kept a month"
    started = offer(alice, kept)
    assert isinstance(started, FileProgress)
    send_chunks(alice, started.upload, kept, 0)
    offered = bob.recv(FileOffered)
    abandoned = os.urandom(5 * CHUNK)
    partial = offer(alice, abandoned, ref=2)
    assert isinstance(partial, FileProgress)
    send_chunks(alice, partial.upload, abandoned, 0, ref=2, stop_after=CHUNK)
    alice.close()
    assert server.sweep_files().objects == 0
    assert download(bob, offered.id) == kept
    wait_until(lambda: "alice" not in server.stats().queues, 10.0, "alice gone")
    real_clock = files.clock
    files.clock = lambda: real_clock() + 31 * 86400
    result = server.sweep_files()
    assert (result.objects, result.partials) == (1, 1)
    assert result.bytes >= len(kept) + CHUNK
    assert list(files.partials.iterdir()) == []
    bob.send(GetFile(id=offered.id, ref=9))
    assert bob.error("no_such_file").ref == 9
    bob.send(FetchHistory(room="lobby", ref=10))
    page = bob.recv(History, ref=10)
    assert [m.id for m in page.messages if isinstance(m, FileOffered)] == [offered.id]
    files.clock = real_clock  # the history thread's clock never moved: new uploads are dated "now"
    alice = relogin(server, "alice")
    again = offer(alice, kept, ref=3)
    assert isinstance(again, FileProgress)
    assert again.offset == 0
    send_chunks(alice, again.upload, kept, 0, ref=3)
    renewed = bob.recv(FileOffered)
    assert download(bob, renewed.id) == kept
    assert download(bob, offered.id) == kept  # the bytes are back: the old offer finds them again
    alice.close()


def test_two_nicks_upload_the_same_bytes_at_once(
    server: ChatServer, login: Callable[..., ChatTestClient]
) -> None:
    """Two uploads of identical content, interleaved: each is a separate offer, the bytes are stored once,
    and both offers download correctly."""
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    data = os.urandom(6 * CHUNK)
    first = offer(alice, data, ref=1)
    second = offer(bob, data, ref=2)
    assert isinstance(first, FileProgress)
    assert isinstance(second, FileProgress)
    send_chunks(alice, first.upload, data, 0, ref=1, end=3 * CHUNK)
    send_chunks(bob, second.upload, data, 0, ref=2)
    send_chunks(alice, first.upload, data, 3 * CHUNK, ref=1)
    ids = {alice.recv(FileDone, upload=first.upload).id, bob.recv(FileDone, upload=second.upload).id}
    assert len(ids) == 2
    assert {carol.recv(FileOffered).id, carol.recv(FileOffered).id} == ids
    for message_id in ids:
        assert download(carol, message_id) == data
    assert server.files is not None
    assert [p.name for p in server.files.objects.rglob("*") if p.is_file()] == [sha256(data)]
