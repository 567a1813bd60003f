"""Pacing: the client keeps within the rate limits the server announces in `welcome`, so nothing is refused.

The library (`ChatClient.say` in a loop), the messages queued during an outage, and the client's copy of the
buckets (with a fake clock); the server's side: `welcome.rates` says what the server enforces. The plain
mode's pipes are in test_plain_pacing.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from chat_client import ChatClient, Connected, DeliveryState, OutboxChanged, OutboxEntry
from chat_client.net.pacing import Pacer
from chat_lab.proxy import FaultProxy
from chat_server.config import ServerConfig
from chat_server.history.chat import announced_rates
from shared import SENT_BY_SERVER, Join, Ping, Say, Welcome, decode_body, encode
from shared.limits import DEFAULT_LIMITS
from shared.messages.control import DEFAULT_RATE_LIMITS, RateBucket, RateLimits
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .tally import ErrorTally, rate_limited, stored_texts
from .test_library import FAST, Recorder

# -- The client's copy of the buckets, on a fake clock ---------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def say(text: str = "hi") -> Say:
    return Say(room="lobby", text=text, client_msg_id="m")


def test_a_fresh_connection_sends_its_burst_less_the_slack_then_the_refill_rate() -> None:
    """Defaults (10 requests, 2/s; slack 1 s = 2 tokens): 8 messages at once, then one every 0.5 s."""
    clock = Clock()
    pacer = Pacer(1.0, clock=clock)
    pacer.restart(None)  # a server that announced nothing: the documented defaults
    sent = 0
    while pacer.message_wait("hi") == 0:
        pacer.note(say())
        sent += 1
    assert sent == 8
    assert abs(pacer.message_wait("hi") - 0.5) < 1e-9
    clock.now += 0.5
    assert pacer.message_wait("hi") == 0


def test_other_requests_and_text_bytes_are_charged_as_the_server_charges_them() -> None:
    clock = Clock()
    pacer = Pacer(0.0, clock=clock)
    rates = RateLimits(
        requests=RateBucket(burst=3, refill_ms=3000),  # 1 per second
        text_bytes=RateBucket(burst=100, refill_ms=1000),  # 100 bytes per second
    )
    pacer.restart(rates)
    pacer.note(Ping(token=1))  # free
    pacer.note(Join(room="dev"))  # one request
    assert pacer.message_wait("x" * 100) == 0
    pacer.note(say("x" * 100))  # one request and the whole text bucket
    assert abs(pacer.message_wait("y" * 50) - 0.5) < 1e-9  # waits for 50 bytes of refill
    clock.now += 0.5
    assert pacer.message_wait("y" * 50) == 0
    pacer.note(say("y" * 50))  # 1.5 request tokens (half a second of refill) less one
    assert abs(pacer.message_wait("z") - 0.5) < 1e-6


def test_a_message_larger_than_the_burst_still_goes_once_the_bucket_is_full() -> None:
    clock = Clock()
    pacer = Pacer(5.0, clock=clock)
    pacer.restart(RateLimits(text_bytes=RateBucket(burst=10, refill_ms=1000)))
    assert pacer.message_wait("x" * 50) == 0  # capped at the burst, as the server caps it


def test_pacing_off_never_waits() -> None:
    pacer = Pacer(1.0, enabled=False)
    pacer.restart(RateLimits(requests=RateBucket(burst=1, refill_ms=100_000)))
    for _ in range(5):
        assert pacer.message_wait("hi") == 0
        pacer.note(say())


# -- What the server announces -----------------------------------------------------------------------------


def test_the_documented_defaults_are_the_servers_defaults() -> None:
    """A client facing a server that announces nothing assumes what our server does by default."""
    assert announced_rates(ServerConfig()) == DEFAULT_RATE_LIMITS


def test_a_welcome_without_rates_still_decodes_and_a_partial_map_takes_the_defaults() -> None:
    """An old server's welcome has no `rates`; a server may announce only some buckets."""
    plain = Welcome(version=1, nick="a", server="s", ts=1)
    assert decode_body(encode(plain)[4:], SENT_BY_SERVER, DEFAULT_LIMITS) == plain
    body = encode(replace(plain, rates=RateLimits(joins=RateBucket(burst=2, refill_ms=10))))[4:]
    decoded = decode_body(body, SENT_BY_SERVER, DEFAULT_LIMITS)
    assert isinstance(decoded, Welcome)
    assert decoded.rates is not None
    assert decoded.rates.joins == RateBucket(burst=2, refill_ms=10)
    assert decoded.rates.requests == DEFAULT_RATE_LIMITS.requests


async def test_the_welcome_announces_the_rate_limits_in_force(tmp_path: Path) -> None:
    config = fast_server_config(
        tmp_path / "server", rate_messages=4.0, rate_burst=6, rate_bytes=1000.0, rate_bytes_burst=3000
    )
    with LiveServer(config) as server:
        async with ChatClient(server.host, server.port, "alice", options=FAST) as alice:
            events = Recorder(alice)
            await alice.join("lobby")
            await wait_until(lambda: events.of(Connected), what="the connected event")
    rates = events.of(Connected)[0].welcome.rates
    assert rates is not None
    assert rates.requests == RateBucket(burst=6, refill_ms=1500)
    assert rates.text_bytes == RateBucket(burst=3000, refill_ms=3000)
    assert rates.joins.per_second == config.rate_joins


