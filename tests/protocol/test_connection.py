"""The per-connection state machine: a client and a server protocol object wired together in memory."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest

from shared import (
    Ack,
    EndOfStream,
    Error,
    ErrorCode,
    Hello,
    Joined,
    Limits,
    LocalProtocolError,
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
from shared.connection import Event

HELLO = Hello(proto="mpchat", version=1, nick="alice")
WELCOME = Welcome(version=1, nick="alice", server="test", ts=1)


def deliver(data: bytes, to: ProtocolConnection) -> list[Event]:
    """Hand `data` to `to` and return every event it yields."""
    to.receive_data(data)
    return list(to.events())


def refusal(events: list[Event]) -> RemoteProtocolError:
    """The one event of `events`, which must be a frame the peer got wrong."""
    (error,) = events
    assert isinstance(error, RemoteProtocolError)
    return error


def logged_in_pair() -> tuple[ProtocolConnection, ProtocolConnection]:
    """A client and a server object past the hello/welcome exchange."""
    client, server = ProtocolConnection(Role.CLIENT), ProtocolConnection(Role.SERVER)
    assert deliver(client.send(HELLO), server) == [HELLO]
    assert deliver(encode(WELCOME), client) == [WELCOME]
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
    assert deliver(encode(ack) + encode(joined), client) == [ack, joined]


def test_server_refuses_anything_before_hello() -> None:
    """A first frame other than hello is a fatal bad_hello, and the connection closes."""
    server = ProtocolConnection(Role.SERVER)
    error = refusal(deliver(encode(Say(room="lobby", text="hi")), server))
    assert (error.code, error.fatal) == (ErrorCode.BAD_HELLO, True)
    assert server.state is State.CLOSED


def test_server_treats_an_invalid_hello_as_fatal() -> None:
    """A hello with a bad nick is fatal (there is no session to keep open)."""
    server = ProtocolConnection(Role.SERVER)
    body = msgpack.packb({"type": "hello", "proto": "mpchat", "version": 1, "nick": "no spaces"})
    assert refusal(deliver(frame(body), server)).fatal
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
    error = refusal(deliver(encode(hello), server))
    assert (error.code, error.fatal) == (code, True)


def test_second_hello_is_refused_but_not_fatal() -> None:
    """A repeated hello gets already_logged_in and the connection stays open."""
    _, server = logged_in_pair()
    error = refusal(deliver(encode(replace(HELLO, ref=9)), server))
    assert (error.code, error.ref, error.fatal) == (ErrorCode.ALREADY_LOGGED_IN, 9, False)
    assert server.state is State.OPEN


def test_non_fatal_error_lets_later_frames_through() -> None:
    """After a refused frame, the next frames in the same chunk are still decoded."""
    _, server = logged_in_pair()
    bad = frame(msgpack.packb({"type": "say", "room": "lobby", "text": ""}))
    good = encode(Say(room="lobby", text="ok"))
    error, message = deliver(bad + good, server)
    assert isinstance(error, RemoteProtocolError)
    assert not error.fatal
    assert message == Say(room="lobby", text="ok")


def test_client_cannot_send_before_hello() -> None:
    """Sending a request before hello is a local API misuse."""
    client = ProtocolConnection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(Say(room="lobby", text="hi"))


def test_a_client_cannot_send_the_servers_messages() -> None:
    """A client cannot send a notification; it may ping."""
    client, _ = logged_in_pair()
    with pytest.raises(LocalProtocolError):
        client.send(Joined(room="lobby", nick="x", ts=1))
    assert client.send(Ping(token=1))  # both sides may ping


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
    error = refusal(deliver(encode(Joined(room="lobby", nick="x", ts=1)), client))
    assert error.code is ErrorCode.BAD_HELLO
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


def test_only_a_client_sends_through_it() -> None:
    """A server encodes its own frames (shared.codec.encode): its side of the object has no `send`."""
    _, server = logged_in_pair()
    with pytest.raises(LocalProtocolError):
        server.send(Ping(token=1))
    with pytest.raises(LocalProtocolError):
        server.send(Error(code="sendq_exceeded", fatal=True))
    assert server.state is State.OPEN  # sending (or failing to) does not change what it decodes


def test_eof_after_complete_frames_is_a_clean_close() -> None:
    """EOF after whole frames: the frames come out, then the EndOfStream event (mid_frame False)."""
    client, server = logged_in_pair()
    server.receive_data(client.send(Ping(token=5)))
    server.receive_data(b"")
    assert list(server.events()) == [Ping(token=5), EndOfStream(mid_frame=False)]
    assert server.state is State.CLOSED
    assert list(server.events()) == [EndOfStream()]  # asked again: still the end


def test_eof_in_the_middle_of_a_frame_is_reported() -> None:
    """Half a frame then EOF: the EndOfStream event says the frame was cut off."""
    client, server = logged_in_pair()
    data = client.send(Say(room="lobby", text="cut off"))
    server.receive_data(data[:7])
    server.receive_data(b"")
    assert list(server.events()) == [EndOfStream(mid_frame=True)]


def test_nothing_follows_a_fatal_error() -> None:
    """After a fatal refusal no event follows, not even the end of the stream that came with it."""
    server = ProtocolConnection(Role.SERVER)
    server.receive_data(encode(Say(room="lobby", text="hi")) + encode(HELLO))
    server.receive_data(b"")
    assert refusal(list(server.events())).fatal
