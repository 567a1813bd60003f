"""File sharing limits and hostile uploads: each is refused with a clear error, and nothing is written outside
the files folder (the whole temp dir is walked before and after)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from chat_server.filesconfig import FilesConfig
from chat_server.sender.thread import SendQueue
from chat_server.server import ChatServer
from shared import (
    Ack,
    Error,
    FileChunk,
    FileData,
    FileDone,
    FileOffered,
    FileProgress,
    GetFile,
    Said,
    Say,
)
from shared.limits import DEFAULT_FILE_CHUNK

from .client import ChatTestClient, wait_until
from .files_client import STEP_TIMEOUT, download, offer, send_chunks, sha256, upload

CHUNK = DEFAULT_FILE_CHUNK


def files_server(make_server: Callable[..., ChatServer], **files: object) -> ChatServer:
    """A server whose [files] settings are the defaults with `files` applied."""
    return make_server(files=FilesConfig(**files))  # type: ignore[arg-type]


def client(server: ChatServer, nick: str) -> ChatTestClient:
    """A logged-in client of `server` (in lobby)."""
    connection = ChatTestClient(server.address)
    connection.login(nick)
    return connection


def tree(root: Path) -> set[str]:
    """Every file under `root`, relative to it."""
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_max_size_at_and_past_the_bound(make_server: Callable[..., ChatServer]) -> None:
    """A file of exactly max_size is accepted; one byte more is file_too_large."""
    server = files_server(make_server, max_size=1000)
    with client(server, "alice") as alice:
        assert upload(alice, b"x" * 1000).done is not None
        answer = offer(alice, b"y" * 1001, ref=2)
        assert isinstance(answer, Error)
        assert answer.code == "file_too_large"


def test_user_quota_at_and_past_the_bound(make_server: Callable[..., ChatServer]) -> None:
    """A nick may store exactly user_quota bytes; one more is quota_exceeded; another nick still may."""
    server = files_server(make_server, user_quota=3000, total_quota=10_000)
    with client(server, "alice") as alice, client(server, "bob") as bob:
        assert upload(alice, b"a" * 2000, ref=1).done is not None
        assert upload(alice, b"b" * 1000, ref=2).done is not None
        refused = offer(alice, b"c", ref=3)
        assert isinstance(refused, Error)
        assert refused.code == "quota_exceeded"
        assert upload(bob, b"d" * 3000, ref=4).done is not None
        # Bytes the server holds already cost nothing more for their holder.
        assert upload(alice, b"a" * 2000, ref=5).done is not None


def test_total_quota_counts_uploads_in_progress(make_server: Callable[..., ChatServer]) -> None:
    """The total quota counts stored files and uploads in progress: exactly full is fine, one more is not."""
    server = files_server(make_server, user_quota=4000, total_quota=5000)
    with client(server, "alice") as alice, client(server, "bob") as bob:
        assert upload(alice, b"a" * 3000).done is not None
        started = offer(bob, b"b" * 2000, ref=2)  # reserved, not yet sent
        assert isinstance(started, FileProgress)
        refused = offer(alice, b"c", ref=3)
        assert isinstance(refused, Error)
        assert refused.code == "quota_exceeded"
        send_chunks(bob, started.upload, b"b" * 2000, 0, ref=2)
        assert bob.recv(FileDone, upload=started.upload).id > 0


def test_too_many_uploads_per_connection(make_server: Callable[..., ChatServer]) -> None:
    """max_uploads offers may be in progress at once; one more is too_many_transfers; a finished one frees
    its place."""
    server = files_server(make_server, max_uploads=2)
    with client(server, "alice") as alice:
        first = offer(alice, b"1" * 10, ref=1)
        second = offer(alice, b"2" * 10, ref=2)
        assert isinstance(first, FileProgress)
        assert isinstance(second, FileProgress)
        third = offer(alice, b"3" * 10, ref=3)
        assert isinstance(third, Error)
        assert third.code == "too_many_transfers"
        send_chunks(alice, first.upload, b"1" * 10, 0, ref=1)
        alice.recv(FileDone, upload=first.upload)
        assert isinstance(offer(alice, b"3" * 10, ref=4), FileProgress)


def test_corrupted_chunk_is_a_checksum_mismatch_and_the_upload_is_deleted(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    """A flipped byte: checksum_mismatch at the end; the partial file is gone, nothing is stored or
    announced, and the same offer afterwards starts from 0."""
    server = files_server(make_server)
    data = os.urandom(2 * CHUNK + 5)
    corrupt = bytearray(data)
    corrupt[CHUNK + 7] ^= 0xFF
    with client(server, "alice") as alice, client(server, "bob") as bob:
        started = offer(alice, data)
        assert isinstance(started, FileProgress)
        for start in range(0, len(data), CHUNK):
            alice.send(
                FileChunk(
                    upload=started.upload, offset=start, data=bytes(corrupt[start : start + CHUNK]), ref=1
                )
            )
        assert alice.error("checksum_mismatch").ref == 1
        assert tree(tmp_path / "files" / "partial") == set()
        assert tree(tmp_path / "files" / "objects") == set()
        again = offer(alice, data, ref=2)
        assert isinstance(again, FileProgress)
        assert again.offset == 0
        alice.send(Say(room="lobby", text="after", ref=3))
        assert not any(isinstance(m, FileOffered) for m in bob.drain())


def test_wrong_hash_is_a_checksum_mismatch(make_server: Callable[..., ChatServer]) -> None:
    """Bytes that do not hash to the announced SHA-256 are refused, also for 0 bytes."""
    server = files_server(make_server)
    with client(server, "alice") as alice:
        result = upload(alice, b"hello", digest=sha256(b"world"))
        assert result.error is not None
        assert result.error.code == "checksum_mismatch"
        empty = offer(alice, b"", digest=sha256(b"x"), ref=2)
        assert isinstance(empty, Error)
        assert empty.code == "checksum_mismatch"


def test_lying_size_bytes_past_size_are_bad_offset(make_server: Callable[..., ChatServer]) -> None:
    """A chunk going past the announced size, or not at the confirmed offset, is bad_offset; the upload
    survives and completes with the right bytes."""
    server = files_server(make_server)
    data = b"0123456789"
    with client(server, "alice") as alice:
        started = offer(alice, data)
        assert isinstance(started, FileProgress)
        alice.send(FileChunk(upload=started.upload, offset=0, data=data + b"extra", ref=5))
        assert alice.error("bad_offset").ref == 5
        alice.send(FileChunk(upload=started.upload, offset=3, data=b"345", ref=6))
        assert alice.error("bad_offset").ref == 6
        send_chunks(alice, started.upload, data, 0)
        assert alice.recv(FileDone, upload=started.upload).id > 0


def test_oversized_chunk_and_unknown_upload(make_server: Callable[..., ChatServer]) -> None:
    """A chunk larger than files.chunk is invalid_field; a chunk for no upload is no_such_file."""
    server = files_server(make_server, chunk=1000)
    with client(server, "alice") as alice:
        started = offer(alice, b"z" * 3000)
        assert isinstance(started, FileProgress)
        alice.send(FileChunk(upload=started.upload, offset=0, data=b"z" * 1000, ref=7))
        assert alice.recv(FileProgress, upload=started.upload, offset=1000).ref == 7  # the chunk's ref
        alice.send(FileChunk(upload=started.upload, offset=1000, data=b"z" * 1001, ref=8))
        assert alice.error("invalid_field").ref == 8
        alice.send(FileChunk(upload=99, offset=0, data=b"z", ref=9))
        assert alice.error("no_such_file").ref == 9


def test_path_traversal_name_is_display_text_only(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    """A name like ../../etc/passwd is stored and shown as it is; the only files written are the history (and
    its search index) and the files folder's own hash-named files."""
    before = tree(tmp_path)
    server = files_server(make_server)
    data = b"root:x:0:0"
    with client(server, "alice") as alice, client(server, "bob") as bob:
        assert upload(alice, data, name="../../etc/passwd").done is not None
        offered = bob.recv(FileOffered)
        assert offered.name == "../../etc/passwd"
        assert download(bob, offered.id) == data
    new = tree(tmp_path) - before
    digest = sha256(data)
    assert f"files/objects/{digest[:2]}/{digest}" in new
    unexpected = {
        p for p in new if not p.startswith(("history.sqlite3", "history-search.sqlite3", "files/objects/"))
    }
    assert unexpected == set()
    assert not (tmp_path.parent / "etc").exists()


