"""Garbage on the port: each bad connection gets an error frame (when possible) and is closed; nobody else
notices, and the server keeps serving."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import msgpack
import pytest

from chat_server.server import ChatServer
from shared import Error, Hello, Join, Ping, Pong, Said, Say, frame

from .client import ChatTestClient

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303" + "ab" * 32 + "000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035c012000a"
    "0100007300000010000e00000b6578616d706c652e636f6d"
)
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n"


@pytest.fixture
def bystanders(server: ChatServer) -> Iterator[tuple[ChatTestClient, ChatTestClient]]:
    """Two logged-in clients who must not notice anything."""
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob")
        yield alice, bob


def assert_undisturbed(alice: ChatTestClient, bob: ChatTestClient) -> None:
    """Alice and bob can still chat."""
    alice.send(Say(room="lobby", text="still here?", ref=99))
    assert bob.recv(Said, text="still here?").nick == "alice"


def fatal_errors(client: ChatTestClient) -> list[tuple[str, bool]]:
    """Read until the server closes; return (code, fatal) of each error frame received."""
    return [(m.code, m.fatal) for m in client.wait_closed() if isinstance(m, Error)]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(b"\xff\xff\xff\xff", "frame_too_large", id="4GiB-header"),
        pytest.param((100_000_000).to_bytes(4, "big"), "frame_too_large", id="100MB-header"),
        pytest.param(HTTP_REQUEST, "frame_too_large", id="http"),
        pytest.param(TLS_CLIENT_HELLO, "frame_too_large", id="tls-client-hello"),
        pytest.param(b"\x00\x00\x00\x00", "bad_frame", id="empty-frame"),
        pytest.param(frame(b"\xc1"), "bad_frame", id="invalid-msgpack"),
        pytest.param(frame(msgpack.packb([1, 2, 3])), "bad_frame", id="not-a-map"),
        pytest.param(
            frame(msgpack.packb({"type": "say", "room": "lobby"}) + b"\x00"), "bad_frame", id="trailing"
        ),
        pytest.param(
            frame(msgpack.packb({"type": "join", "room": "lobby"})), "bad_hello", id="no-hello-first"
        ),
        pytest.param(
            frame(msgpack.packb({"type": "hello", "proto": "irc", "version": 1, "nick": "x"})),
            "bad_hello",
            id="wrong-proto",
        ),
        pytest.param(
            frame(msgpack.packb({"type": "hello", "proto": "mpchat", "version": 9, "nick": "x"})),
            "unsupported_version",
            id="wrong-version",
        ),
        pytest.param(
            frame(msgpack.packb({"type": "hello", "proto": "mpchat", "version": 1, "nick": "a\u202eb"})),
            "invalid_nick",
            id="bidi-nick",
        ),
        pytest.param(
            frame(msgpack.packb({"type": "hello", "proto": "mpchat", "version": 1, "nick": "a\u200bb"})),
            "invalid_nick",
            id="zero-width-nick",
        ),
    ],
)
def test_bad_first_bytes_are_refused(
    server: ChatServer, bystanders: tuple[ChatTestClient, ChatTestClient], data: bytes, code: str
) -> None:
    """Each kind of garbage gets one fatal error frame with its code, then the connection closes."""
    with ChatTestClient(server.address) as intruder:
        intruder.send_raw(data)
        assert fatal_errors(intruder) == [(code, True)]
    assert_undisturbed(*bystanders)


def test_random_garbage(server: ChatServer, bystanders: tuple[ChatTestClient, ChatTestClient]) -> None:
    """Random bytes after a login end that connection only."""
    with ChatTestClient(server.address) as intruder:
        intruder.login("mallory")
        intruder.send_raw(bytes(range(256)) * 4)
        codes = fatal_errors(intruder)
        assert codes[-1][1] is True
    assert_undisturbed(*bystanders)
    off = bystanders[0].recv_until(lambda m: getattr(m, "nick", None) == "mallory" and hasattr(m, "reason"))
    assert off.reason.startswith("protocol error")  # type: ignore[attr-defined]


@pytest.mark.parametrize("cut", [1, 3, 4, 10])
def test_half_frame_then_eof(
    server: ChatServer, bystanders: tuple[ChatTestClient, ChatTestClient], cut: int
) -> None:
    """Part of a frame and then EOF: the server closes quietly and the nick is free again."""
    intruder = ChatTestClient(server.address)
    intruder.login("halfway")
    data = frame(msgpack.packb({"type": "say", "room": "lobby", "text": "never finished"}))
    intruder.send_raw(data[:cut])
    intruder.sock.shutdown(socket.SHUT_WR)
    intruder.wait_closed()
    intruder.close()
    assert bystanders[0].recv_until(lambda m: getattr(m, "nick", None) == "halfway" and hasattr(m, "reason"))
    with ChatTestClient(server.address) as again:
        assert again.login("halfway").nick == "halfway"
    assert_undisturbed(*bystanders)


def test_abrupt_reset(server: ChatServer, bystanders: tuple[ChatTestClient, ChatTestClient]) -> None:
    """A connection reset (RST) mid-session is handled like any disconnect."""
    intruder = ChatTestClient(server.address)
    intruder.login("resetter")
    intruder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    intruder.close()
    assert bystanders[1].recv_until(lambda m: getattr(m, "nick", None) == "resetter" and hasattr(m, "reason"))
    assert_undisturbed(*bystanders)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "no_such_thing"}, "unknown_type"),
        ({"type": "say", "room": "lobby"}, "invalid_field"),
        ({"type": "say", "room": "lobby", "text": 5}, "invalid_field"),
        ({"type": "say", "room": "lobby", "text": "bell\x07"}, "invalid_text"),
        ({"type": "say", "room": "lobby", "text": "esc\x1b[2J"}, "invalid_text"),
        ({"type": "say", "room": "lobby", "text": "c1\x9b"}, "invalid_text"),
        ({"type": "join", "room": "a b"}, "invalid_room"),
        ({"type": "join", "room": "zw\u200d"}, "invalid_room"),
        ({"type": "nick", "nick": "\u202eevil"}, "invalid_nick"),
        ({"type": "say", "room": "lobby", "text": "x", "action": 1}, "invalid_field"),
        ({"type": "hello", "proto": "mpchat", "version": 1, "nick": "again"}, "already_logged_in"),
    ],
)
def test_bad_request_after_login_is_not_fatal(
    server: ChatServer,
    bystanders: tuple[ChatTestClient, ChatTestClient],
    fields: dict[str, object],
    code: str,
) -> None:
    """A well-framed but invalid request is answered with its code (ref echoed) and the session goes on."""
    alice, bob = bystanders
    alice.send_raw(frame(msgpack.packb({**fields, "ref": 42})))
    error = alice.error(code)
    assert (error.fatal, error.ref) == (False, 42)
    alice.send(Ping(token=5))
    assert alice.recv(Pong).token == 5
    assert_undisturbed(alice, bob)


def test_text_with_newline_and_tab_is_relayed_verbatim(
    bystanders: tuple[ChatTestClient, ChatTestClient],
) -> None:
    """Newlines and tabs are allowed in message text; bidi characters too (clients show them visibly)."""
    alice, bob = bystanders
    alice.send(Say(room="lobby", text="line one\n\tline two \u202eok"))
    assert bob.recv(Said).text == "line one\n\tline two \u202eok"


def test_many_frames_in_one_write(
    server: ChatServer, bystanders: tuple[ChatTestClient, ChatTestClient]
) -> None:
    """Fifty frames in one send are all handled, in order (one recv is not one message)."""
    alice, bob = bystanders
    alice.send_raw(b"".join(alice.protocol.send(Say(room="lobby", text=f"{n}")) for n in range(50)))
    texts = [bob.recv(Said).text for _ in range(50)]
    assert texts == [f"{n}" for n in range(50)]


def test_join_before_hello_is_refused(connect: Callable[..., ChatTestClient]) -> None:
    """Any request before hello is bad_hello (fatal)."""
    client = connect()
    client.send_unchecked(Join(room="lobby"))
    assert fatal_errors(client) == [("bad_hello", True)]


def test_hello_twice_in_a_row(connect: Callable[..., ChatTestClient]) -> None:
    """A second hello sent right behind the first is refused without ending the session."""
    client = connect()
    hello = Hello(proto="mpchat", version=1, nick="twice")
    client.send_unchecked(hello)
    client.send_unchecked(hello)
    assert client.error("already_logged_in").fatal is False
