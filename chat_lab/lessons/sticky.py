"""Lesson 2: "sticky packets". TCP carries a stream of bytes, not messages: what one `send` wrote may arrive
in pieces, and several sends may arrive as one. A receiver that treats each `recv` as one message works on
an idle loopback and breaks on a real network. The lesson sends three messages through the fault proxy,
first merging the writes (`coalesce`), then cutting them into 2-byte pieces (`split`), and reads them twice:
naively (one `recv` = one message) and with a length prefix (`shared.codec`: `frame` and
`FrameReassembler`, exactly what mpchat's client and server use). Then the same for a file sent behind a
`struct`-packed header.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
from dataclasses import dataclass, field
from typing import TextIO

from chat_lab.proxy import FaultProxy
from shared.codec import FrameReassembler, frame

MESSAGES = (b"hello", b"how are you?", b"bye")
#: The file header of the classic lesson: a 64-byte name and an 8-byte size, network byte order.
FILE_HEADER = struct.Struct("!64sQ")
#: Seconds any read may wait.
STEP_TIMEOUT = 5.0
#: How long the receiver watches for more after the last byte it expects (the naive reader cannot know).
QUIET = 0.3


@dataclass
class StickyFindings:
    """What lesson 2 saw, per proxy setting: the naive reading and the framed one."""

    naive: dict[str, list[bytes]] = field(default_factory=dict)
    framed: dict[str, list[bytes]] = field(default_factory=dict)
    header_naive: dict[str, str] = field(default_factory=dict)
    header_exact: dict[str, str] = field(default_factory=dict)


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
    print(
        "\nmpchat frames every message with a 4-byte length (shared/codec.py: frame, FrameReassembler), and "
        "sends a file as numbered chunks in frames, each acknowledged, the whole checked by its SHA-256 "
        "(docs/protocol.md, files): a cut connection resumes where it stopped.",
        file=out,
    )
    return found