def test_download_window_is_bounded(make_server: Callable[..., ChatServer]) -> None:
    """A client asking for more than `window` chunks while not reading gets too_many_transfers for the
    excess, and is not dropped; everything it was given is correct."""
    server = make_server(files=FilesConfig(window=2), send_buffer=4096)
    data = os.urandom(20 * CHUNK)
    with client(server, "alice") as alice, ChatTestClient(server.address, receive_buffer=4096) as bob:
        bob.login("bob")
        done = upload(alice, data).done
        assert done is not None
        for number in range(40):
            bob.send(GetFile(id=done.id, offset=(number % 20) * CHUNK, ref=100 + number))
        refusal = bob.error("too_many_transfers", timeout=30)
        assert refusal.ref is not None
        assert refusal.ref >= 102
        answered = {refusal.ref}
        while len(answered) < 40:  # every request is answered, with data or a refusal
            answer = bob.recv_until(lambda m: isinstance(m, FileData | Error), timeout=30)
            assert isinstance(answer, FileData | Error)
            assert answer.ref not in answered
            answered.add(answer.ref)
            if isinstance(answer, FileData):
                assert answer.data == data[answer.offset : answer.offset + CHUNK]
            else:
                assert answer.code == "too_many_transfers"
        assert download(bob, done.id, window=2) == data


