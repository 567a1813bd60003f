"""Failover: a client learns a cluster's other servers from `welcome.servers` (or is given them: `--host
A,B`, a list as `ChatClient`'s host), moves to the next one when its server dies (`kill -9`), and resumes
there with no gap and no duplicate; every acked message is in the history once. The chat servers are real
processes (so the kill is real) on a real NATS JetStream cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.natscluster import NatsCluster
from chat_client import ChatClient, Connected
from shared.addresses import host_port
from tests.client.test_library import FAST, Recorder
from tests.server.client import ChatTestClient
from tests.server.process import ServerProcess
from tests.waiting import wait_until, wait_until_sync


@pytest.fixture
def two_servers(tmp_path: Path, nats_cluster: NatsCluster) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two `chat-server --cluster` processes on one stream of their own."""
    stream, prefix = nats_cluster.stream_names()
    config = tmp_path / "server.toml"
    config.write_text(f'[cluster]\nstream = "{stream}"\nsubject_prefix = "{prefix}"\n')
    common = ("--config", str(config), "--cluster", nats_cluster.url_list, "--port", "0")
    common += ("--rate-messages", "1000", "--rate-burst", "1000")
    with (
        ServerProcess(*common, "--data-dir", str(tmp_path / "1")) as one,
        ServerProcess(*common, "--data-dir", str(tmp_path / "2")) as two,
    ):
        assert one.address is not None, one.first_line
        assert two.address is not None, two.first_line
        yield one, two
        one.close()
        two.close()


async def test_kill_9_fails_over_with_no_gap_and_no_duplicate(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = two_servers
    assert one.address is not None
    assert two.address is not None
    probes = iter(range(1000))

    def one_knows_two() -> bool:
        """Server one has seen server two in the servers bucket (a probe login reads its welcome)."""
        assert one.address is not None
        with ChatTestClient(one.address) as probe:
            return bool(probe.login(f"probe{next(probes)}", []).servers)

    wait_until_sync(one_knows_two, what="server one announces server two")
    async with (
        ChatClient(*two.address, "bob", options=FAST) as bob,
        ChatClient(*one.address, "alice", options=FAST) as alice,  # told of server two by its welcome
    ):
        seen = Recorder(alice)
        await wait_until(lambda: seen.of(Connected), what="alice's first welcome")
        assert seen.of(Connected)[0].welcome.servers == (host_port(*two.address),)
        acked: list[int] = []
        for n in range(5):
            acked.append((await bob.say("lobby", f"b{n}", wait=True)).id or 0)
        await wait_until(lambda: "b4" in seen.texts("lobby"), what="alice saw b4")
        one.kill()  # alice's server dies: no goodbye
        for n in range(5, 10):  # the chat goes on meanwhile
            acked.append((await bob.say("lobby", f"b{n}", wait=True)).id or 0)
        await alice.say("lobby", "alice is back")  # queued in the outbox while reconnecting
        await wait_until(lambda: len(seen.of(Connected)) == 2, 30.0, "alice reconnected to the other server")
        assert seen.of(Connected)[1].resumed
        await wait_until(lambda: "b9" in seen.texts("lobby"), 30.0, "alice caught up")
        assert await alice.wait_delivered(30.0), "alice's message was not acked"
        theirs = [text for text in seen.texts("lobby") if text.startswith("b")]
        assert theirs == [f"b{n}" for n in range(10)]  # no gap, no duplicate, in order
        page = await bob.fetch_history("lobby", limit=100)
        ids = [message.id for message in page.messages]
        assert len(ids) == len(set(ids))
        assert set(acked) <= set(ids)
        assert [m.text for m in page.messages].count("alice is back") == 1


async def test_given_servers_are_tried_in_turn(two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    one, two = two_servers
    assert one.address is not None
    assert two.address is not None
    one.kill()  # the first server of the list is down from the start: the first login tries the next
    servers = f"{host_port(*one.address)},{host_port(*two.address)}"
    async with ChatClient(servers, 0, "carol", options=FAST) as carol:
        entry = await carol.say("lobby", "via the second server", wait=True)
        assert entry.id is not None
