"""Property tests: whatever bytes a peer sends, the decoder yields valid messages or one typed error."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import (
    SENT_BY_CLIENT,
    SENT_BY_SERVER,
    EndOfStream,
    Hello,
    Message,
    ProtocolConnection,
    RemoteProtocolError,
    Role,
    decode_body,
    encode,
    frame,
)
from shared.codec import FrameReassembler
from shared.limits import DEFAULT_LIMITS

from .examples import CLIENT_EXAMPLES, SERVER_EXAMPLES

FIELD_NAMES = sorted(
    {spec.name for cls in {**SENT_BY_CLIENT, **SENT_BY_SERVER}.values() for spec in cls.FIELDS}
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # the range msgpack can hold
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
)
msgpack_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(FIELD_NAMES)), children, max_size=5),
    ),
    max_leaves=20,
)
# Maps that look like real frames: a real type name and real field names, with arbitrary values.
frame_like_maps = st.builds(
    lambda type_name, fields: {"type": type_name, **fields},
    st.sampled_from(sorted({*SENT_BY_CLIENT, *SENT_BY_SERVER, "nope"})),
    st.dictionaries(st.sampled_from(FIELD_NAMES), msgpack_values, max_size=8),
)


def decode_or_protocol_error(body: bytes, accepted: dict[str, type[Message]]) -> None:
    """Decode `body`; only a message of an accepted type or a RemoteProtocolError may come out."""
    try:
        message = decode_body(body, accepted, DEFAULT_LIMITS)
    except RemoteProtocolError:
        return
    assert type(message) in accepted.values()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bodies_give_a_message_or_a_protocol_error(body: bytes) -> None:
    """Random bytes as a frame body never raise anything but RemoteProtocolError."""
    decode_or_protocol_error(body, SENT_BY_CLIENT)
    decode_or_protocol_error(body, SENT_BY_SERVER)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(msgpack_values, frame_like_maps))
def test_random_msgpack_values_give_a_message_or_a_protocol_error(value: Any) -> None:
    """Any msgpack value, including frame-shaped maps with wrong field values, decodes or is refused."""
    body = msgpack.packb(value, use_bin_type=True)
    decode_or_protocol_error(body, SENT_BY_CLIENT)
    decode_or_protocol_error(body, SENT_BY_SERVER)


@settings(max_examples=200)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=50), max_size=20))
def test_random_streams_through_a_connection(stream: bytes, cuts: list[int]) -> None:
    """A server connection fed random bytes in random chunks only yields messages or protocol errors."""
    connection = ProtocolConnection(Role.SERVER)
    data = encode(Hello(proto="mpchat", version=1, nick="a")) + stream
    position = 0
    for cut in [*cuts, len(data)]:
        chunk = data[position : position + cut]
        position += cut
        if not chunk:
            break  # b"" would mean end of stream; that is sent once, below
        connection.receive_data(chunk)
        for event in connection.events():
            assert isinstance(event, Message | RemoteProtocolError)
            if isinstance(event, RemoteProtocolError) and event.fatal:
                return
    connection.receive_data(b"")
    *_, last = connection.events()
    assert isinstance(last, EndOfStream | RemoteProtocolError)


@given(st.sampled_from(CLIENT_EXAMPLES + SERVER_EXAMPLES), st.integers(min_value=1, max_value=20))
def test_valid_frames_survive_any_chunking(message: Message, chunk: int) -> None:
    """A valid frame split into chunks of any size decodes to the same message."""
    connection = ProtocolConnection(Role.SERVER if message.TYPE in SENT_BY_CLIENT else Role.CLIENT)
    data = frame(encode(message)[4:])
    reassembler = FrameReassembler(DEFAULT_LIMITS.max_frame)
    bodies = []
    for start in range(0, len(data), chunk):
        reassembler.feed(data[start : start + chunk])
        bodies.extend(reassembler.frames())
    accepted = SENT_BY_CLIENT if message in CLIENT_EXAMPLES else SENT_BY_SERVER
    assert [decode_body(body, accepted, connection.limits) for body in bodies] == [message]
