"""When a nick is free again (docs/protocol.md, "When a nick is free"), and the resume token that lets a
reconnect replace its own stale connection at once."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest

from chat_server.server import ChatServer
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    Error,
    Hello,
    History,
    Joined,
    Quit,
    RoomState,
    Said,
    Say,
    SignedOff,
    Welcome,
    Who,
)

from .client import ChatTestClient


def hello(nick: str, token: str | None, rooms: tuple[str, ...] | None = None) -> Hello:
    """A hello for `nick`, with `token` if given (without one it is a hello any server version takes)."""
    if token is None:
        return Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, rooms=rooms)
    return Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, rooms=rooms, resume_token=token)


def answer(client: ChatTestClient) -> Welcome | Error:
    """The server's answer to a hello: its welcome or its refusal."""
    found = client.recv_until(lambda m: isinstance(m, Welcome | Error))
    assert isinstance(found, Welcome | Error)
    return found


def test_each_welcome_has_its_own_token(connect: Callable[..., ChatTestClient]) -> None:
    """Tokens are 32 hex digits and never repeat between logins."""
    tokens = []
    for index in range(5):
        client = connect()
        client.send(hello(f"user{index}", None))
        welcome = answer(client)
        assert isinstance(welcome, Welcome)
        assert welcome.resume_token is not None
        assert re.fullmatch(r"[0-9a-f]{32}", welcome.resume_token)
        tokens.append(welcome.resume_token)
    assert len(set(tokens)) == len(tokens)


def test_quit_then_immediate_relogin_never_meets_nick_taken(connect: Callable[..., ChatTestClient]) -> None:
    """A client that sent `quit` and saw the server close can log in again at once: 100 times, no refusal."""
    refused = 0
    for _ in range(100):
        client = connect()
        client.send(hello("alice", None))
        assert isinstance(answer(client), Welcome)
        client.send(Quit(reason="again"))
        client.wait_closed()
        client.close()
        again = connect()
        again.send(hello("alice", None))
        if isinstance(answer(again), Error):
            refused += 1
        again.send(Quit())
        again.wait_closed()
        again.close()
    assert refused == 0


#: The bound of the wait for a leaving holder in the test below: the default (2 s) is ample on an idle
#: machine, and ran out once in 200 relogins at a load average of 6 (the old reader not yet scheduled).
PATIENT_RELEASE_WAIT = 10.0


@pytest.mark.parametrize("goodbye", ["quit", "close"])
def test_relogin_right_after_quit_or_close_without_waiting_never_meets_nick_taken(
    make_server: Callable[..., ChatServer], goodbye: str
) -> None:
    """A client that quits (or just closes) and logs in again at once, without waiting for the server to
    close: the server waits (bounded) for the leaving holder instead of refusing. 200 times, no refusal."""
    server = make_server(nick_release_wait=PATIENT_RELEASE_WAIT)

    def connect() -> ChatTestClient:
        return ChatTestClient(server.address)

    refused = 0
    for _ in range(200):
        client = connect()
        client.send(hello("alice", None))
        assert isinstance(answer(client), Welcome)
        if goodbye == "quit":
            client.send(Quit())
        client.close()
        again = connect()
        again.send(hello("alice", None))
        if isinstance(answer(again), Error):
            refused += 1
            again.close()
            again = _log_in_when_free(connect, "alice")
        again.send(Quit())
        again.wait_closed()
        again.close()
    assert refused == 0


def _log_in_when_free(connect: Callable[..., ChatTestClient], nick: str) -> ChatTestClient:
    """Log in as `nick` once the server has let go of it (after a refusal, so the next round starts clean)."""
    for _ in range(500):
        client = connect()
        client.send(hello(nick, None))
        if isinstance(answer(client), Welcome):
            return client
        client.close()
    raise AssertionError(f"{nick} never became free")


