"""LAN discovery datagrams, sans-I/O: the beacon, the query and the reply, and the loopback-only guard.

A chat server may announce itself on the LAN with a UDP *beacon*, and a client may ask "who is there?" with
a *query*, which every server answers with a *reply* sent straight back. This module turns those datagrams
into bytes and back; `chat_server.beacon.beacon` and `chat_client.net.discovery` own the sockets.
docs/discovery.md is the normative description, with hex examples.

Every datagram is one msgpack map (no length header: UDP keeps message boundaries) of at most
`MAX_DATAGRAM` bytes, so it is never fragmented. It is decoded exactly like a TCP frame body
(`shared.codec.decode_body`: strict msgpack, string keys, no extension types) and then checked field by field
with the `shared.schema` rules, so a hostile datagram raises `RemoteProtocolError` and nothing else.

Seams:

* `BeaconInfo` is what the server tells the beacon (a snapshot; the beacon never reads server internals).
* `encode_beacon(info)`, `encode_query(nonce)`, `encode_reply(info, nonce, clock_ms)` build datagrams;
  `decode_datagram(data)` reads one (an `Announcement`, `Query` or `Reply`).
* `check_destination(address)` enforces `MPCHAT_DISCOVERY_LOOPBACK_ONLY`: every sender calls it before
  every `sendto`.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgpack

from . import schema as check
from .addresses import parse_servers
from .codec import decode_body
from .errors import ErrorCode, RemoteProtocolError
from .limits import Limits
from .schema import Message, record, to_wire, wire
from .text import fold

__all__ = [
    "DEFAULT_DISCOVERY_PORT",
    "DISCOVERY_PROTO",
    "DISCOVERY_VERSION",
    "LOOPBACK_ONLY_ENV",
    "MAX_DATAGRAM",
    "MAX_ROOMS",
    "MAX_SERVER_ADDRESS",
    "MAX_SERVER_NAME",
    "QUERY_SIZE",
    "Announcement",
    "BeaconInfo",
    "DestinationRefused",
    "Query",
    "Reply",
    "check_destination",
    "decode_datagram",
    "encode_beacon",
    "encode_query",
    "encode_reply",
    "loopback_only",
    "new_nonce",
    "new_server_id",
    "server_address_ok",
    "split_zone",
]

#: The value of every datagram's `proto`: tells our datagrams from anything else on the port.
DISCOVERY_PROTO = "mpchat-discovery"
#: The datagram format version; a receiver ignores datagrams of any other version.
DISCOVERY_VERSION = 1
#: The UDP port beacons and queries go to (the chat server's default TCP port is 7878).
DEFAULT_DISCOVERY_PORT = 7879
#: Largest datagram sent or accepted: well under any LAN MTU, so a datagram is never fragmented.
MAX_DATAGRAM = 512
#: Every query is padded to exactly this size, so no reply (at most `MAX_DATAGRAM`) is larger than its query.
QUERY_SIZE = MAX_DATAGRAM
#: Most rooms one beacon may list (a receiver refuses longer lists).
MAX_ROOMS = 64
#: Longest server display name, in bytes of UTF-8.
MAX_SERVER_NAME = 64
#: Longest address of a cluster's other server (``HOST:PORT``) in a beacon, in characters (ASCII).
MAX_SERVER_ADDRESS = 64
#: Setting this environment variable to "1" makes every discovery sender refuse non-loopback destinations.
LOOPBACK_ONLY_ENV = "MPCHAT_DISCOVERY_LOOPBACK_ONLY"

#: The limits datagrams are decoded with: the TCP defaults, with the frame and list sizes of a datagram.
DISCOVERY_LIMITS = Limits(max_frame=MAX_DATAGRAM, max_list=MAX_ROOMS)

_PACK: dict[str, Any] = {"use_bin_type": True}
#: The magic and version every datagram starts with (required: a datagram without them is not ours).
_HEADER: dict[str, Any] = {"proto": DISCOVERY_PROTO, "version": DISCOVERY_VERSION}
_SHA256_HEX = frozenset("0123456789abcdef")


# -- The loopback-only guard -------------------------------------------------------------------------------


class DestinationRefused(Exception):
    """A discovery datagram was about to leave for a non-loopback address while the guard is on."""


def loopback_only(environ: Mapping[str, str] = os.environ) -> bool:
    """True when `MPCHAT_DISCOVERY_LOOPBACK_ONLY=1` is set (the test suite sets it)."""
    return environ.get(LOOPBACK_ONLY_ENV, "") == "1"


def check_destination(address: str, environ: Mapping[str, str] = os.environ) -> None:
    """Raise `DestinationRefused` if the guard is on and `address` (an IP literal) is not loopback.

    Anything that is not an IP literal is refused too while the guard is on: a host name could resolve
    anywhere.
    """
    if not loopback_only(environ):
        return
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise DestinationRefused(
            f"refusing to send a discovery datagram to {address!r}: "
            f"{LOOPBACK_ONLY_ENV}=1 allows loopback only"
        )


def split_zone(address: str) -> tuple[str, str | None]:
    """An IP literal and its IPv6 zone (the interface): ``fe80::1%eth0`` -> (``fe80::1``, ``eth0``)."""
    host, percent, zone = address.partition("%")
    return host, (zone if percent and zone else None)


# -- Field checks ------------------------------------------------------------------------------------------


_one_line = check.short_text(lambda limits: MAX_SERVER_NAME, "MAX_SERVER_NAME")


def _server_name(value: Any, limits: Limits) -> str:
    """A server display name: one line of text, no control, bidi, zero-width or other format characters."""
    name: str = _one_line(value, limits)
    if not name:
        raise check.invalid(ErrorCode.INVALID_TEXT, "server name is empty")
    for char in name:
        if unicodedata.category(char) in ("Cf", "Cc", "Zl", "Zp", "Co", "Cs", "Cn"):
            raise check.invalid(ErrorCode.INVALID_TEXT, f"server name holds U+{ord(char):04X}")
    return name


def _tcp_port(value: Any, limits: Limits) -> int:
    port = check.uint(value, limits)
    if not 1 <= port <= 65535:
        raise check.invalid(ErrorCode.INVALID_FIELD, f"port {port} is not between 1 and 65535")
    return port


def _fingerprint(value: Any, limits: Limits) -> str:
    """A certificate fingerprint: the SHA-256 of the certificate's public key, as 64 lowercase hex digits."""
    digest = check.token(value, limits)
    if len(digest) != 64 or not set(digest) <= _SHA256_HEX:
        raise check.invalid(ErrorCode.INVALID_FIELD, "a fingerprint is 64 lowercase hex digits")
    return digest


