"""The codec: every message type round-trips, and every malformed frame is one typed error."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from shared import (
    DEFAULT_LIMITS,
    SENT_BY_CLIENT,
    SENT_BY_SERVER,
    ErrorCode,
    Limits,
    LocalProtocolError,
    Message,
    RemoteProtocolError,
    Say,
    check_outgoing,
    decode_body,
    encode,
)

from .examples import CLIENT_EXAMPLES, SERVER_EXAMPLES


def decode_map(
    data: Any, accepted: dict[str, type[Message]] = SENT_BY_CLIENT, limits: Limits = DEFAULT_LIMITS
) -> Message:
    """Pack `data` as msgpack and decode it as a frame body."""
    return decode_body(msgpack.packb(data), accepted, limits)


def refused(
    data: Any, accepted: dict[str, type[Message]] = SENT_BY_CLIENT, limits: Limits = DEFAULT_LIMITS
) -> RemoteProtocolError:
    """Decode `data`, expecting a RemoteProtocolError, and return it."""
    with pytest.raises(RemoteProtocolError) as caught:
        decode_map(data, accepted, limits)
    return caught.value


def test_examples_cover_every_message_type() -> None:
    """The example lists hold one message of every type each side can send."""
    assert {m.TYPE for m in CLIENT_EXAMPLES} == set(SENT_BY_CLIENT)
    assert {m.TYPE for m in SERVER_EXAMPLES} == set(SENT_BY_SERVER)


@pytest.mark.parametrize("message", CLIENT_EXAMPLES, ids=lambda m: m.TYPE)
def test_client_messages_round_trip(message: Message) -> None:
    """encode then decode gives back an equal message."""
    assert decode_body(encode(message)[4:], SENT_BY_CLIENT, DEFAULT_LIMITS) == message


@pytest.mark.parametrize("message", SERVER_EXAMPLES, ids=lambda m: m.TYPE)
def test_server_messages_round_trip(message: Message) -> None:
    """encode then decode gives back an equal message, nested records included."""
    assert decode_body(encode(message)[4:], SENT_BY_SERVER, DEFAULT_LIMITS) == message


def test_unknown_fields_are_ignored() -> None:
    """A newer peer's extra fields do not break an older decoder (forward compatibility)."""
    message = decode_map({"type": "say", "room": "lobby", "text": "hi", "colour": "red", "x": [1, {"y": 2}]})
    assert message == Say(room="lobby", text="hi")


def test_unknown_type_is_not_fatal_and_keeps_the_ref() -> None:
    """An unknown type is refused with unknown_type, the connection may go on, and the ref comes back."""
    error = refused({"type": "teleport", "ref": 12})
    assert (error.code, error.fatal, error.ref) == (ErrorCode.UNKNOWN_TYPE, False, 12)


def test_a_type_sent_by_the_wrong_side_is_unknown() -> None:
    """A server notification sent by a client is not a request the server knows."""
    assert (
        refused({"type": "said", "id": 1, "room": "r", "nick": "n", "text": "t", "ts": 1}).code
        is ErrorCode.UNKNOWN_TYPE
    )


def test_missing_required_field() -> None:
    """A required field that is absent is invalid_field, naming the field."""
    error = refused({"type": "say", "room": "lobby"})
    assert error.code is ErrorCode.INVALID_FIELD
    assert "text" in error.message
    assert not error.fatal


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"type": "join", "room": "lobby", "after": True}, ErrorCode.INVALID_FIELD),  # bool is not an int
        ({"type": "join", "room": "lobby", "after": -1}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": "lobby", "after": 2**63}, ErrorCode.INVALID_FIELD),
        (
            {"type": "join", "room": "lobby", "after": 2**53},
            ErrorCode.INVALID_FIELD,
        ),  # past JavaScript's safe range
        ({"type": "join", "room": "lobby", "after": 1.5}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": "lobby", "after": "7"}, ErrorCode.INVALID_FIELD),
        ({"type": "say", "room": "lobby", "text": b"bytes"}, ErrorCode.INVALID_FIELD),
        ({"type": "say", "room": "lobby", "text": "hi", "action": 1}, ErrorCode.INVALID_FIELD),
        ({"type": "say", "room": ["lobby"], "text": "hi"}, ErrorCode.INVALID_FIELD),
        ({"type": "say", "room": "lobby", "text": ""}, ErrorCode.INVALID_TEXT),
        ({"type": "say", "room": "lobby", "text": "a\x1b[2Jb"}, ErrorCode.INVALID_TEXT),
        ({"type": "say", "room": "lobby", "text": "a\x85b"}, ErrorCode.INVALID_TEXT),
        ({"type": "say", "room": "lobby", "text": "x" * 4097}, ErrorCode.TOO_LONG),
        ({"type": "say", "room": "lobby", "text": "é" * 2049}, ErrorCode.TOO_LONG),
        ({"type": "say", "room": "lob by", "text": "hi"}, ErrorCode.INVALID_ROOM),
        ({"type": "say", "room": "lobby", "text": "hi", "client_msg_id": "é"}, ErrorCode.INVALID_FIELD),
        ({"type": "tell", "to": "bob\u202e", "text": "hi"}, ErrorCode.INVALID_NICK),
        ({"type": "nick", "nick": "a" * 33}, ErrorCode.INVALID_NICK),
        ({"type": "nick", "nick": "zero\u200bwidth"}, ErrorCode.INVALID_NICK),
        ({"type": "topic", "room": "lobby", "topic": "two\nlines"}, ErrorCode.INVALID_TEXT),
        (
            {"type": "hello", "proto": "mpchat", "version": 1, "nick": "a", "rooms": "lobby"},
            ErrorCode.INVALID_FIELD,
        ),
        (
            {"type": "hello", "proto": "mpchat", "version": 1, "nick": "a", "rooms": ["ok", "not ok"]},
            ErrorCode.INVALID_ROOM,
        ),
    ],
)
def test_wrong_field_values_get_the_fields_code(data: dict[str, Any], code: ErrorCode) -> None:
    """Each kind of bad field value is refused with its stable, non-fatal code."""
    error = refused(data)
    assert error.code is code
    assert not error.fatal


