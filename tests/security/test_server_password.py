"""The optional server password over real TCP: the right one gets in, a missing or wrong one gets a fatal
`bad_password`, and guessing meets the per-address limit on wrong passwords while another address gets in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chat_server.server import ChatServer
from shared import Error, Welcome
from tests.server.client import ChatTestClient, wait_until
from tests.server.process import ServerProcess

from .test_registered_nicks import CHEAP, codes, log_in, refused, register, send_hello

MakeServer = Callable[..., ChatServer]


def test_the_right_server_password_gets_in(make_server: MakeServer) -> None:
    """No password or a wrong one: bad_password, fatal; the right one: welcome."""
    server = make_server(password="open sesame")
    missing = refused(server, "alice")
    assert codes(missing) == [("bad_password", True)]
    assert "needs a password" in missing[0].message
    wrong = refused(server, "alice", password="open barley")
    assert codes(wrong) == [("bad_password", True)]
    assert "wrong" in wrong[0].message
    with log_in(server, "alice", password="open sesame"):
        pass


def test_a_server_without_password_ignores_one(make_server: MakeServer) -> None:
    """A client that sends a password to a server without one is welcomed."""
    server = make_server()
    with log_in(server, "bob", password="anything"):
        pass


def test_guessing_the_server_password_meets_the_per_address_limit(make_server: MakeServer) -> None:
    """`password_failures` wrong guesses from 127.0.0.2 get bad_password; the next try from there gets
    too_many_attempts (retry_after_ms about password_failure_seconds) even with the right password; a
    missing password is not a guess; 127.0.0.3 gets in with the right password."""
    server = make_server(password="pw", password_failures=2, password_failure_seconds=300.0)
    assert codes(refused(server, "x", "127.0.0.2")) == [("bad_password", True)]  # no password: not a guess
    for guess in ("a", "b"):
        assert codes(refused(server, "x", "127.0.0.2", password=guess)) == [("bad_password", True)]
    blocked = refused(server, "x", "127.0.0.2", password="pw")
    assert codes(blocked) == [("too_many_attempts", True)]
    assert blocked[0].retry_after_ms is not None
    assert 200_000 < blocked[0].retry_after_ms <= 300_000
    with log_in(server, "y", "127.0.0.3", password="pw"):
        pass


def test_server_and_nick_passwords_together(make_server: MakeServer) -> None:
    """With a server password, a registered nick needs both; wrong guesses of either share one limit."""
    server = make_server(**CHEAP, password="pw", password_failures=2, password_failure_seconds=300.0)
    with log_in(server, "carol", password="pw") as carol:
        register(carol, "mine")
    wait_until(lambda: server.stats().logged_in == 0, 5, "carol to be logged out")
    assert codes(refused(server, "carol", "127.0.0.2", password="pw")) == [("nick_registered", True)]
    assert codes(refused(server, "carol", "127.0.0.2", password="bad")) == [("bad_password", True)]
    assert codes(refused(server, "carol", "127.0.0.2", password="pw", nick_password="bad")) == [
        ("nick_registered", True)
    ]
    assert codes(refused(server, "carol", "127.0.0.2", password="pw", nick_password="mine")) == [
        ("too_many_attempts", True)
    ]
    with log_in(server, "carol", "127.0.0.3", password="pw", nick_password="mine"):
        pass


def test_password_file_and_environment_on_the_command_line(tmp_path: Path) -> None:
    """`--password-file` (first line) sets the server password; so does MPCHAT_SERVER_PASSWORD; a missing
    password file is a usage error (exit 2) that names it."""
    secret = tmp_path / "password"
    secret.write_text("from the file\nsecond line is ignored\n")
    secret.chmod(0o600)
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path), "--password-file", str(secret)) as process:
        assert process.address is not None, process.first_line
        with ChatTestClient(process.address) as client:
            send_hello(client, "alice", password="from the file")
            client.recv(Welcome)
        with ChatTestClient(process.address) as client:
            send_hello(client, "bob", password="second line is ignored")
            assert [m.code for m in client.wait_closed() if isinstance(m, Error)] == ["bad_password"]
        assert process.stop() == 0
    environment = {"MPCHAT_SERVER_PASSWORD": "from the environment"}
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path), env=environment) as process:
        assert process.address is not None, process.first_line
        with ChatTestClient(process.address) as client:
            send_hello(client, "carol", password="from the environment")
            client.recv(Welcome)
        assert process.stop() == 0
    with ServerProcess("--port", "0", "--password-file", str(tmp_path / "nope")) as process:
        assert process.process.wait(10) == 2
        assert "nope" in process.close()[1]


def test_concurrent_guesses_cannot_overshoot_the_limit(make_server: MakeServer) -> None:
    """Six connections from one address guess at the same moment with password_failures 3: exactly three
    are checked (bad_password), the other three are refused unchecked (too_many_attempts)."""
    server = make_server(password="pw", password_failures=3, password_failure_seconds=600.0)
    clients = [ChatTestClient(server.address, source="127.0.0.2") for _ in range(6)]
    try:
        for client in clients:
            send_hello(client, "guesser", password="nope")
        outcomes = sorted(
            error.code for client in clients for error in client.wait_closed() if isinstance(error, Error)
        )
    finally:
        for client in clients:
            client.close()
    assert outcomes == ["bad_password"] * 3 + ["too_many_attempts"] * 3