def _server_address(value: Any, limits: Limits) -> str:
    """A cluster's other server as ``HOST:PORT`` (``[ADDRESS]:PORT`` for IPv6): printable ASCII without
    spaces or commas, at most `MAX_SERVER_ADDRESS` characters, with a port (as `--host` reads it)."""
    address = _string(value)
    if not 0 < len(address) <= MAX_SERVER_ADDRESS or not (address.isascii() and address.isprintable()):
        raise check.invalid(ErrorCode.INVALID_FIELD, f"a server address is 1 to {MAX_SERVER_ADDRESS} ASCII")
    if " " in address or "," in address:
        raise check.invalid(ErrorCode.INVALID_FIELD, "a server address holds no space or comma")
    try:
        (host, port), *rest = parse_servers(address, 0)
    except ValueError as error:
        raise check.invalid(ErrorCode.INVALID_FIELD, f"a server address is HOST:PORT: {error}") from None
    if rest or port == 0 or not host:
        raise check.invalid(ErrorCode.INVALID_FIELD, "a server address is HOST:PORT")
    return address


def server_address_ok(address: str) -> bool:
    """True if a beacon can carry `address` as one of a cluster's servers (``HOST:PORT``, see above)."""
    try:
        _server_address(address, DISCOVERY_LIMITS)
    except RemoteProtocolError:
        return False
    return True


def _string(value: Any) -> str:
    if type(value) is not str:
        raise check.invalid(ErrorCode.INVALID_FIELD, "expected a string")
    return value


def _room_entry(value: Any, limits: Limits) -> tuple[str, int]:
    """One listed room: the pair ``[name, members]`` (an array, not a map: a beacon has 512 bytes)."""
    if type(value) is not list or len(value) != 2:
        raise check.invalid(ErrorCode.INVALID_FIELD, "a room is the pair [name, members]")
    return (check.room(value[0], limits), check.uint(value[1], limits))


def _padding(value: Any, limits: Limits) -> bytes:
    if type(value) is not bytes:
        raise check.invalid(ErrorCode.INVALID_FIELD, "padding must be binary")
    return value


