"""The per-connection state machine: a client and a server protocol object wired together in memory."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest

from shared import (
    Ack,
    ConnectionClosed,
    Error,
    ErrorCode,
    Hello,
    Joined,
    Limits,
    LocalProtocolError,
    Message,
    Ping,
    ProtocolConnection,
    RemoteProtocolError,
    Role,
    Say,
    State,
    Welcome,
    encode,
    frame,
)

HELLO = Hello(proto="mpchat", version=1, nick="alice")
WELCOME = Welcome(version=1, nick="alice", server="test", ts=1)


def deliver(data: bytes, to: ProtocolConnection) -> list[Message]:
    """Hand `data` to `to` and return every message it yields."""
    to.receive_data(data)
    return list(to.events())


def logged_in_pair() -> tuple[ProtocolConnection, ProtocolConnection]:
    """A client and a server object past the hello/welcome exchange."""
    client, server = ProtocolConnection(Role.CLIENT), ProtocolConnection(Role.SERVER)
    assert deliver(client.send(HELLO), server) == [HELLO]
    assert deliver(server.send(WELCOME), client) == [WELCOME]
    return client, server


def test_login_opens_both_sides() -> None:
    """hello then welcome moves both objects from GREETING to OPEN."""
    client, server = logged_in_pair()
    assert client.state is State.OPEN
    assert server.state is State.OPEN


def test_messages_flow_both_ways_after_login() -> None:
    """Requests reach the server and notifications reach the client unchanged."""
    client, server = logged_in_pair()
    say = Say(room="lobby", text="hi", client_msg_id="m1")
    assert deliver(client.send(say), server) == [say]
    ack = Ack(id=1, ts=2, client_msg_id="m1")
    joined = Joined(room="lobby", nick="bob", ts=3)
    assert deliver(server.send(ack) + server.send(joined), client) == [ack, joined]


def test_server_refuses_anything_before_hello() -> None:
    """A first frame other than hello is a fatal bad_hello, and the connection closes."""
    server = ProtocolConnection(Role.SERVER)
    with pytest.raises(RemoteProtocolError) as caught:
        deliver(encode(Say(room="lobby", text="hi")), server)
    assert (caught.value.code, caught.value.fatal) == (ErrorCode.BAD_HELLO, True)
    assert server.state is State.CLOSED


def test_server_treats_an_invalid_hello_as_fatal() -> None:
    """A hello with a bad nick is fatal (there is no session to keep open)."""
    server = ProtocolConnection(Role.SERVER)
    body = msgpack.packb({"type": "hello", "proto": "mpchat", "version": 1, "nick": "no spaces"})
    with pytest.raises(RemoteProtocolError) as caught:
        deliver(frame(body), server)
    assert caught.value.fatal
    assert server.state is State.CLOSED


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        (Hello(proto="irc", version=1, nick="a"), ErrorCode.BAD_HELLO),
        (Hello(proto="mpchat", version=99, nick="a"), ErrorCode.UNSUPPORTED_VERSION),
    ],
)
def test_server_checks_magic_and_version(hello: Hello, code: ErrorCode) -> None:
    """A hello for another protocol or version is refused, fatally, with its code."""
    server = ProtocolConnection(Role.SERVER)
    with pytest.raises(RemoteProtocolError) as caught:
        deliver(encode(hello), server)
    assert (caught.value.code, caught.value.fatal) == (code, True)


def test_second_hello_is_refused_but_not_fatal() -> None:
    """A repeated hello gets already_logged_in and the connection stays open."""
    _, server = logged_in_pair()
    with pytest.raises(RemoteProtocolError) as caught:
        deliver(encode(replace(HELLO, ref=9)), server)
    assert (caught.value.code, caught.value.ref) == (ErrorCode.ALREADY_LOGGED_IN, 9)
    assert server.state is State.OPEN


def test_non_fatal_error_lets_later_frames_through() -> None:
    """After a refused frame, the next frames in the same chunk are still decoded."""
    _, server = logged_in_pair()
    bad = frame(msgpack.packb({"type": "say", "room": "lobby", "text": ""}))
    good = encode(Say(room="lobby", text="ok"))
    server.receive_data(bad + good)
    with pytest.raises(RemoteProtocolError):
        list(server.events())
    assert list(server.events()) == [Say(room="lobby", text="ok")]


def test_client_cannot_send_before_hello() -> None:
    """Sending a request before hello is a local API misuse."""
    client = ProtocolConnection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(Say(room="lobby", text="hi"))


def test_a_side_cannot_send_the_other_sides_messages() -> None:
    """A client cannot send a notification, a server cannot send a request."""
    client, server = logged_in_pair()
    with pytest.raises(LocalProtocolError):
        client.send(Joined(room="lobby", nick="x", ts=1))
    with pytest.raises(LocalProtocolError):
        server.send(Say(room="lobby", text="hi"))
    assert server.send(Ping(token=1))  # both may ping


def test_client_checks_outgoing_limits() -> None:
    """The client refuses, locally and with the server's code, a text over the announced limit."""
    client = ProtocolConnection(Role.CLIENT)
    client.send(HELLO)
    deliver(encode(Welcome(version=1, nick="alice", server="s", ts=1, limits=Limits(max_text=5))), client)
    with pytest.raises(LocalProtocolError) as caught:
        client.send(Say(room="lobby", text="123456"))
    assert caught.value.code is ErrorCode.TOO_LONG