# -- The library: say in a loop, and the outbox after an outage ------------------------------------------


async def acknowledged(events: Recorder, count: int) -> list[OutboxEntry]:
    """The acknowledged outbox entries, once `count` of them have been reported."""

    def entries() -> list[OutboxEntry]:
        return [e.entry for e in events.of(OutboxChanged) if e.entry.state is DeliveryState.ACKNOWLEDGED]

    await wait_until(lambda: len(entries()) >= count, what=f"{count} acknowledgements")
    return entries()


def strict_server(tmp_path: Path) -> LiveServer:
    """A server that delays (fakelag) a fourth message in a row: 3 requests of burst, 20 per second."""
    return LiveServer(fast_server_config(tmp_path / "strict", rate_burst=3, rate_messages=20.0))


async def test_say_in_a_loop_is_paced_never_refused(tmp_path: Path) -> None:
    """40 `say` calls at once against a server that takes 3 at once, then 20/s: all stored, in order, each
    sent once, and the server never refused one (counted on the wire)."""
    with strict_server(tmp_path) as server:
        proxy = FaultProxy((server.host, server.port))
        tally = ErrorTally.watching(proxy)
        await proxy.start()
        try:
            async with ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice:
                events = Recorder(alice)
                texts = [f"loop {n}" for n in range(40)]
                for text in texts:
                    await alice.say("lobby", text)
                assert await alice.wait_delivered(20)
                acked = await acknowledged(events, len(texts))
                assert [entry.text for entry in acked] == texts
                assert {entry.attempts for entry in acked} == {1}
                assert rate_limited(server) == {}  # never delayed (fakelag) nor refused by the server
        finally:
            await proxy.close()
        assert tally.errors["rate_limited"] == 0, tally.errors
        assert proxy.connections == 1
        assert stored_texts(server.config.history_path, "lobby", "alice") == texts


async def test_say_waits_for_room_in_a_full_outbox_while_connected(tmp_path: Path) -> None:
    """More messages than the outbox holds, in a loop: `say` waits for room instead of raising OutboxFull."""
    with LiveServer(fast_server_config(tmp_path / "server", rate_burst=5, rate_messages=200.0)) as server:
        options = replace(FAST, outbox_limit=5)
        async with ChatClient(server.host, server.port, "alice", options=options) as alice:
            texts = [f"many {n}" for n in range(60)]
            for text in texts:
                await alice.say("lobby", text)
                assert len(alice.outbox) <= 5
            assert await alice.wait_delivered(20)
        assert stored_texts(server.config.history_path, "lobby", "alice") == texts


async def test_messages_queued_during_an_outage_are_paced_when_it_ends(tmp_path: Path) -> None:
    """Typed while the server is down, 25 messages wait; when it is back they go at its rate: none refused."""
    server = strict_server(tmp_path)
    await server.astart()
    proxy = FaultProxy((server.host, server.port))
    tally = ErrorTally.watching(proxy)
    await proxy.start()
    try:
        async with ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice:
            events = Recorder(alice)
            await server.astop()
            await wait_until(lambda: not alice.connected, what="the outage noticed")
            texts = [f"queued {n}" for n in range(25)]
            for text in texts:
                await alice.say("lobby", text)
            assert len(alice.outbox) == 25
            await server.astart()
            assert await alice.drain(20)
            acked = await acknowledged(events, len(texts))
            assert [entry.text for entry in acked] == texts
            assert rate_limited(server) == {}  # the restarted server never delayed nor refused one
    finally:
        await proxy.close()
        await server.astop()
    assert tally.errors["rate_limited"] == 0, tally.errors
    assert stored_texts(server.config.history_path, "lobby", "alice") == texts


async def test_the_tui_paces_lines_typed_faster_than_the_server_takes_them(
    tmp_path: Path, private_dirs: Path
) -> None:
    """20 lines entered as fast as Pilot can, 3 at once then 5/s taken: all stored in order, none refused."""
    from .tui_helpers import connected_app, submit, wait_for_chat

    with LiveServer(fast_server_config(tmp_path / "strict", rate_burst=3, rate_messages=5.0)) as server:
        proxy = FaultProxy((server.host, server.port))
        tally = ErrorTally.watching(proxy)
        await proxy.start()

        class Via:
            host, port = "127.0.0.1", proxy.port

        texts = [f"tui line {n}" for n in range(20)]
        history = server.config.history_path
        try:
            app = connected_app(Via(), private_dirs)  # type: ignore[arg-type]
            async with app.run_test(size=(120, 36)) as pilot:
                screen = await wait_for_chat(app, pilot)
                await wait_until(lambda: screen.model.current == "#lobby", what="in the lobby")
                for text in texts:
                    await submit(pilot, text)
                await wait_until(
                    lambda: len(stored_texts(history, "lobby", "alice")) == 20, what="all stored"
                )
            assert rate_limited(server) == {}
        finally:
            await proxy.close()
        assert stored_texts(history, "lobby", "alice") == texts
    assert tally.errors["rate_limited"] == 0, tally.errors
    assert proxy.connections == 1
