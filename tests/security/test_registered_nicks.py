"""Registered nicks over real TCP: only the password's owner gets the nick (at login and by `nick`), the wrong
password gets a clear error, guessing meets the per-address limit, the registration survives a restart, and
a registered nick's direct messages are read by its owner only.

Servers here hash with a cheap scrypt cost (`CHEAP`) so the tests stay fast; one test uses the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat_server.server import ChatServer
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    ChangeNick,
    Error,
    FetchHistory,
    Hello,
    History,
    NickChanged,
    Quit,
    Register,
    Registration,
    Tell,
    Told,
    Unregister,
    Welcome,
)
from tests.server.client import ChatTestClient, wait_until

MakeServer = Callable[..., ChatServer]
#: A scrypt cost that takes microseconds (the defaults take tens of milliseconds per hash).
CHEAP: dict[str, Any] = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}


def connect(server: ChatServer, source: str | None = None) -> ChatTestClient:
    """A new connection to `server`, from `source` if given."""
    return ChatTestClient(server.address, source=source)


def send_hello(
    client: ChatTestClient, nick: str, *, nick_password: str | None = None, password: str | None = None
) -> None:
    """Send a hello that joins no room, with the given passwords."""
    client.send(
        Hello(
            proto=PROTOCOL_NAME,
            version=PROTOCOL_VERSION,
            nick=nick,
            rooms=(),
            password=password,
            nick_password=nick_password,
        )
    )


def log_in(
    server: ChatServer, nick: str, source: str | None = None, **passwords: str | None
) -> ChatTestClient:
    """Connect and log in (no rooms); fails the test unless the server welcomes the client."""
    client = connect(server, source)
    send_hello(client, nick, **passwords)
    assert client.recv(Welcome).nick == nick
    return client


def refused(server: ChatServer, nick: str, source: str | None = None, **passwords: str | None) -> list[Error]:
    """Try to log in; return the error frames received before the server closed the connection."""
    with connect(server, source) as client:
        send_hello(client, nick, **passwords)
        return [m for m in client.wait_closed() if isinstance(m, Error)]


def codes(errors: list[Error]) -> list[tuple[str, bool]]:
    """(code, fatal) of each error."""
    return [(error.code, error.fatal) for error in errors]


def register(client: ChatTestClient, password: str, old_password: str | None = None) -> Registration:
    """Register the client's nick (or change its password) and return the answer."""
    client.send(Register(password=password, old_password=old_password, ref=7))
    return client.recv(Registration, ref=7)


def quit_and_wait(server: ChatServer, client: ChatTestClient) -> None:
    """Log `client` out and wait until the server has forgotten it."""
    before = server.stats().logged_in
    client.send(Quit())
    client.wait_closed()
    client.close()
    wait_until(lambda: server.stats().logged_in < before, 5, "the client to be logged out")


def test_only_the_password_gets_a_registered_nick_at_login(make_server: MakeServer) -> None:
    """After `register`, a hello for the nick without the password, or with a wrong one, is refused with a
    fatal nick_registered; with the right password (in any letter case of the nick) it is welcomed."""
    server = make_server(**CHEAP)
    alice = log_in(server, "alice")
    answer = register(alice, "correct horse")
    assert (answer.nick, answer.registered) == ("alice", True)
    quit_and_wait(server, alice)

    missing = refused(server, "alice")
    assert codes(missing) == [("nick_registered", True)]
    assert "give its password" in missing[0].message
    wrong = refused(server, "ALICE", nick_password="battery staple")
    assert codes(wrong) == [("nick_registered", True)]
    assert "wrong password" in wrong[0].message
    with log_in(server, "Alice", nick_password="correct horse") as again:
        again.send(Register(password="new one", old_password="correct horse", ref=8))
        assert again.recv(Registration, ref=8).registered  # it is the owner: it may change the password


def test_a_password_for_an_unregistered_nick_is_harmless(make_server: MakeServer) -> None:
    """A nick password given for a nick nobody registered is ignored: the login succeeds."""
    server = make_server(**CHEAP)
    with log_in(server, "dora", nick_password="whatever"):
        pass


def test_changing_to_a_registered_nick_needs_its_password(make_server: MakeServer) -> None:
    """`nick` to a registered nick: refused without the password and with a wrong one (nick_registered, not
    fatal: the connection stays); accepted with the right one, after which the new holder owns it."""
    server = make_server(**CHEAP)
    alice = log_in(server, "alice")
    register(alice, "s3cret")
    quit_and_wait(server, alice)

    with log_in(server, "bob") as bob:
        bob.send(ChangeNick(nick="alice", ref=1))
        assert codes([bob.recv(Error, ref=1)]) == [("nick_registered", False)]
        bob.send(ChangeNick(nick="Alice", password="guess", ref=2))
        error = bob.recv(Error, ref=2)
        assert (error.code, error.fatal, "wrong password" in error.message) == (
            "nick_registered",
            False,
            True,
        )
        bob.send(ChangeNick(nick="Alice", password="s3cret", ref=3))
        assert bob.recv(NickChanged).new == "Alice"
        # Now the owner: it may drop the registration (and changing letter case needs no password).
        bob.send(ChangeNick(nick="ALICE", ref=4))
        assert bob.recv(NickChanged).new == "ALICE"
        bob.send(Unregister(password="s3cret", ref=5))
        assert bob.recv(Registration, ref=5).registered is False
    wait_until(lambda: server.stats().logged_in == 0, 5, "bob to be logged out")
    with log_in(server, "alice"):
        pass  # free for anyone again