def test_a_holder_that_stays_keeps_its_nick(login: Callable[..., ChatTestClient]) -> None:
    """A holder that is not leaving keeps its nick: the newcomer gets `nick_taken` (at once when the holder
    is idle; within `nick_release_wait` at most when it has input waiting)."""
    holder = login("alice")
    newcomer = ChatTestClient(holder.sock.getpeername())
    try:
        newcomer.send(hello("alice", None))
        refusal = answer(newcomer)
        assert isinstance(refusal, Error)
        assert refusal.code == "nick_taken"
        holder.send(Say(room="lobby", text="still here"))
        holder.recv(Ack)
    finally:
        newcomer.close()


def test_stale_connection_is_replaced_by_a_login_with_its_token(login: Callable[..., ChatTestClient]) -> None:
    """A half-open connection (its client gone silent) is replaced at once by a login showing its token.

    The stale connection gets a fatal `session_replaced`; the new one takes its place in its rooms, so the
    others see no sign-off and no join; a message to the room reaches the new connection.
    """
    bob = login("bob", rooms=["lobby", "dev"])
    stale = login("alice", rooms=["lobby", "dev"])
    bob.recv(Joined, nick="alice", room="dev")
    stale.drain()
    bob.drain()
    token = _token_of(stale)
    fresh = ChatTestClient(stale.sock.getpeername())
    try:
        fresh.send(hello("ALICE", token, rooms=()))
        welcome = answer(fresh)
        assert isinstance(welcome, Welcome), welcome
        assert welcome.nick == "alice"  # the nick as recorded
        assert welcome.resume_token == token  # the same session goes on
        error = stale.error("session_replaced")
        assert error.fatal
        stale.wait_closed()
        bob.send(Say(room="dev", text="are you there?"))
        said = fresh.recv(Said, room="dev")
        assert said.text == "are you there?"
        bob.send(Who(room="lobby"))
        state = bob.recv(RoomState, room="lobby")
        assert [m.nick for m in state.members].count("alice") == 1
        seen = bob.drain()
        assert not [m for m in seen if isinstance(m, SignedOff | Joined)], seen
    finally:
        fresh.close()


def test_wrong_token_gets_nick_taken_as_before(login: Callable[..., ChatTestClient]) -> None:
    """A login with a token that is not the holder's is refused with `nick_taken`; the holder stays."""
    holder = login("alice")
    token = _token_of(holder)
    wrong = "0" * 32 if token != "0" * 32 else "1" * 32
    intruder = ChatTestClient(holder.sock.getpeername())
    try:
        intruder.send(hello("alice", wrong))
        refusal = answer(intruder)
        assert isinstance(refusal, Error)
        assert refusal.code == "nick_taken"
        intruder.wait_closed()
        holder.send(Say(room="lobby", text="still mine"))
        holder.recv(Ack)
    finally:
        intruder.close()


def test_token_of_a_free_nick_is_ignored(connect: Callable[..., ChatTestClient]) -> None:
    """A token for a nick nobody holds (after a restart, or a finished session) is a plain login."""
    client = connect()
    client.send(hello("dora", "f" * 32))
    welcome = answer(client)
    assert isinstance(welcome, Welcome)
    assert welcome.resume_token != "f" * 32
    client.recv(History)


def test_the_token_is_never_logged(
    server: ChatServer, connect: Callable[..., ChatTestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the welcome's token nor a hello's token appears in the server's log, even with --trace."""
    caplog.set_level(logging.DEBUG)
    first = connect()
    first.send(hello("erin", None))
    welcome = answer(first)
    assert isinstance(welcome, Welcome)
    assert welcome.resume_token
    second = connect()
    second.send(hello("erin", welcome.resume_token))
    assert isinstance(answer(second), Welcome)
    first.wait_closed()
    assert welcome.resume_token not in caplog.text
    assert "resume" in caplog.text  # the takeover itself is logged


def _token_of(client: ChatTestClient) -> str:
    """The token of a client logged in with `login` (it kept its welcome in `last_welcome`)."""
    welcome = client.last_welcome
    assert welcome is not None
    assert welcome.resume_token is not None
    return welcome.resume_token
