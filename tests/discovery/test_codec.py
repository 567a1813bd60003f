"""The datagram codec (sans-I/O): round trips, size bounds, truncation, padding and strict decoding."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.discovery import (
    MAX_DATAGRAM,
    MAX_ROOMS,
    QUERY_SIZE,
    Announcement,
    BeaconInfo,
    Query,
    Reply,
    decode_datagram,
    encode_beacon,
    encode_query,
    encode_reply,
    new_server_id,
)
from shared.errors import RemoteProtocolError
from shared.schema import MAX_UINT

from .helpers import INFO, info
from .hostile import HOSTILE

FINGERPRINT = "ab" * 32
#: 64 one-character room names: the most rooms a beacon can carry.
TINY_ROOMS = [(char, 1) for char in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"]
ROOM_NAMES = st.from_regex(r"[A-Za-z0-9_.+\-éßж]{1,64}", fullmatch=True)
INFOS = st.builds(
    BeaconInfo,
    server_id=st.from_regex(r"[!-~]{1,64}", fullmatch=True),
    name=st.text(
        st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=16
    ),
    port=st.integers(1, 65535),
    users=st.integers(0, MAX_UINT),
    rooms=st.lists(st.tuples(ROOM_NAMES, st.integers(0, MAX_UINT)), max_size=100),
    tls=st.booleans(),
    fingerprint=st.none() | st.just(FINGERPRINT),
)


def test_beacon_round_trip() -> None:
    """A beacon decodes to the announced fields, rooms biggest first."""
    datagram = decode_datagram(encode_beacon(info(tls=True, fingerprint=FINGERPRINT)))
    assert datagram == Announcement(
        proto="mpchat-discovery",
        version=1,
        id=INFO.server_id,
        name="Lab server",
        port=7878,
        tls=True,
        fingerprint=FINGERPRINT,
        users=3,
        rooms=(("lobby", 2), ("dev", 1)),
        truncated=False,
    )


def test_reply_round_trip() -> None:
    """A reply carries the beacon fields plus the query's nonce and the server's clock."""
    datagram = decode_datagram(encode_reply(INFO, nonce=MAX_UINT, clock_ms=1_763_750_000_000))
    assert isinstance(datagram, Reply)
    assert (datagram.nonce, datagram.clock, datagram.name) == (MAX_UINT, 1_763_750_000_000, "Lab server")


@pytest.mark.parametrize("nonce", [0, 1, 255, 65536, 2**32, MAX_UINT])
def test_query_is_padded_to_exactly_query_size(nonce: int) -> None:
    """Every query is exactly QUERY_SIZE bytes, whatever the size of its nonce."""
    data = encode_query(nonce)
    assert len(data) == QUERY_SIZE
    datagram = decode_datagram(data)
    assert isinstance(datagram, Query)
    assert datagram.nonce == nonce
    assert datagram.pad == bytes(len(datagram.pad))


@settings(max_examples=200, deadline=None)
@given(INFOS, st.integers(0, MAX_UINT))
def test_no_datagram_exceeds_the_limit_and_no_reply_exceeds_a_query(
    announced: BeaconInfo, nonce: int
) -> None:
    """Beacons and replies fit in MAX_DATAGRAM, and no reply is larger than a query (no amplification)."""
    beacon = encode_beacon(announced)
    reply = encode_reply(announced, nonce, MAX_UINT)
    assert len(beacon) <= MAX_DATAGRAM
    assert len(reply) <= len(encode_query(nonce))
    decoded = decode_datagram(beacon)
    assert isinstance(decoded, Announcement)
    assert decoded.truncated == (len(decoded.rooms) < len(announced.rooms))
    assert set(decoded.rooms) <= set(announced.rooms)


def test_truncation_keeps_the_biggest_rooms_and_says_so() -> None:
    """Too many rooms: the busiest are listed, as many as fit, and `truncated` is set."""
    rooms = [(f"room-{n:03d}-" + "x" * 40, n) for n in range(100)]
    datagram = decode_datagram(encode_beacon(info(rooms=rooms)))
    assert isinstance(datagram, Announcement)
    assert datagram.truncated
    assert 0 < len(datagram.rooms) < 100
    assert [members for _, members in datagram.rooms] == list(range(99, 99 - len(datagram.rooms), -1))


def test_more_than_max_rooms_of_short_names_is_truncated_to_max_rooms() -> None:
    """Even tiny room names stop at MAX_ROOMS entries, the most a receiver accepts."""
    datagram = decode_datagram(encode_beacon(info(rooms=[*TINY_ROOMS, ("x1", 1), ("x2", 1)])))
    assert isinstance(datagram, Announcement)
    assert (len(datagram.rooms), datagram.truncated) == (MAX_ROOMS, True)


def test_a_full_room_list_is_not_marked_truncated() -> None:
    """Exactly MAX_ROOMS short rooms fit and are not marked truncated."""
    datagram = decode_datagram(encode_beacon(info(rooms=TINY_ROOMS)))
    assert isinstance(datagram, Announcement)
    assert (len(datagram.rooms), datagram.truncated) == (MAX_ROOMS, False)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_datagram_is_refused(name: str) -> None:
    """Each malformed or hostile datagram raises RemoteProtocolError, and nothing else."""
    with pytest.raises(RemoteProtocolError):
        decode_datagram(HOSTILE[name])


def test_a_datagram_of_exactly_max_size_is_accepted_and_one_byte_more_refused() -> None:
    """The size bound: MAX_DATAGRAM bytes decode, MAX_DATAGRAM + 1 do not."""
    query = encode_query(7)
    assert len(query) == MAX_DATAGRAM
    assert isinstance(decode_datagram(query), Query)
    longer = msgpack.packb(
        {**msgpack.unpackb(query), "pad": bytes(len(msgpack.unpackb(query)["pad"]) + 1)}, use_bin_type=True
    )
    assert len(longer) == MAX_DATAGRAM + 1
    with pytest.raises(RemoteProtocolError):
        decode_datagram(longer)


def test_every_prefix_of_a_beacon_is_refused() -> None:
    """A beacon cut anywhere is refused (UDP does not cut datagrams, but a hostile sender may)."""
    data = encode_beacon(INFO)
    for end in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_datagram(data[:end])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_DATAGRAM + 8))
def test_random_bytes_decode_or_raise_remote_protocol_error(data: bytes) -> None:
    """Random bytes never raise anything but RemoteProtocolError."""
    with contextlib.suppress(RemoteProtocolError):
        decode_datagram(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"server_id": ""},
        {"server_id": "x" * 65},
        {"name": ""},
        {"name": "Lab\x1b[31m"},
        {"name": "Lab \u202eevil"},
        {"port": 0},
        {"users": -1},
        {"rooms": [("two words", 1)]},
        {"fingerprint": "AB" * 32},
    ],
)
def test_beacon_info_refuses_what_a_receiver_would_refuse(changes: dict[str, object]) -> None:
    """BeaconInfo is checked when it is built, so a server never announces what listeners drop."""
    with pytest.raises(ValueError, match="invalid beacon info"):
        info(**changes)


def test_new_server_ids_are_distinct_tokens() -> None:
    """Server ids are random 32-hex-digit tokens."""
    ids = {new_server_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(server_id) == 32 and int(server_id, 16) >= 0 for server_id in ids)


# -- A cluster's servers (docs/discovery.md, `servers`) ----------------------------------------------------

CLUSTER = ("10.0.0.12:7878", "[2001:db8::13]:7000", "chat3.lan:7878")


def test_a_single_servers_beacon_has_no_servers_key() -> None:
    """Without a cluster the datagram carries no `servers` at all: byte for byte as before the field."""
    assert "servers" not in msgpack.unpackb(encode_beacon(INFO))
    assert decode_datagram(encode_beacon(INFO)).servers is None  # type: ignore[union-attr]


def test_a_cluster_servers_beacon_and_reply_list_the_other_servers() -> None:
    """The cluster's other servers travel in order, in the beacon and in the reply."""
    beacon = decode_datagram(encode_beacon(info(servers=CLUSTER)))
    reply = decode_datagram(encode_reply(info(servers=CLUSTER), 7, 1))
    assert isinstance(beacon, Announcement)
    assert isinstance(reply, Reply)
    assert beacon.servers == reply.servers == CLUSTER
    assert beacon.rooms == INFO.rooms