def test_password_change_and_unregister(make_server: MakeServer) -> None:
    """Registering a registered nick again needs the old password; a wrong one is refused; after a change
    only the new password works; unregister needs the (current) password and frees the nick."""
    server = make_server(**CHEAP)
    carol = log_in(server, "carol")
    register(carol, "one")
    carol.send(Register(password="two", ref=1))
    assert carol.recv(Error, ref=1).code == "nick_registered"
    carol.send(Register(password="two", old_password="wrong", ref=2))
    assert carol.recv(Error, ref=2).code == "nick_registered"
    assert register(carol, "two", old_password="one").registered
    carol.send(Unregister(password="one", ref=3))
    assert carol.recv(Error, ref=3).code == "nick_registered"
    quit_and_wait(server, carol)

    assert codes(refused(server, "carol", nick_password="one")) == [("nick_registered", True)]
    carol = log_in(server, "carol", nick_password="two")
    carol.send(Unregister(password="two", ref=4))
    assert carol.recv(Registration, ref=4).registered is False
    carol.send(Unregister(password="two", ref=5))
    assert carol.recv(Error, ref=5).code == "not_registered"
    carol.send(Register(password="", ref=6))
    assert carol.recv(Error, ref=6).code == "invalid_field"
    quit_and_wait(server, carol)
    with log_in(server, "carol"):
        pass


def test_a_registered_nicks_direct_messages_are_read_by_its_owner_only(make_server: MakeServer) -> None:
    """Direct messages to a registered nick cannot be paged by someone else taking the nick; with the right
    password they can (the "known gap" of unregistered nicks is closed for registered ones)."""
    server = make_server(**CHEAP)
    alice = log_in(server, "alice")
    register(alice, "pw-alice")
    with log_in(server, "eve") as eve:
        eve.send(Tell(to="alice", text="the secret plan", ref=1))
        alice.recv(Told, text="the secret plan")
    quit_and_wait(server, alice)

    # Someone else wants alice's messages: the nick is closed to them, by login and by nick change.
    assert codes(refused(server, "alice")) == [("nick_registered", True)]
    with log_in(server, "mallory") as mallory:
        mallory.send(ChangeNick(nick="alice", ref=1))
        assert mallory.recv(Error, ref=1).code == "nick_registered"
        mallory.send(FetchHistory(direct=True, ref=2))
        page = mallory.recv(History, ref=2)
        assert page.messages == ()  # mallory's own (empty) direct history, not alice's
    with log_in(server, "alice", nick_password="pw-alice") as owner:
        owner.send(FetchHistory(direct=True, ref=3))
        page = owner.recv(History, ref=3)
        assert [m.text for m in page.messages] == ["the secret plan"]


def test_a_registration_survives_a_restart(make_server: MakeServer) -> None:
    """The registration is in the database: a new server on the same data folder still asks the password."""
    first = make_server(**CHEAP)
    with log_in(first, "dave") as dave:
        register(dave, "durable")
    first.stop()
    second = make_server(**CHEAP)
    assert codes(refused(second, "dave")) == [("nick_registered", True)]
    with log_in(second, "dave", nick_password="durable"):
        pass


def test_guessing_a_nick_password_meets_the_per_address_limit(make_server: MakeServer) -> None:
    """`password_failures` wrong nick passwords from 127.0.0.2 are each refused with nick_registered; the
    next attempt from that address is refused with too_many_attempts and a retry_after_ms *even with the
    right password* (it is not checked); 127.0.0.3 logs in with it at once."""
    server = make_server(**CHEAP, password_failures=3, password_failure_seconds=600.0)
    with log_in(server, "erin") as erin:
        register(erin, "right")
    wait_until(lambda: server.stats().logged_in == 0, 5, "erin to be logged out")
    for guess in ("a", "b", "c"):
        assert codes(refused(server, "erin", "127.0.0.2", nick_password=guess)) == [("nick_registered", True)]
    blocked = refused(server, "erin", "127.0.0.2", nick_password="right")
    assert codes(blocked) == [("too_many_attempts", True)]
    assert blocked[0].retry_after_ms is not None
    assert blocked[0].retry_after_ms > 500_000
    with log_in(server, "erin", "127.0.0.3", nick_password="right"):
        pass


def test_guessing_by_nick_change_counts_too(make_server: MakeServer) -> None:
    """Wrong passwords in `nick` requests count against the same per-address limit (not fatal there)."""
    server = make_server(**CHEAP, password_failures=2, password_failure_seconds=600.0)
    with log_in(server, "frank") as frank:
        register(frank, "right")
    wait_until(lambda: server.stats().logged_in == 0, 5, "frank to be logged out")
    with log_in(server, "guesser", "127.0.0.2") as guesser:
        for ref, guess in enumerate(("x", "y"), start=1):
            guesser.send(ChangeNick(nick="frank", password=guess, ref=ref))
            assert guesser.recv(Error, ref=ref).code == "nick_registered"
        guesser.send(ChangeNick(nick="frank", password="right", ref=3))
        error = guesser.recv(Error, ref=3)
        assert (error.code, error.fatal) == ("too_many_attempts", False)
        assert error.retry_after_ms is not None
    with log_in(server, "frank", "127.0.0.3", nick_password="right"):
        pass


def test_default_scrypt_cost_works_end_to_end(make_server: MakeServer) -> None:
    """With the default scrypt cost (2**14, 8, 1), registering and logging in with the password work."""
    server = make_server()
    with log_in(server, "grace") as grace:
        register(grace, "default cost")
    wait_until(lambda: server.stats().logged_in == 0, 5, "grace to be logged out")
    with log_in(server, "grace", nick_password="default cost"):
        pass
    assert codes(refused(server, "grace", nick_password="nope")) == [("nick_registered", True)]