def test_files_off(make_server: Callable[..., ChatServer]) -> None:
    """With files off: no welcome.files, and a file request is refused with forbidden."""
    server = files_server(make_server, enabled=False)
    with ChatTestClient(server.address) as alice:
        welcome = alice.login("alice")
        assert welcome.files is None
        answer = offer(alice, b"data")
        assert isinstance(answer, Error)
        assert answer.code == "forbidden"


def test_a_downloader_is_not_dropped_for_its_bulk_frames(make_server: Callable[..., ChatServer]) -> None:
    """File chunks waiting for a stalled downloader do not count against its chat queue: with more chunk
    bytes queued than sendq_hard, a chat line still queues, and everything arrives once it reads again."""
    server = make_server(sendq_soft=60_000, sendq_hard=100_000, send_buffer=4096)
    data = os.urandom(8 * CHUNK)
    with client(server, "alice") as alice, ChatTestClient(server.address, receive_buffer=4096) as bob:
        bob.login("bob")
        done = upload(alice, data).done
        assert done is not None
        for number in range(4):
            bob.send(GetFile(id=done.id, offset=number * CHUNK, ref=10 + number))
        wait_until(lambda: server.stats().queues.get("bob", 0) > 100_000, 10.0, "bob's chunks queued")
        alice.send(Say(room="lobby", text="still here?", ref=20))
        alice.recv(Ack, ref=20)
        for number in range(4):
            chunk = bob.recv(FileData, timeout=30, ref=10 + number)
            assert chunk.data == data[number * CHUNK : (number + 1) * CHUNK]
        assert bob.recv(Said, timeout=30).text == "still here?"
        assert not any(isinstance(m, Error) for m in bob.drain())


def test_send_queue_bulk_lane_gives_chat_frames_first() -> None:
    """take() returns every chat frame, then at most one bulk frame; the lane refuses past bulk_limit; the
    limits grow by the lane's bound only while bulk bytes are in flight; close drops waiting chunks."""
    box = SendQueue(soft=100, hard=200, soft_seconds=1.0, bulk_limit=2, bulk_frame=1000)
    assert box.put_bulk(b"B1" * 400)
    assert box.put_bulk(b"B2" * 400)
    assert not box.put_bulk(b"B3")
    assert box.bulk_full()
    assert box.put(b"c1")  # 1,602 bytes queued: within soft + the lane's room
    assert box.put(b"c2")
    assert box.take() == [b"c1", b"c2", b"B1" * 400]
    assert box.take() == [b"B2" * 400]
    assert box.take() == []
    box.written(1604)
    assert box.queued == 0
    assert not box.put(b"x" * 201)  # no bulk in flight: the plain hard limit again
    other = SendQueue(soft=100, hard=200, soft_seconds=1.0, bulk_limit=2, bulk_frame=1000)
    other.put_bulk(b"chunk")
    other.close(b"bye")
    assert other.take() == [b"bye"]
    assert other.take() is None


