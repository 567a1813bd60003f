"""Hostile and malformed datagrams, each paired with why it must be refused."""

from __future__ import annotations

from typing import Any

import msgpack

from shared.discovery import MAX_DATAGRAM, MAX_ROOMS, encode_beacon

from .helpers import INFO


def packed(**fields: Any) -> bytes:
    """A beacon-like map with `fields` changed (a field set to None is removed)."""
    data: dict[str, Any] = {
        "type": "beacon",
        "proto": "mpchat-discovery",
        "version": 1,
        "id": "evil",
        "name": "Evil",
        "port": 7878,
        "users": 1,
        "rooms": [["lobby", 1]],
    }
    data.update(fields)
    return msgpack.packb({key: value for key, value in data.items() if value is not None}, use_bin_type=True)


def _deep(depth: int) -> bytes:
    """A beacon whose room list is nested `depth` arrays deep (each level one byte)."""
    head = packed(rooms=[])[:-1]  # drop the empty array, keep the "rooms" key as the last entry
    return head + b"\x91" * depth + b"\xc0"


VALID = encode_beacon(INFO)

HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "garbage": b"\xde\xad\xbe\xef" * 16,
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "truncated": VALID[:-3],
    "trailing bytes": VALID + b"\x00",
    "oversized": packed(name="x" * 40, rooms=[["r" + str(n), n] for n in range(60)], pad=b"\0" * 200),
    "not a map": msgpack.packb([1, 2, 3]),
    "integer key": msgpack.packb({1: "beacon"}, strict_types=False),
    "no type": packed(type=None),
    "unknown type": packed(type="hello"),
    "wrong proto": packed(proto="mpchat"),
    "no proto": packed(proto=None),
    "version 2": packed(version=2),
    "control chars in name": packed(name="Evil\x1b[2J\x1b]0;pwned\x07"),
    "bidi override in name": packed(name="Lab \u202eredivres"),
    "zero-width in name": packed(name="Lab\u200bserver"),
    "newline in name": packed(name="Lab\nserver"),
    "empty name": packed(name=""),
    "long name": packed(name="n" * 65),
    "bidi in room": packed(rooms=[["lob\u202eby", 1]]),
    "escape in room": packed(rooms=[["\x1b[31mred", 1]]),
    "space in room": packed(rooms=[["two words", 1]]),
    "room as map": packed(rooms=[{"name": "lobby", "members": 1}]),
    "room triple": packed(rooms=[["lobby", 1, 2]]),
    "negative members": packed(rooms=[["lobby", -1]]),
    "too many rooms": packed(rooms=[[f"r{n}", 0] for n in range(MAX_ROOMS + 1)]),
    "port zero": packed(port=0),
    "port too big": packed(port=70000),
    "port as bool": packed(port=True),
    "port as string": packed(port="7878"),
    "users as float": packed(users=1.5),
    "tls as int": packed(tls=1),
    "bad fingerprint": packed(fingerprint="zz" * 32),
    "id with control": packed(id="evil\x00"),
    "id too long": packed(id="i" * 65),
    "deep nesting": _deep(400),
    "ext type": packed(rooms=msgpack.ExtType(5, b"xx")),
    "timestamp": packed(users=msgpack.Timestamp(1, 0)),
    "binary name": packed(name=b"Evil"),
    "invalid utf-8": packed(name="x").replace(b"\xa1x", b"\xa1\xff"),
    "reply without nonce": packed(type="reply", clock=1),
    "query without nonce": packed(type="query"),
}

assert len(HOSTILE["oversized"]) > MAX_DATAGRAM
