"""File sharing through the client library against the real server: sizes, resume, integrity, safe names."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from chat_client import (
    ChatClient,
    ChecksumMismatch,
    ClientOptions,
    TransferError,
    TransferInfo,
    TransferState,
    TransferUpdate,
    UnknownFile,
)
from chat_client.net.filework import PARTIAL_PREFIX
from chat_lab.proxy import FaultProxy
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    FileChunk,
    FileDone,
    FileProgress,
    Hello,
    OfferFile,
    ProtocolConnection,
    Role,
    Welcome,
    fold,
)
from tests.waiting import wait_until, wait_until_answered

from .helpers import LiveServer, fast_server_config
from .test_library import FAST

#: A file several times larger than what passes before a test stops the link (`PART`).
BIG = 12 * 1024 * 1024
#: Bytes let through a proxy before it freezes: a few chunks, so some are confirmed and many are not.
PART = 600_000


def options(folder: Path) -> ClientOptions:
    return replace(FAST, downloads_dir=folder, progress_interval=0.05)


def random_file(folder: Path, name: str, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            out.write(block)
            left -= len(block)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Updates:
    """Collects a client's transfer snapshots (and drains its other events)."""

    def __init__(self, client: ChatClient) -> None:
        self.infos: list[TransferInfo] = []
        self._task = asyncio.create_task(self._collect(client))

    async def _collect(self, client: ChatClient) -> None:
        async for event in client.events():
            if isinstance(event, TransferUpdate):
                self.infos.append(event.info)

    def of(self, number: int) -> list[TransferInfo]:
        return [info for info in self.infos if info.number == number]


async def share(sender: ChatClient, receiver: ChatClient, path: Path) -> int:
    """Upload `path` to the lobby; return the offer's id once the receiver knows it."""
    transfer = await sender.send_file(path, room="lobby")
    info = await transfer.wait()
    assert info.state is TransferState.DONE
    assert info.offer_id is not None
    offer_id = info.offer_id
    await wait_until(lambda: receiver.file_offer(offer_id) is not None, what="the offer to arrive")
    return offer_id