def test_upload_window_at_and_past_the_limit(make_server: Callable[..., ChatServer]) -> None:
    """While the server cannot write to the uploader (two 49 KiB downloads it does not read fill the small
    buffers), `window` chunks sent without confirmation are accepted and the next one is refused with
    too_many_transfers, carrying its ref; nothing of it is written, and the upload goes on at the confirmed
    offset once the client reads its confirmations again."""
    server = make_server(files=FilesConfig(window=2), send_buffer=4096)
    big = os.urandom(2 * CHUNK)
    with client(server, "alice") as alice, ChatTestClient(server.address, receive_buffer=4096) as bob:
        bob.login("bob")
        stored = upload(bob, big, ref=1).done
        assert stored is not None
        started = offer(bob, b"abc", ref=2)
        assert isinstance(started, FileProgress)
        assert started.offset == 0
        bob.send(GetFile(id=stored.id, offset=0, ref=3))
        bob.send(GetFile(id=stored.id, offset=CHUNK, ref=4))
        # The kernel takes the first chunk whole, the second finds it full: the sender waits for bob's socket
        # to drain, and frames queued from now on stay in bob's send queue until he reads.
        wait_until(lambda: blocked(server, "bob"), STEP_TIMEOUT, "the sender to wait for bob's socket")
        for offset in range(3):
            piece = b"abc"[offset : offset + 1]
            bob.send(FileChunk(upload=started.upload, offset=offset, data=piece, ref=10 + offset))
        bob.send(Say(room="lobby", text="after the chunks", ref=13))
        alice.recv(Said, text="after the chunks")  # bob's chunks were handled before his say was read
        assert bob.recv(FileData, STEP_TIMEOUT, ref=3).data == big[:CHUNK]
        assert bob.recv(FileData, STEP_TIMEOUT, ref=4).data == big[CHUNK:]
        assert bob.recv(FileProgress, ref=10).offset == 1
        assert bob.recv(FileProgress, ref=11).offset == 2
        refused = bob.error("too_many_transfers")
        assert refused.ref == 12
        assert not refused.fatal
        bob.recv(Ack, ref=13)
        # The refused chunk was not written: it is expected again at offset 2, and completes the upload.
        bob.send(FileChunk(upload=started.upload, offset=2, data=b"c", ref=14))
        assert bob.recv(FileProgress, ref=14).offset == 3
        done = bob.recv(FileDone, upload=started.upload)
        assert alice.recv(FileOffered, id=done.id).size == 3


def blocked(server: ChatServer, nick: str) -> bool:
    """True while the sender waits for `nick`'s socket to take more (its kernel buffers are full); a test
    looks at the server's own state here, since a client cannot see it."""
    sendq = server._services.hub.nicks[nick].sendq
    try:
        watched = list(server._services.sender._watched)
    except RuntimeError:  # the sender changed the set meanwhile: look again
        return False
    return any(channel.sendq is sendq for channel in watched)


def test_upload_window_never_refuses_a_client_that_keeps_it(make_server: Callable[..., ChatServer]) -> None:
    """A client with exactly `window` chunks unconfirmed at all times (the rule of section 12) uploads a file
    of many chunks without a refusal, over a slow-reading socket too."""
    server = make_server(files=FilesConfig(window=2, chunk=1024), send_buffer=4096)
    data = os.urandom(300 * 1024)
    with ChatTestClient(server.address, receive_buffer=4096) as bob:
        bob.login("bob")
        started = offer(bob, data)
        assert isinstance(started, FileProgress)
        assert send_chunks(bob, started.upload, data, 0, chunk=1024, window=2) == len(data)
        assert bob.recv(FileDone, upload=started.upload, timeout=STEP_TIMEOUT).id > 0