def test_text_at_the_limit_is_accepted() -> None:
    """Text of exactly max_text bytes (here 2-byte characters) is valid; newlines and tabs are allowed."""
    assert decode_map({"type": "say", "room": "lobby", "text": "é" * 2048}) == Say(
        room="lobby", text="é" * 2048
    )
    assert decode_map({"type": "say", "room": "r", "text": "a\n\tb"}) == Say(room="r", text="a\n\tb")


def test_configured_limits_apply() -> None:
    """A receiver configured with smaller limits enforces them."""
    small = Limits(max_text=10, max_room=3)
    assert refused({"type": "say", "room": "abc", "text": "x" * 11}, limits=small).code is ErrorCode.TOO_LONG
    assert refused({"type": "say", "room": "abcd", "text": "x"}, limits=small).code is ErrorCode.INVALID_ROOM


def test_long_lists_are_refused() -> None:
    """A list over max_list items is refused before its items are validated."""
    rooms = [f"r{i}" for i in range(11)]
    error = refused(
        {"type": "hello", "proto": "mpchat", "version": 1, "nick": "a", "rooms": rooms},
        limits=Limits(max_list=10),
    )
    assert error.code is ErrorCode.TOO_LONG


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(b"\x92\x01\x02", id="array-not-map"),
        pytest.param(b"\xa3abc", id="string-not-map"),
        pytest.param(b"\x81\xa4type", id="truncated"),
        pytest.param(msgpack.packb({"type": "ping"}) + b"\x00", id="trailing-bytes"),
        pytest.param(msgpack.packb({1: "x", "type": "ping"}), id="int-key"),
        pytest.param(msgpack.packb({b"type": "ping"}, use_bin_type=True), id="bytes-key"),
        pytest.param(msgpack.packb({"type": 7}), id="type-not-string"),
        pytest.param(msgpack.packb({"room": "lobby"}), id="no-type"),
        pytest.param(b"\x81\xa4type\xa3\xff\xfe\xfd", id="invalid-utf8"),
        pytest.param(msgpack.packb({"type": "ping", "x": msgpack.ExtType(5, b"data")}), id="ext-type"),
        pytest.param(msgpack.packb({"type": "ping", "x": [msgpack.Timestamp(1, 0)]}), id="timestamp-ext"),
        pytest.param(b"\x91" * 2000 + b"\xc0", id="deep-nesting"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="huge-map-header"),
    ],
)
def test_malformed_bodies_are_fatal_bad_frames(body: bytes) -> None:
    """Anything that is not one msgpack map with string keys and a string type is bad_frame, fatal."""
    with pytest.raises(RemoteProtocolError) as caught:
        decode_body(body, SENT_BY_CLIENT, DEFAULT_LIMITS)
    assert caught.value.code is ErrorCode.BAD_FRAME
    assert caught.value.fatal


def test_check_outgoing_reports_what_the_peer_would_refuse() -> None:
    """A locally built invalid message is a LocalProtocolError with the peer's code, before it is sent."""
    check_outgoing(Say(room="lobby", text="fine"), DEFAULT_LIMITS)
    with pytest.raises(LocalProtocolError) as caught:
        check_outgoing(Say(room="lobby", text="x" * 5000), DEFAULT_LIMITS)
    assert caught.value.code is ErrorCode.TOO_LONG


def test_a_nested_record_missing_a_field_is_a_protocol_error() -> None:
    """A room-list entry without its name is invalid_field (records have no wire type to name them by)."""
    error = refused({"type": "room_list", "rooms": [{}]}, accepted=SENT_BY_SERVER)
    assert error.code is ErrorCode.INVALID_FIELD
    assert "RoomSummary" in error.message