def _proto(value: Any, limits: Limits) -> str:
    if value != DISCOVERY_PROTO:
        raise check.invalid(ErrorCode.BAD_FRAME, "not an mpchat discovery datagram")
    return DISCOVERY_PROTO


def _version(value: Any, limits: Limits) -> int:
    if check.uint(value, limits) != DISCOVERY_VERSION:
        raise check.invalid(ErrorCode.UNSUPPORTED_VERSION, f"discovery version {value} is not supported")
    return DISCOVERY_VERSION


# -- The datagrams -----------------------------------------------------------------------------------------


@record
class Announcement(Message):
    """A server's periodic announcement: who it is, where to connect, and its public rooms."""

    TYPE = "beacon"
    proto: str = wire(_proto)
    version: int = wire(_version)
    id: str = wire(check.token)
    name: str = wire(_server_name)
    port: int = wire(_tcp_port)
    tls: bool = wire(check.boolean, default=False)
    fingerprint: str | None = wire(_fingerprint, default=None)
    users: int = wire(check.uint, default=0)
    rooms: tuple[tuple[str, int], ...] = wire(check.list_of(_room_entry), default=())
    truncated: bool = wire(check.boolean, default=False)
    #: The other servers of its cluster (docs/cluster.md), ``HOST:PORT`` each; absent for a single server.
    servers: tuple[str, ...] | None = wire(check.list_of(_server_address), default=None)


@record
class Reply(Message):
    """A server's answer to one query: a beacon's fields, the query's `nonce` and the server's clock."""

    TYPE = "reply"
    proto: str = wire(_proto)
    version: int = wire(_version)
    id: str = wire(check.token)
    name: str = wire(_server_name)
    port: int = wire(_tcp_port)
    tls: bool = wire(check.boolean, default=False)
    fingerprint: str | None = wire(_fingerprint, default=None)
    users: int = wire(check.uint, default=0)
    rooms: tuple[tuple[str, int], ...] = wire(check.list_of(_room_entry), default=())
    truncated: bool = wire(check.boolean, default=False)
    #: The other servers of its cluster (docs/cluster.md), ``HOST:PORT`` each; absent for a single server.
    servers: tuple[str, ...] | None = wire(check.list_of(_server_address), default=None)
    nonce: int = wire(check.uint)
    #: The server's wall clock when it answered, in milliseconds since the Unix epoch.
    clock: int = wire(check.uint)


@record
class Query(Message):
    """A client's "which servers are there?", padded to `QUERY_SIZE` bytes."""

    TYPE = "query"
    proto: str = wire(_proto)
    version: int = wire(_version)
    nonce: int = wire(check.uint)
    pad: bytes = wire(_padding, default=b"")


Datagram = Announcement | Query | Reply
_DATAGRAM_TYPES: dict[str, type[Message]] = {cls.TYPE: cls for cls in (Announcement, Query, Reply)}


def decode_datagram(data: bytes) -> Datagram:
    """Decode and validate one received datagram; anything malformed raises `RemoteProtocolError`."""
    if len(data) > MAX_DATAGRAM:
        raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, f"datagram larger than {MAX_DATAGRAM} bytes")
    return cast(Datagram, decode_body(data, _DATAGRAM_TYPES, DISCOVERY_LIMITS))


# -- What the server announces, and building datagrams -----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BeaconInfo:
    """A snapshot of what a server announces, taken by the server and handed to the beacon.

    `server_id` is a stable random token (see `new_server_id`) that the server persists, so one server seen
    through two network interfaces is listed once. `rooms` are the *public* rooms as ``(name, members)``.
    Raises ValueError if a field would not pass the receiver's checks.
    """

    server_id: str
    name: str
    port: int
    users: int = 0
    rooms: Sequence[tuple[str, int]] = field(default=())
    tls: bool = False
    fingerprint: str | None = None
    #: In cluster mode, the cluster's other servers, ``HOST:PORT`` each (`welcome.servers`); empty alone.
    servers: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "rooms", tuple((str(name), int(count)) for name, count in self.rooms))
        object.__setattr__(self, "servers", tuple(self.servers))
        try:
            check.token(self.server_id, DISCOVERY_LIMITS)
            _server_name(self.name, DISCOVERY_LIMITS)
            _tcp_port(self.port, DISCOVERY_LIMITS)
            check.uint(self.users, DISCOVERY_LIMITS)
            if self.fingerprint is not None:
                _fingerprint(self.fingerprint, DISCOVERY_LIMITS)
            for room_name, members in self.rooms:
                check.room(room_name, DISCOVERY_LIMITS)
                check.uint(members, DISCOVERY_LIMITS)
            for address in self.servers:
                _server_address(address, DISCOVERY_LIMITS)
        except RemoteProtocolError as error:
            raise ValueError(f"invalid beacon info: {error.message}") from None


