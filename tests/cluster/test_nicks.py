"""Nicks unique across the cluster (a JetStream key-value bucket: atomic create, a lease): a nick in use on
one server is refused on the other; freed there once its holder leaves; a crashed server's nicks are free
after the lease; a client failing over with its resume token takes its nick over at once, and a session
left behind on the old server is ended with `session_replaced`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.config import ClusterConfig
from chat_server.server import ChatServer
from shared import PROTOCOL_NAME
from shared.messages import PROTOCOL_VERSION, Error, Hello, Welcome
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks
from tests.server.process import ServerProcess

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def try_login(server: tuple[str, int], nick: str, token: str | None = None) -> Welcome | Error:
    """One login attempt: the welcome, or the fatal error refusing it (the connection is then closed)."""
    with ChatTestClient(server) as client:
        hello = Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, rooms=(), resume_token=token)
        client.send(hello)
        answer = client.recv_until(lambda m: isinstance(m, Welcome | Error))
        assert isinstance(answer, Welcome | Error)
        return answer


def test_a_nick_is_held_across_servers(start_cluster_server: Callable[..., ChatServer]) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice:
        alice.login("Alice", [])
        refused = try_login(two.address, "alice")  # the same nick up to case
        assert isinstance(refused, Error)
        assert refused.code == "nick_taken"
        assert "another server" in refused.message
    # Alice left server one: within a round the nick is free on server two.
    wait_until(lambda: isinstance(try_login(two.address, "alice"), Welcome), what="alice free on two")


def test_a_crashed_servers_nicks_are_freed_after_the_lease(
    tmp_path: Path, nats_cluster: NatsCluster, cluster_config: ClusterConfig
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        f'[cluster]\nstream = "{cluster_config.stream}"\nsubject_prefix = "{cluster_config.subject_prefix}"\n'
        f'bucket_prefix = "{cluster_config.bucket_prefix}"\nserver_lease = 3.0\n'
    )
    common = ("--config", str(config), "--cluster", nats_cluster.url_list, "--port", "0")
    with (
        ServerProcess(*common, "--data-dir", str(tmp_path / "1")) as one,
        ServerProcess(*common, "--data-dir", str(tmp_path / "2")) as two,
    ):
        assert one.address is not None, one.first_line
        assert two.address is not None, two.first_line
        with ChatTestClient(one.address) as alice:
            alice.login("alice", [])
            taken = try_login(two.address, "alice")
            assert isinstance(taken, Error)
            assert taken.code == "nick_taken"
            one.kill()  # no goodbye: its entries stay until their lease runs out
            wait_until(lambda: isinstance(try_login(two.address, "alice"), Welcome), 15.0, "lease ran out")
        one.close()
        two.close()


def test_resume_token_takes_the_nick_over_and_ends_the_old_session(
    cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    slow = dataclasses.replace(cluster_config, server_lease=60.0)  # only a takeover can free it in time
    one = start_cluster_server("one", cluster=slow)
    two = start_cluster_server("two", cluster=slow)
    with ChatTestClient(one.address) as old:
        welcome = old.login("alice", [])
        assert welcome.resume_token is not None
        wrong = try_login(two.address, "alice", token="0" * 32)
        assert isinstance(wrong, Error)
        assert wrong.code == "nick_taken"
        # The token's hash reaches the bucket within a round after the login; the new session stays open.
        sessions: list[ChatTestClient] = []

        def moved() -> bool:
            new = ChatTestClient(two.address)
            sessions.append(new)
            new.send(
                Hello(
                    proto=PROTOCOL_NAME,
                    version=PROTOCOL_VERSION,
                    nick="alice",
                    rooms=(),
                    resume_token=welcome.resume_token,
                )
            )
            return isinstance(new.recv_until(lambda m: isinstance(m, Welcome | Error)), Welcome)

        try:
            wait_until(moved, what="alice resumed on server two")
            ended = old.error("session_replaced", timeout=15.0)
            assert "another server" in ended.message
        finally:
            for session in sessions:
                session.close()
