"""Frames on the wire, written from docs/protocol.md sections 2 and 3 alone.

A frame is a 4-byte big-endian length and a msgpack map of that many bytes. This module is deliberately
independent of the reference implementation (`shared`): the suite tests the document, so it must not share
code with the server it checks.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

#: The frame limit the suite accepts from a server (the protocol's default; a server may announce more).
MAX_FRAME = 16 * 1024 * 1024

_HEADER = struct.Struct(">I")


class WireError(Exception):
    """The peer sent something that is not a frame (a bad length or a body that is not a msgpack map)."""


def encode(frame: dict[str, Any]) -> bytes:
    """One frame: the length header and the msgpack body."""
    body: bytes = msgpack.packb(frame, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def encode_body(body: bytes) -> bytes:
    """A frame around a body given as raw bytes (for malformed-body cases)."""
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Reassembles frames from received chunks (section 2): feed bytes, take whole frames out."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add `data`; return every frame now complete, in order."""
        self._buffer += data
        frames: list[dict[str, Any]] = []
        while len(self._buffer) >= 4:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length == 0 or length > self._max_frame:
                raise WireError(f"frame length {length} is out of range")
            if len(self._buffer) < 4 + length:
                break
            body = bytes(self._buffer[4 : 4 + length])
            del self._buffer[: 4 + length]
            frames.append(decode_body(body))
        return frames

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)


def decode_body(body: bytes) -> dict[str, Any]:
    """Decode one frame body: a msgpack map with string keys and a string `type`."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except Exception as error:  # msgpack raises several unrelated classes for bad input
        raise WireError(f"body is not msgpack: {error}") from error
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise WireError(f"body is not a map with a string type: {value!r:.80}")
    return value


def _no_ext(code: int, data: bytes) -> Any:
    raise WireError(f"extension type {code} in a frame")
