"""Framing: a byte stream in any chunking gives back exactly the frames that were sent."""

from __future__ import annotations

import pytest

from shared import ErrorCode, FrameReassembler, RemoteProtocolError, frame

BODIES = [b"\x81\xa4type\xa4ping", b"x" * 300, b"\x80", b"y" * 70_000]


def reassemble(chunks: list[bytes], max_frame: int = 100_000) -> list[bytes]:
    """Feed `chunks` one after the other and collect every complete frame."""
    reassembler = FrameReassembler(max_frame)
    out: list[bytes] = []
    for chunk in chunks:
        reassembler.feed(chunk)
        out.extend(reassembler.frames())
    assert reassembler.buffered == 0, "bytes left over after the last frame"
    return out


def test_frame_puts_a_big_endian_length_in_front() -> None:
    """The header is the body's length as 4 bytes, most significant first."""
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"x" * 258)[:4] == b"\x00\x00\x01\x02"


def test_whole_stream_in_one_chunk() -> None:
    """Many frames coalesced into one read come out as separate frames, in order."""
    stream = b"".join(frame(body) for body in BODIES)
    assert reassemble([stream]) == BODIES


def test_one_byte_at_a_time_yields_nothing_early() -> None:
    """Fed byte by byte, each frame appears exactly when its last byte arrives, never before."""
    reassembler = FrameReassembler(100_000)
    stream = b"".join(frame(body) for body in BODIES)
    frame_ends = set()
    position = 0
    for body in BODIES:
        position += 4 + len(body)
        frame_ends.add(position)
    got: list[bytes] = []
    for index in range(len(stream)):
        reassembler.feed(stream[index : index + 1])
        new = list(reassembler.frames())
        if index + 1 in frame_ends:
            assert len(new) == 1
        else:
            assert new == []
        got.extend(new)
    assert got == BODIES


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 17, 301])
def test_frames_split_anywhere_with_a_partial_tail(cut: int) -> None:
    """A chunk boundary inside a header or a body, with a half frame left at the end, loses nothing."""
    stream = b"".join(frame(body) for body in BODIES)
    chunks = [stream[i : i + cut] for i in range(0, len(stream), cut)]
    reassembler = FrameReassembler(100_000)
    got: list[bytes] = []
    for chunk in chunks[:-1]:
        reassembler.feed(chunk)
        got.extend(reassembler.frames())
    assert got == BODIES[: len(got)]
    assert reassembler.buffered > 0
    reassembler.feed(chunks[-1])
    got.extend(reassembler.frames())
    assert got == BODIES


def test_oversized_header_is_refused_before_the_body_arrives() -> None:
    """A header over the limit raises frame_too_large at once: no body byte is awaited or buffered."""
    reassembler = FrameReassembler(1000)
    reassembler.feed((1001).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError) as caught:
        list(reassembler.frames())
    assert caught.value.code is ErrorCode.FRAME_TOO_LARGE
    assert caught.value.fatal


def test_frame_at_the_limit_is_accepted() -> None:
    """A body of exactly max_frame bytes is a valid frame."""
    assert reassemble([frame(b"z" * 1000)], max_frame=1000) == [b"z" * 1000]


def test_zero_length_frame_is_a_bad_frame() -> None:
    """An empty frame cannot hold a map: bad_frame, fatal."""
    reassembler = FrameReassembler(1000)
    reassembler.feed(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError) as caught:
        list(reassembler.frames())
    assert caught.value.code is ErrorCode.BAD_FRAME
    assert caught.value.fatal


@pytest.mark.parametrize(
    "first_bytes",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(bytes.fromhex("16030100f5010000f10303") + b"\x00" * 32, id="tls-client-hello"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="ssh"),
    ],
)
def test_other_protocols_are_recognised_from_their_first_bytes(first_bytes: bytes) -> None:
    """HTTP, TLS and SSH openings read as absurd lengths and are refused without waiting for more bytes."""
    reassembler = FrameReassembler(64 * 1024)
    reassembler.feed(first_bytes)
    with pytest.raises(RemoteProtocolError) as caught:
        list(reassembler.frames())
    assert caught.value.code is ErrorCode.FRAME_TOO_LARGE
