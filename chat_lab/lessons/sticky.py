"""Lesson 2: "sticky packets". TCP carries a stream of bytes, not messages: what one `send` wrote may arrive
in pieces, and several sends may arrive as one. A receiver that treats each `recv` as one message works on
an idle loopback and breaks on a real network. The lesson sends three messages through the fault proxy,
first merging the writes (`coalesce`), then cutting them into 2-byte pieces (`split`), and reads them twice:
naively (one `recv` = one message) and with a length prefix (`shared.codec`: `frame` and
`FrameReassembler`, exactly what mpchat's client and server use). Then the same for a file sent behind a
`struct`-packed header, and last a file sent by mpchat (an offer, then numbered chunks, checked by its
SHA-256) through the same proxy, with the sender's connection cut in the middle.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from chat_client import ChatClient
from chat_lab.proxy import FaultProxy
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared.codec import FrameReassembler, frame

MESSAGES = (b"hello", b"how are you?", b"bye")
#: The file header of the classic lesson: a 64-byte name and an 8-byte size, network byte order.
FILE_HEADER = struct.Struct("!64sQ")
#: Seconds any read may wait.
STEP_TIMEOUT = 5.0
#: How long the receiver watches for more after the last byte it expects (the naive reader cannot know).
QUIET = 0.3
#: The file mpchat sends in the lesson: a few chunks' worth.
MPCHAT_FILE_SIZE = 120_000
#: Bytes that pass up the proxy before it cuts alice's connection: the first chunk and part of the second.
CUT_AFTER = 70_000
#: Seconds the mpchat transfer may take in all.
TRANSFER_TIMEOUT = 60.0


@dataclass
class StickyFindings:
    """What lesson 2 saw, per proxy setting: the naive reading and the framed one."""

    naive: dict[str, list[bytes]] = field(default_factory=dict)
    framed: dict[str, list[bytes]] = field(default_factory=dict)
    header_naive: dict[str, str] = field(default_factory=dict)
    header_exact: dict[str, str] = field(default_factory=dict)
    #: mpchat's transfer: where the upload resumed after the cut, and what the receiver saved.
    resumed_from: int = 0
    mpchat_sent: str = ""
    mpchat_saved: str = ""


async def receive_all(server: socket.socket) -> list[bytes]:
    """Accept one connection and return what each `recv` returned, until the sender closes."""
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(server)
    reads = []
    with conn:
        while data := await asyncio.wait_for(loop.sock_recv(conn, 65536), STEP_TIMEOUT):
            reads.append(data)
    return reads


async def send_through(proxy_setting: dict[str, float], payloads: list[bytes]) -> list[bytes]:
    """Send each payload with its own `sendall` through a proxy with `proxy_setting`; return the receiver's
    `recv` results, one per read."""
    loop = asyncio.get_running_loop()
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    proxy = FaultProxy(server.getsockname()[:2])
    for name, value in proxy_setting.items():
        setattr(proxy.to_server, name, value)
    await proxy.start()
    try:
        receiving = asyncio.ensure_future(receive_all(server))
        client = socket.create_connection(proxy.address, timeout=STEP_TIMEOUT)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setblocking(False)
        with client:
            for payload in payloads:
                await loop.sock_sendall(client, payload)
                await asyncio.sleep(0.02)  # the sender's pause between messages: part of the experiment
        return await asyncio.wait_for(receiving, STEP_TIMEOUT)
    finally:
        await proxy.close()
        server.close()


def unframe(reads: list[bytes]) -> list[bytes]:
    """Feed the reads, as they came, to the length-prefix reassembler; return the whole messages."""
    reassembler = FrameReassembler(max_frame=1 << 20)
    found: list[bytes] = []
    for data in reads:
        reassembler.feed(data)
        found.extend(reassembler.frames())
    return found


def read_file_naively(reads: list[bytes]) -> str:
    """The classic mistake: the first `recv` is taken as the header, the rest as the file."""
    first = reads[0]
    if len(first) < FILE_HEADER.size:
        return (
            f"the first recv held {len(first)} bytes, not the {FILE_HEADER.size} of the header: struct.error"
        )
    name, size = FILE_HEADER.unpack(first[: FILE_HEADER.size])
    body = first[FILE_HEADER.size :]  # the naive reader then expects exactly `size` more... or not
    return f"{name.rstrip(bytes(1)).decode()} {size} bytes, {len(body)} of them in the header's recv"


def read_file_exactly(reads: list[bytes]) -> str:
    """The fix: gather bytes until the whole header is there, then until `size` bytes of body are."""
    stream = b"".join(reads)  # what a loop of recv calls into one buffer gives
    name, size = FILE_HEADER.unpack(stream[: FILE_HEADER.size])
    body = stream[FILE_HEADER.size : FILE_HEADER.size + size]
    return f"{name.rstrip(bytes(1)).decode()} {size} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}"


async def until(condition: Callable[[], bool], timeout: float = TRANSFER_TIMEOUT) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the lesson's transfer did not get there in time")
        await asyncio.sleep(0.02)  # polling interval of a bounded wait


def cut_after(proxy: FaultProxy, count: int) -> Callable[[bytes], bytes]:
    """A filter for the way up: after `count` more bytes, alice's side freezes (the rest is held, never
    sent) while the server's confirmations still come down; the lesson then cuts the connection."""
    passed = 0

    def watch(data: bytes) -> bytes:
        nonlocal passed
        passed += len(data)
        if passed >= count:
            proxy.freeze("up")
        return data

    return watch


