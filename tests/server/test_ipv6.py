"""IPv6 over real sockets on ::1: a server listening on IPv6 and dual-stack (``::``), clients over both
families, the per-address limit on an IPv6 client, and IPv6 peers written correctly in logs and ban lists."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chat_server.server import ChatServer
from shared import Ban, BanList, Error, History, Join, ListBans, RoomState, Said, Say

from .client import ChatTestClient
from .process import ServerProcess

MakeServer = Callable[..., ChatServer]


def chat(server_address: tuple[str, int], first: str, second: str) -> None:
    """Log in from `first` and `second` (IP literals) and pass one line between them."""
    port = server_address[1]
    with ChatTestClient((first, port)) as alice, ChatTestClient((second, port)) as bob:
        alice.login("alice")
        bob.login("bob")
        alice.send(Say(room="lobby", text=f"hello from {first}"))
        said = bob.recv(Said)
        assert (said.nick, said.text) == ("alice", f"hello from {first}")


def test_server_listens_on_ipv6_loopback(make_server: MakeServer) -> None:
    """``host = "::1"`` binds the IPv6 loopback address, and two clients over IPv6 chat."""
    server = make_server(host="::1")
    assert server.address[0] == "::1"
    chat(server.address, "::1", "::1")


def test_dual_stack_server_takes_ipv4_and_ipv6(make_server: MakeServer) -> None:
    """``host = "::"`` is dual-stack: a client over 127.0.0.1 and one over ::1 reach the same server."""
    server = make_server(host="::")
    assert server.address[0] == "::"
    chat(server.address, "127.0.0.1", "::1")
    chat(server.address, "::1", "127.0.0.1")


def test_a_host_name_listens_on_its_address(make_server: MakeServer) -> None:
    """A name is resolved: ``localhost`` listens on the loopback address it names, and a client gets in."""
    server = make_server(host="localhost")
    assert server.address[0] in ("127.0.0.1", "::1")
    chat(server.address, server.address[0], server.address[0])


def test_per_address_limit_counts_an_ipv6_client(make_server: MakeServer) -> None:
    """`max_clients_per_ip` holds for a client on ::1: two get in, the third is too_many_connections."""
    server = make_server(host="::1", max_clients_per_ip=2)
    with ChatTestClient(server.address) as one, ChatTestClient(server.address) as two:
        one.login("one")
        two.login("two")
        with ChatTestClient(server.address) as three:
            errors = [(m.code, m.fatal) for m in three.wait_closed() if isinstance(m, Error)]
    assert errors == [("too_many_connections", True)]


def test_logs_write_peers_with_brackets_and_ipv4_plain(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The accept log shows ``[::1]:PORT`` for IPv6 and ``127.0.0.1:PORT`` (not ``::ffff:...``) for IPv4."""
    caplog.set_level(logging.INFO, logger="chat_server")
    server = make_server(host="::")
    port = server.address[1]
    with ChatTestClient(("::1", port)) as six, ChatTestClient(("127.0.0.1", port)) as four:
        six.login("six")
        four.login("four")
        six_port, four_port = six.sock.getsockname()[1], four.sock.getsockname()[1]
    accepted = [r.getMessage() for r in caplog.records if "event=accepted" in r.getMessage()]
    assert any(m.endswith(f"peer=[::1]:{six_port}") for m in accepted), accepted
    assert any(m.endswith(f"peer=127.0.0.1:{four_port}") for m in accepted), accepted


def test_ipv4_client_of_a_dual_stack_server_is_banned_by_its_ipv4_address(make_server: MakeServer) -> None:
    """An address ban of a client that came over IPv4 to ``::`` lists 127.0.0.1, not ::ffff:127.0.0.1."""
    server = make_server(host="::")
    port = server.address[1]
    with ChatTestClient(("::1", port)) as alice, ChatTestClient(("127.0.0.1", port)) as bob:
        for client, nick in ((alice, "alice"), (bob, "bob")):
            client.login(nick, rooms=[])
            client.send(Join(room="den", ref=5))
            client.recv(RoomState, ref=5)
            client.recv(History, ref=5)
        alice.send(Ban(room="den", nick="bob", by_address=True))
        alice.send(ListBans(room="den", ref=6))
        (entry,) = alice.recv(BanList, ref=6).bans
    assert (entry.nick, entry.address) == ("bob", "127.0.0.1")


def test_cli_prints_an_ipv6_address_in_brackets(tmp_path: Path) -> None:
    """``chat-server --host ::1`` starts (it used to fail) and prints ``listening on [::1]:PORT``."""
    with ServerProcess("--host", "::1", "--port", "0", "--data-dir", str(tmp_path)) as server:
        assert re.fullmatch(r"mpchat server listening on \[::1\]:\d+\n", server.first_line), server.first_line
        assert server.address is not None
        with ChatTestClient(server.address) as client:
            assert client.login("alice").nick == "alice"


def test_cli_help_describes_ipv6_and_dual_stack() -> None:
    """``chat-server --help`` works (a bare % in a help text used to break it) and names IPv6 and ::."""
    result = subprocess.run(
        [sys.executable, "-m", "chat_server", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert ":: is dual-stack" in " ".join(result.stdout.split())