def test_client_adopts_server_limits_with_a_cap() -> None:
    """The client takes the server's limits, but never a frame limit above its own cap."""
    client = ProtocolConnection(Role.CLIENT)
    client.send(HELLO)
    deliver(
        encode(Welcome(version=1, nick="a", server="s", ts=1, limits=Limits(max_frame=2**32 - 1))), client
    )
    assert client.limits.max_frame == 16 * 1024 * 1024


def test_client_expects_welcome_first() -> None:
    """A server that starts with anything but welcome or error broke the protocol."""
    client = ProtocolConnection(Role.CLIENT)
    client.send(HELLO)
    with pytest.raises(RemoteProtocolError) as caught:
        deliver(encode(Joined(room="lobby", nick="x", ts=1)), client)
    assert caught.value.code is ErrorCode.BAD_HELLO
    assert client.state is State.CLOSED


def test_client_skips_unknown_server_messages() -> None:
    """A newer server's unknown notification is skipped; the next message still arrives."""
    client, _ = logged_in_pair()
    unknown = frame(msgpack.packb({"type": "file_offer", "name": "x"}))
    assert deliver(unknown + encode(Ping(token=3)), client) == [Ping(token=3)]


def test_fatal_error_received_closes_the_client() -> None:
    """After a fatal error frame the client is closed and decodes nothing more."""
    client, _ = logged_in_pair()
    fatal = Error(code="server_shutdown", message="bye", fatal=True)
    assert deliver(encode(fatal) + encode(Ping(token=1)), client) == [fatal]
    assert client.state is State.CLOSED


def test_sending_a_fatal_error_closes_the_server_side() -> None:
    """Once the server sends a fatal error, it may send nothing more."""
    _, server = logged_in_pair()
    server.send(Error(code="sendq_exceeded", fatal=True))
    with pytest.raises(LocalProtocolError):
        server.send(Ping())


def test_eof_after_complete_frames_is_a_clean_close() -> None:
    """EOF after whole frames: the frames come out, then ConnectionClosed(mid_frame=False)."""
    client, server = logged_in_pair()
    server.receive_data(client.send(Ping(token=5)))
    server.receive_data(b"")
    events = server.events()
    assert next(events) == Ping(token=5)
    with pytest.raises(ConnectionClosed) as caught:
        next(events)
    assert not caught.value.mid_frame


def test_eof_in_the_middle_of_a_frame_is_reported() -> None:
    """Half a frame then EOF: ConnectionClosed says the frame was cut off."""
    client, server = logged_in_pair()
    data = client.send(Say(room="lobby", text="cut off"))
    server.receive_data(data[:7])
    server.receive_data(b"")
    with pytest.raises(ConnectionClosed) as caught:
        list(server.events())
    assert caught.value.mid_frame