def test_servers_are_kept_before_rooms_when_the_datagram_is_full() -> None:
    """Rooms are left out first (`truncated`), then servers from the end of the list; it always fits."""
    many = tuple(f"server-{n:02d}.example.lan:7878" for n in range(20))
    rooms = [(f"room{n:02d}" + "x" * 40, n) for n in range(10)]
    data = encode_beacon(info(servers=many[:4], rooms=rooms))
    beacon = decode_datagram(data)
    assert isinstance(beacon, Announcement)
    assert len(data) <= MAX_DATAGRAM
    assert beacon.servers == many[:4]
    assert beacon.truncated
    assert 0 < len(beacon.rooms) < len(rooms)
    crowded = decode_datagram(encode_beacon(info(servers=many, rooms=rooms)))
    assert isinstance(crowded, Announcement)
    assert crowded.rooms == ()
    assert crowded.truncated
    assert crowded.servers is not None
    assert 0 < len(crowded.servers) < len(many)
    assert crowded.servers == many[: len(crowded.servers)]


@pytest.mark.parametrize(
    "address",
    ["", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:99999", "a b:1", "a:1,b:2", "é.lan:1", "x" * 60 + ".lan:1", 1],
)
def test_a_bad_server_address_is_refused_both_ways(address: object) -> None:
    """An address without a port, with a space, a comma, non-ASCII or too long: the receiver refuses the
    datagram, and `BeaconInfo` refuses to build one."""
    datagram = msgpack.unpackb(encode_beacon(info(servers=CLUSTER)))
    datagram["servers"] = [address]
    with pytest.raises(RemoteProtocolError):
        decode_datagram(msgpack.packb(datagram))
    with pytest.raises(ValueError, match="invalid beacon info"):
        info(servers=(address,))