def new_server_id() -> str:
    """Return a fresh random server id (32 hex digits) for a server to persist."""
    return secrets.token_hex(16)


def new_nonce() -> int:
    """Return a random query nonce: unguessable, so a reply cannot be forged without seeing the query."""
    return secrets.randbits(53)


def encode_beacon(info: BeaconInfo) -> bytes:
    """Return the beacon datagram for `info`, listing as many rooms as fit (biggest first)."""
    return _fit(
        info, lambda servers, rooms, truncated: Announcement(**_announced(info, servers, rooms, truncated))
    )


def encode_reply(info: BeaconInfo, nonce: int, clock_ms: int) -> bytes:
    """Return the reply to the query `nonce`, carrying `clock_ms` (wall clock, ms since the epoch)."""
    return _fit(
        info,
        lambda servers, rooms, truncated: Reply(
            **_announced(info, servers, rooms, truncated), nonce=nonce, clock=clock_ms
        ),
    )


def encode_query(nonce: int) -> bytes:
    """Return a query datagram padded to exactly `QUERY_SIZE` bytes."""
    # An empty pad is a 2-byte bin8; a pad longer than 255 bytes needs a 3-byte bin16 header.
    size = QUERY_SIZE - len(_pack(Query(**_HEADER, nonce=nonce, pad=b"")))
    if size > 255:
        size -= 1
    data = _pack(Query(**_HEADER, nonce=nonce, pad=bytes(size)))
    assert len(data) == QUERY_SIZE
    return data


def _announced(
    info: BeaconInfo, servers: Sequence[str], rooms: Sequence[tuple[str, int]], truncated: bool
) -> dict[str, Any]:
    return {
        **_HEADER,
        "id": info.server_id,
        "name": info.name,
        "port": info.port,
        "tls": info.tls,
        "fingerprint": info.fingerprint,
        "users": info.users,
        "rooms": tuple(rooms),
        "truncated": truncated,
        "servers": tuple(servers) if servers else None,  # a single server's datagram is as before
    }


def _fit(
    info: BeaconInfo, make: Callable[[Sequence[str], Sequence[tuple[str, int]], bool], Message]
) -> bytes:
    """Encode with as many of the cluster's servers and then of the rooms as fit in `MAX_DATAGRAM`.

    The servers come first (where to go when this one fails is worth more than a room's name), in their
    order, at most `MAX_ROOMS`; then the biggest rooms, at most `MAX_ROOMS`. Rooms left out set `truncated`;
    servers left out do not (a client learns them all from `welcome.servers` once connected)."""
    servers = list(info.servers[:MAX_ROOMS])
    rooms = sorted(info.rooms, key=lambda room: (-room[1], fold(room[0])))
    data = _pack(make(servers, rooms[:MAX_ROOMS], len(rooms) > MAX_ROOMS))
    if len(data) <= MAX_DATAGRAM:
        return data
    listed = _largest(len(servers), lambda count: _pack(make(servers[:count], (), bool(rooms))))
    servers = servers[:listed]
    # The largest prefix of the rooms that fits beside them (with the `truncated` flag set).
    listed = _largest(min(len(rooms), MAX_ROOMS), lambda count: _pack(make(servers, rooms[:count], True)))
    data = _pack(make(servers, rooms[:listed], True))
    if len(data) > MAX_DATAGRAM:
        raise ValueError("the beacon does not fit in one datagram even without rooms")
    return data


def _largest(most: int, encoded: Callable[[int], bytes]) -> int:
    """The largest count from 0 to `most` whose `encoded(count)` fits in `MAX_DATAGRAM` (binary search;
    0 if none does)."""
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if len(encoded(middle)) <= MAX_DATAGRAM:
            low = middle
        else:
            high = middle - 1
    return low


def _pack(datagram: Message) -> bytes:
    return msgpack.packb(to_wire(datagram), **_PACK)  # type: ignore[no-any-return]