@pytest.mark.parametrize("size", ["0", "1", "chunk", "chunk+1"])
async def test_upload_and_download_round_trip(server: LiveServer, tmp_path: Path, size: str) -> None:
    """0 bytes, 1 byte, exactly one chunk and one chunk + 1 arrive with the same bytes and hash."""
    async with (
        ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        policy = alice.file_policy
        assert policy is not None
        length = {"0": 0, "1": 1, "chunk": policy.chunk, "chunk+1": policy.chunk + 1}[size]
        source = random_file(tmp_path / "src", f"file-{size}.bin", length)
        offer_id = await share(alice, bob, source)
        offer = bob.file_offer(offer_id)
        assert offer is not None
        assert (offer.nick, offer.name, offer.size, offer.sha256) == (
            "alice",
            source.name,
            length,
            digest(source),
        )
        info = await bob.get_file(offer_id).wait()
        assert info.path == tmp_path / "b" / source.name
        assert info.path.read_bytes() == source.read_bytes()
        assert sorted(os.listdir(tmp_path / "b")) == [source.name]  # no partial file left behind


async def test_fifty_megabytes_round_trip(server: LiveServer, tmp_path: Path) -> None:
    """A 50 MB file goes up and comes down intact."""
    source = random_file(tmp_path / "src", "big.bin", 50 * 1024 * 1024)
    async with (
        ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        offer_id = await share(alice, bob, source)
        info = await bob.get_file(offer_id).wait()
        assert info.path is not None
        assert info.size == source.stat().st_size
        assert digest(info.path) == digest(source)


async def test_upload_resumes_after_the_connection_is_cut(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Cut mid-upload, the client reconnects, offers again and continues from the server's offset."""
    source = random_file(tmp_path / "src", "big.bin", BIG)
    async with (
        ChatClient("127.0.0.1", proxy.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        proxy.to_server.mangle = proxy.freeze_after(PART)  # the upload surely stops part-way
        transfer = await alice.send_file(source, room="lobby")
        await wait_until(lambda: transfer.info.done > 0, what="some bytes confirmed")
        await proxy.cut()
        proxy.to_server.mangle = None
        info = await transfer.wait()
        assert info.state is TransferState.DONE
        assert info.resumed_from > 0
        assert info.offer_id is not None
        offer_id = info.offer_id
        await wait_until(lambda: bob.file_offer(offer_id) is not None)
        got = await bob.get_file(offer_id).wait()
        assert got.path is not None
        assert digest(got.path) == digest(source)


async def test_download_resumes_after_the_connection_is_cut(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Cut mid-download, the client reconnects and asks from the length of its partial file."""
    source = random_file(tmp_path / "src", "big.bin", BIG)
    async with (
        ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient("127.0.0.1", proxy.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        updates = Updates(bob)
        offer_id = await share(alice, bob, source)
        proxy.to_client.mangle = proxy.freeze_after(PART)  # the download surely stops part-way
        transfer = bob.get_file(offer_id)
        await wait_until(lambda: transfer.info.done > 0, what="some bytes written")
        await proxy.cut()
        proxy.to_client.mangle = None
        info = await transfer.wait()
        assert info.resumed_from > 0
        assert any(update.state is TransferState.WAITING for update in updates.of(transfer.number))
        assert info.path is not None
        assert digest(info.path) == digest(source)


async def test_a_download_resumes_from_the_partial_file_after_a_restart(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A client that stopped mid-download continues from its partial file the next time it gets the file."""
    source = random_file(tmp_path / "src", "big.bin", BIG)
    async with ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice:
        async with ChatClient("127.0.0.1", proxy.port, "bob", options=options(tmp_path / "b")) as bob:
            offer_id = await share(alice, bob, source)
            proxy.to_client.mangle = proxy.freeze_after(PART)  # stop it part-way
            first = bob.get_file(offer_id)
            await wait_until(lambda: first.info.done > 0, what="some bytes written")
            await proxy.cut()
        # bob closed mid-download; a new bob process (here: client) gets the same offer again, once the
        # server has noticed the cut connection and let the nick go (it would be `nick_taken` before).
        await wait_until_gone(alice, "bob")
        async with ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob:
            await wait_until(lambda: bob.file_offer(offer_id) is not None, what="the offer in history")
            info = await bob.get_file(offer_id).wait()
        assert info.resumed_from > 0
        assert info.path is not None
        assert digest(info.path) == digest(source)


async def wait_until_gone(observer: ChatClient, nick: str) -> None:
    """Wait until `nick` is no longer in the lobby, as `observer` (also in it) asks the server."""

    async def gone() -> bool:
        state = await observer.who("lobby")
        return state is not None and all(fold(member.nick) != fold(nick) for member in state.members)

    await wait_until_answered(gone, what=f"the server to let {nick} go")


def flip_a_data_byte() -> object:
    """A proxy filter that flips one byte inside the first full file_data chunk, once."""
    done = False

    def mangle(data: bytes) -> bytes:
        nonlocal done
        if done:
            return data
        for marker in (b"\xc5", b"\xc6"):  # a full chunk's bytes are msgpack bin16 or bin32
            index = data.find(b"\xa4data" + marker)
            if index >= 0 and index + 64 < len(data):
                done = True
                spot = index + 48  # well inside the payload, past its length header
                return data[:spot] + bytes([data[spot] ^ 0xFF]) + data[spot + 1 :]
        return data

    return mangle


async def test_upload_resumes_after_a_server_restart(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The server stops mid-upload and comes back: the upload continues from what it had stored."""
    source = random_file(tmp_path / "src", "big.bin", BIG)
    async with ChatClient("127.0.0.1", proxy.port, "alice", options=options(tmp_path / "a")) as alice:
        proxy.to_server.mangle = proxy.freeze_after(PART)  # the server stops with the upload unfinished
        transfer = await alice.send_file(source, room="lobby")
        await wait_until(lambda: transfer.info.done > 0, what="some bytes confirmed")
        await server.astop()
        proxy.to_server.mangle = None
        proxy.thaw()  # the client now sees the shutdown
        await wait_until(lambda: transfer.info.state is TransferState.WAITING, what="the upload to pause")
        await server.astart()
        info = await transfer.wait()
        assert info.resumed_from > 0
        assert info.offer_id is not None
        offer_id = info.offer_id
    async with ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob:
        await wait_until(lambda: bob.file_offer(offer_id) is not None, what="the offer in history")
        got = await bob.get_file(offer_id).wait()
    assert got.path is not None
    assert digest(got.path) == digest(source)


async def test_a_file_offered_to_one_nick(server: LiveServer, tmp_path: Path) -> None:
    """An offer to a nick reaches that nick only, as a direct offer it can download."""
    source = random_file(tmp_path / "src", "private.txt", 5000)
    async with (
        ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob,
        ChatClient(server.host, server.port, "carol", options=options(tmp_path / "c")) as carol,
    ):
        info = await (await alice.send_file(source, to="bob")).wait()
        offer_id = info.offer_id
        assert offer_id is not None
        await wait_until(lambda: bob.file_offer(offer_id) is not None, what="bob to get the offer")
        offer = bob.file_offer(offer_id)
        assert offer is not None
        assert (offer.to, offer.room) == ("bob", None)
        got = await bob.get_file(offer_id).wait()
        assert got.path is not None
        assert got.path.read_bytes() == source.read_bytes()
        await carol.say("lobby", "sync", wait=True)  # anything sent to carol before this has arrived
        assert carol.file_offer(offer_id) is None
        with pytest.raises(UnknownFile):
            carol.get_file(offer_id)


async def test_refusals_are_typed_errors(tmp_path: Path) -> None:
    """Over the largest size: refused before sending; over the quota: the server's `quota_exceeded`."""
    from chat_server.filesconfig import FilesConfig

    files = FilesConfig(max_size=10_000, user_quota=10_000, total_quota=100_000)
    live = LiveServer(fast_server_config(tmp_path / "server", files=files))
    live.start()
    try:
        async with ChatClient(live.host, live.port, "alice", options=options(tmp_path / "a")) as alice:
            big = random_file(tmp_path / "src", "big.bin", 10_001)
            with pytest.raises(TransferError) as raised:
                await (await alice.send_file(big, room="lobby")).wait()
            assert raised.value.code == "file_too_large"
            fits = random_file(tmp_path / "src", "fits.bin", 6_000)
            await (await alice.send_file(fits, room="lobby")).wait()
            again = random_file(tmp_path / "src", "again.bin", 6_000)
            with pytest.raises(TransferError) as raised:
                await (await alice.send_file(again, room="lobby")).wait()
            assert raised.value.code == "quota_exceeded"
            assert [info.state for info in alice.transfers] == [
                TransferState.FAILED,
                TransferState.DONE,
                TransferState.FAILED,
            ]
    finally:
        await live.astop()


async def test_a_corrupted_download_is_refused_and_not_kept(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """One flipped bit on the way down: a checksum error, and neither the file nor its partial stays."""
    source = random_file(tmp_path / "src", "data.bin", 300_000)
    async with (
        ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient("127.0.0.1", proxy.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        offer_id = await share(alice, bob, source)
        proxy.to_client.mangle = flip_a_data_byte()  # type: ignore[assignment]
        with pytest.raises(ChecksumMismatch):
            await bob.get_file(offer_id).wait()
        assert os.listdir(tmp_path / "b") == []
        info = bob.transfers[-1]
        assert (info.state, info.error_code) == (TransferState.FAILED, "checksum_mismatch")


async def raw_upload(server: LiveServer, nick: str, name: str, data: bytes) -> int:
    """Offer and upload a file under any name the protocol allows, as a hostile client could."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    protocol = ProtocolConnection(Role.CLIENT)
    writer.write(protocol.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick)))
    offer = OfferFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(), room="lobby", ref=1)
    try:
        while True:
            protocol.receive_data(await asyncio.wait_for(reader.read(65536), 10))
            for message in protocol.events():
                if isinstance(message, Welcome):
                    writer.write(protocol.send(offer))
                elif isinstance(message, FileProgress) and message.ref == 1:
                    writer.write(protocol.send(FileChunk(upload=message.upload, offset=0, data=data, ref=1)))
                elif isinstance(message, FileDone):
                    return message.id
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("offered", "saved"),
    [
        ("../../etc/passwd", "passwd"),
        ("..", None),
        ("a/b\\c", "c"),
        ("\u202eexe.txt\u200b", "exe.txt"),
    ],
)
async def test_hostile_names_are_saved_inside_the_downloads_folder(
    server: LiveServer, tmp_path: Path, offered: str, saved: str | None
) -> None:
    """Path components, dots, bidi and zero-width characters never escape or disguise the saved file."""
    async with ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob:
        offer_id = await raw_upload(server, "mallory", offered, b"payload")
        await wait_until(lambda: bob.file_offer(offer_id) is not None)
        info = await bob.get_file(offer_id).wait()
    assert info.path is not None
    assert info.path.parent == tmp_path / "b"
    assert info.path.name == (saved or f"file-{offer_id}")
    assert info.path.read_bytes() == b"payload"
    # Nothing was written anywhere else (the server's own data folder aside).
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.relative_to(tmp_path).parts[0] != "server"]
    assert written == [info.path]


async def test_a_second_download_does_not_clobber_the_first(server: LiveServer, tmp_path: Path) -> None:
    """Getting the same offer twice keeps both copies: `notes.txt` and `notes (1).txt`."""
    source = random_file(tmp_path / "src", "notes.txt", 1000)
    async with (
        ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        offer_id = await share(alice, bob, source)
        first = await bob.get_file(offer_id).wait()
        assert first.path is not None
        first.path.write_bytes(b"edited by bob")
        second = await bob.get_file(offer_id).wait()
    assert second.path == tmp_path / "b" / "notes (1).txt"
    assert second.path.read_bytes() == source.read_bytes()
    assert first.path.read_bytes() == b"edited by bob"


async def test_cancel_a_download_removes_its_partial_file(
    server: LiveServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A cancelled download ends as cancelled and leaves nothing in the downloads folder."""
    source = random_file(tmp_path / "src", "big.bin", BIG)
    async with (
        ChatClient(server.host, server.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient("127.0.0.1", proxy.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        offer_id = await share(alice, bob, source)
        proxy.freeze()  # nothing more arrives: the download is surely still running when cancelled
        transfer = bob.get_file(offer_id)
        await wait_until(lambda: transfer.info.state is TransferState.RUNNING)
        assert bob.cancel_transfer(transfer.number)
        with pytest.raises(TransferError) as raised:
            await transfer.wait()
        assert raised.value.code == "cancelled"
        assert not any(name.startswith(PARTIAL_PREFIX) for name in os.listdir(tmp_path / "b"))
        assert not bob.cancel_transfer(transfer.number)  # ended: nothing to cancel
        proxy.thaw()


async def test_cancel_an_upload(server: LiveServer, proxy: FaultProxy, tmp_path: Path) -> None:
    """A cancelled upload ends as cancelled; nobody is offered the file."""
    source = random_file(tmp_path / "src", "big.bin", BIG)
    async with (
        ChatClient("127.0.0.1", proxy.port, "alice", options=options(tmp_path / "a")) as alice,
        ChatClient(server.host, server.port, "bob", options=options(tmp_path / "b")) as bob,
    ):
        transfer = await alice.send_file(source, room="lobby")
        await wait_until(lambda: transfer.info.state is TransferState.RUNNING)
        proxy.freeze()
        assert alice.cancel_transfer(transfer.number)
        with pytest.raises(TransferError):
            await transfer.wait()
        assert transfer.info.state is TransferState.CANCELLED
        proxy.thaw()
        await bob.say("lobby", "after the cancel", wait=True)  # the server is still fine
        assert transfer.info.offer_id is None


async def test_sending_a_missing_file_is_a_clear_error(server: LiveServer, tmp_path: Path) -> None:
    """A path that is not a readable file is refused before anything is sent."""
    async with ChatClient(server.host, server.port, "alice", options=options(tmp_path)) as alice:
        with pytest.raises(TransferError) as raised:
            await alice.send_file(tmp_path / "missing.txt", room="lobby")
        assert raised.value.code == "unreadable"
        with pytest.raises(TransferError):
            await alice.send_file(tmp_path, room="lobby")
        assert alice.transfers == ()


async def test_a_large_upload_keeps_the_servers_window(tmp_path: Path) -> None:
    """The library keeps at most `files.window` chunks unconfirmed, so the server never refuses one of its
    chunks: 600 chunks go up against a window of 1 and a small kernel send buffer (the server writes its
    confirmations slowly), and come down intact."""
    from chat_server.filesconfig import FilesConfig

    files = FilesConfig(window=1, chunk=4096)
    live = LiveServer(fast_server_config(tmp_path / "server", files=files, send_buffer=4096))
    live.start()
    try:
        async with (
            ChatClient(live.host, live.port, "alice", options=options(tmp_path / "a")) as alice,
            ChatClient(live.host, live.port, "bob", options=options(tmp_path / "b")) as bob,
        ):
            assert alice.file_policy is not None
            assert (alice.file_policy.window, alice.file_policy.chunk) == (1, 4096)
            source = random_file(tmp_path / "src", "big.bin", 600 * 4096 - 7)
            offer_id = await share(alice, bob, source)
            info = await bob.get_file(offer_id).wait()
            assert info.path is not None
            assert digest(info.path) == digest(source)
    finally:
        await live.astop()