def describe_file(name: str, content: bytes) -> str:
    """A file as the lesson prints it: name, size and the start of its SHA-256."""
    return f"{name} {len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()[:16]}"


async def mpchat_transfer(content: bytes, found: StickyFindings, out: TextIO) -> None:
    """Send `content` as a file from alice to bob through an mpchat server and the proxy (split 7 both ways;
    alice's connection cut mid-upload); note in `found` where the upload resumed and what bob saved."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = root / "notes.bin"
        source.write_bytes(content)
        server = ChatServer(ServerConfig(host="127.0.0.1", port=0, data_dir=root / "server"))
        server.start()
        proxy = FaultProxy(server.address[:2])
        proxy.to_server.split = proxy.to_client.split = 7
        await proxy.start()
        try:
            async with (
                ChatClient(*proxy.address, "alice", rooms=["lesson"]) as alice,
                ChatClient(*proxy.address, "bob", rooms=["lesson"]) as bob,
            ):
                proxy.to_server.mangle = cut_after(proxy, CUT_AFTER)
                upload = await alice.send_file(source, room="lesson")
                await until(lambda: upload.info.done > 0)  # the server confirmed the first chunk...
                await proxy.cut()  # ... and the connection is gone
                proxy.to_server.mangle = None
                sent = await asyncio.wait_for(upload.wait(), TRANSFER_TIMEOUT)
                found.resumed_from = sent.resumed_from
                print(
                    f"-- split 7 both ways, alice's connection cut after {CUT_AFTER} bytes up: she connected "
                    f"again and went on from byte {sent.resumed_from}, the end of the last confirmed chunk",
                    file=out,
                )
                offer_id = sent.offer_id
                assert offer_id is not None
                await until(lambda: bob.file_offer(offer_id) is not None)
                got = await asyncio.wait_for(bob.get_file(offer_id, root / "bob").wait(), TRANSFER_TIMEOUT)
                assert got.path is not None
                found.mpchat_saved = describe_file(got.name, got.path.read_bytes())
                print(
                    f"   bob saved {found.mpchat_saved} (its SHA-256 checked against the offer's)",
                    file=out,
                )
        finally:
            await proxy.close()
            server.stop()


def run(out: TextIO) -> StickyFindings:
    """Run the lesson, narrating to `out`; return what it saw."""
    return asyncio.run(_run(out))


async def _run(out: TextIO) -> StickyFindings:
    found = StickyFindings()
    settings: dict[str, dict[str, float]] = {
        "coalesce (merge writes)": {"coalesce": QUIET},
        "split 2, 200 bytes/s (cut writes)": {"split": 2, "bandwidth": 200},
    }
    print(f"the sender writes {len(MESSAGES)} messages, one sendall each: {list(MESSAGES)}", file=out)
    for label, setting in settings.items():
        reads = await send_through(setting, list(MESSAGES))
        found.naive[label] = reads
        print(f"\n-- through the proxy with {label}", file=out)
        print(
            f"   naive receiver (one recv = one message): {len(reads)} messages: {reads[:8]}"
            + (" ..." if len(reads) > 8 else ""),
            file=out,
        )
        framed_reads = await send_through(setting, [frame(m) for m in MESSAGES])
        found.framed[label] = unframe(framed_reads)
        print(
            f"   length-prefixed (shared.codec.FrameReassembler), {len(framed_reads)} reads: "
            f"{found.framed[label]}",
            file=out,
        )

    content = bytes(range(256)) * 4
    header = FILE_HEADER.pack(b"notes.txt", len(content))
    print(
        f"\nthe file transfer of the classic lesson: a {FILE_HEADER.size}-byte struct header "
        f"(name, size), then {len(content)} bytes",
        file=out,
    )
    file_settings: dict[str, dict[str, float]] = {
        "split 7": {"split": 7, "bandwidth": 7000},
        "coalesce": {"coalesce": QUIET},
    }
    for label, setting in file_settings.items():
        reads = await send_through(setting, [header, content])
        found.header_naive[label] = read_file_naively(reads)
        found.header_exact[label] = read_file_exactly(reads)
        print(f"-- {label}: naive: {found.header_naive[label]}", file=out)
        print(f"   {' ' * len(label)}  exact: {found.header_exact[label]}", file=out)
    mpchat_content = (bytes(range(256)) * (MPCHAT_FILE_SIZE // 256 + 1))[:MPCHAT_FILE_SIZE]
    found.mpchat_sent = describe_file("notes.bin", mpchat_content)
    print(f"\nthe same through mpchat: alice offers {found.mpchat_sent} in a room with bob", file=out)
    await mpchat_transfer(mpchat_content, found, out)
    print(
        "\nmpchat frames every message with a 4-byte length (shared/codec.py: frame, FrameReassembler), and "
        "sends a file as numbered chunks in frames, each acknowledged, the whole checked by its SHA-256 "
        "(docs/protocol.md, files): a cut connection resumes where it stopped.",
        file=out,
    )
    return found
