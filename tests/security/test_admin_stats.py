"""The admin's `stats` request over real TCP: a verified admin gets the server's figures or one connection's;
anyone else (an impostor using the admin's nick without its password included) gets `not_admin`."""

from __future__ import annotations

from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, Error, GetStats, Said, Say, StatsReport
from tests.server.test_moderation import join

from .test_moderation_rights import registered
from .test_registered_nicks import CHEAP, log_in

MakeServer = Callable[..., ChatServer]

#: The server-wide figures docs/protocol.md lists for `stats_report`, in its order.
SERVER_FIGURES = [
    "uptime_s",
    "connections",
    "connections_tls",
    "logged_in",
    "rooms",
    "logins",
    "refusals",
    "messages",
    "deliveries",
    "messages_per_s",
    "deliveries_per_s",
    "commit_p50_ms",
    "commit_p99_ms",
    "fanout_p99_ms",
    "slow_consumer_drops",
    "rate_limited",
    "queued_bytes",
    "queue_max_bytes",
    "threads",
    "open_fds",
    "rss_bytes",
    "file_upload_bytes",
    "file_download_bytes",
]
CONNECTION_FIGURES = [
    "connected_s",
    "tls",
    "rooms",
    "queued_bytes",
    "sendq_soft",
    "sendq_hard",
    "received_bytes",
    "sent_bytes",
    "received_bytes_per_s",
    "sent_bytes_per_s",
    "rate_limited",
]


def test_an_admin_sees_the_server_figures(make_server: MakeServer) -> None:
    """After alice says three lines to a room of three, /stats counts them and their deliveries."""
    server = make_server(admins=("root",), **CHEAP)
    registered(server, "root", "hunter2")
    with (
        log_in(server, "root", nick_password="hunter2") as root,
        log_in(server, "alice") as alice,
        log_in(server, "bob") as bob,
    ):
        for client in (root, alice, bob):
            join(client, "den")
        for ref in range(3):
            alice.send(Say(room="den", text=f"line {ref}", ref=ref))
            alice.recv(Ack, ref=ref)
        bob.recv(Said, text="line 2")
        root.send(GetStats(ref=7))
        report = root.recv(StatsReport, ref=7)
    figures = {figure.name: figure.value for figure in report.figures}
    assert [figure.name for figure in report.figures] == SERVER_FIGURES
    assert report.nick is None
    assert figures["connections"] == figures["logged_in"] == 3
    assert figures["messages"] == 3
    assert figures["deliveries"] == 6  # each line reached the two others
    assert figures["logins"] == 4  # root's registration login, then root, alice, bob
    assert figures["messages_per_s"] > 0
    assert figures["rss_bytes"] > 1_000_000
    assert figures["threads"] >= 5


def test_an_admin_sees_one_connections_queue_and_rates(make_server: MakeServer) -> None:
    """/stats NICK reports that connection's queue, limits and byte counts; an unknown nick: no_such_nick."""
    server = make_server(admins=("root",), **CHEAP)
    registered(server, "root", "hunter2")
    with log_in(server, "root", nick_password="hunter2") as root, log_in(server, "alice") as alice:
        join(alice, "den")
        alice.send(Say(room="den", text="hello", ref=1))
        alice.recv(Ack, ref=1)
        root.send(GetStats(nick="ALICE", ref=2))  # nicks are compared folded, as everywhere
        report = root.recv(StatsReport, ref=2)
        root.send(GetStats(nick="nobody", ref=3))
        assert root.recv(Error, ref=3).code == "no_such_nick"
    figures = {figure.name: figure.value for figure in report.figures}
    assert [figure.name for figure in report.figures] == CONNECTION_FIGURES
    assert report.nick == "ALICE"
    assert figures["sendq_hard"] == server.config.sendq_hard
    assert figures["tls"] == 0
    assert figures["rooms"] == 1
    assert figures["received_bytes"] > 0
    assert figures["sent_bytes"] > 0


def test_anyone_else_gets_not_admin(make_server: MakeServer) -> None:
    """A plain user, and a user of the admin's nick who did not give its password, are refused."""
    server = make_server(admins=("root",), **CHEAP)
    with log_in(server, "alice") as alice, log_in(server, "root") as impostor:
        for client in (alice, impostor):
            client.send(GetStats(ref=1))
            assert client.recv(Error, ref=1).code == "not_admin"
            client.send(GetStats(nick="alice", ref=2))
            assert client.recv(Error, ref=2).code == "not_admin"
