"""Reconnect, resume and the outbox, with faults injected by a TCP proxy or a real server restart."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import msgpack

from chat_client import (
    ChatClient,
    ClientOptions,
    Connected,
    DeliveryState,
    Disconnected,
    OutboxChanged,
    Reconnecting,
)
from chat_client.net.backoff import Backoff
from chat_lab.proxy import FaultProxy
from shared import Error as ErrorFrame
from shared import History, Joined, SignedOff, Told
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .test_library import FAST, Recorder

if TYPE_CHECKING:
    from chat_server.config import ServerConfig


def connected_count(recorder: Recorder) -> int:
    return len(recorder.of(Connected))


async def test_missed_room_messages_arrive_once_in_order_after_reconnect(
    server: LiveServer, proxy: FaultProxy
) -> None:
    """Messages sent while a client was cut off are replayed to it exactly once, in order."""
    async with (
        ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
    ):
        events = Recorder(alice)
        await bob.say("lobby", "before", wait=True)
        await wait_until(lambda: "before" in events.texts("lobby"))
        proxy.refuse = True
        await proxy.cut()
        await wait_until(lambda: events.of(Reconnecting), what="reconnecting")
        for text in ("one", "two", "three"):
            await bob.say("lobby", text, wait=True)
        proxy.refuse = False
        await wait_until(lambda: connected_count(events) == 2, what="reconnected")
        await wait_until(lambda: "three" in events.texts("lobby"))
        await bob.say("lobby", "after", wait=True)
        await wait_until(lambda: "after" in events.texts("lobby"))
        assert events.texts("lobby")[-5:] == ["before", "one", "two", "three", "after"]
        assert events.texts("lobby").count("before") == 1
        assert events.of(Connected)[1].resumed
        assert alice.rooms == ("lobby",)


async def test_server_restart_resumes_rooms_and_direct_messages(server: LiveServer) -> None:
    """After the server restarts, the client logs in again, rejoins its rooms and catches up on DMs."""
    async with ChatClient(server.host, server.port, "alice", options=FAST) as alice:
        events = Recorder(alice)
        await alice.join("dev")
        await server.astop()
        await wait_until(lambda: events.of(Disconnected), what="disconnected")
        assert events.of(Disconnected)[0].code == "server_shutdown"
        await server.astart()
        await wait_until(lambda: connected_count(events) == 2, what="reconnected")
        await wait_until(lambda: set(alice.rooms) == {"lobby", "dev"})
        async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
            await bob.join("dev")
            await bob.say("dev", "welcome back", wait=True)
            await bob.tell("alice", "dm", wait=True)
            await wait_until(lambda: "welcome back" in events.texts("dev") and events.of(Told))


async def test_message_typed_while_disconnected_is_sent_after_reconnect(
    server: LiveServer, proxy: FaultProxy
) -> None:
    """The outbox keeps a message typed offline as pending and delivers it once after the reconnect."""
    async with (
        ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
    ):
        events = Recorder(alice)
        bob_events = Recorder(bob)
        proxy.refuse = True
        await proxy.cut()
        await wait_until(lambda: not alice.connected)
        entry = await alice.say("lobby", "typed offline")
        assert entry.state is DeliveryState.PENDING
        assert alice.outbox == (entry,)
        proxy.refuse = False
        await wait_until(lambda: alice.outbox == (), what="outbox drained")
        # As below: the recorder task may not have taken the acknowledgement event yet.
        await wait_until(
            lambda: events.of(OutboxChanged)[-1].entry.state is DeliveryState.ACKNOWLEDGED,
            what="the acknowledgement event",
        )
        final = events.of(OutboxChanged)[-1].entry
        assert final.state is DeliveryState.ACKNOWLEDGED
        assert final.client_msg_id == entry.client_msg_id
        await wait_until(lambda: "typed offline" in bob_events.texts("lobby"))
        assert bob_events.texts("lobby").count("typed offline") == 1


async def test_resent_message_whose_ack_was_lost_is_stored_once(
    server: LiveServer, proxy: FaultProxy
) -> None:
    """If the first attempt reached the server but the ack was lost, the resend is acked as a duplicate."""
    async with (
        ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
    ):
        events = Recorder(alice)
        bob_events = Recorder(bob)
        proxy.to_client.discard = True
        await alice.say("lobby", "exactly once")
        await wait_until(lambda: "exactly once" in bob_events.texts("lobby"), what="stored by the server")
        proxy.to_client.discard = False
        await proxy.cut()
        await wait_until(lambda: alice.outbox == (), what="acked after resend")
        # The recorder task may not have taken the last event yet when the outbox empties: wait for it too.
        await wait_until(
            lambda: events.of(OutboxChanged)[-1].entry.state is DeliveryState.ACKNOWLEDGED,
            what="the acknowledgement's event",
        )
        final = events.of(OutboxChanged)[-1].entry
        assert final.duplicate
        assert final.attempts == 2
        await bob.say("lobby", "marker", wait=True)
        await wait_until(lambda: "marker" in events.texts("lobby"))
        # Alice's own message is reported once (through the outbox), never replayed to her as well.
        assert "exactly once" not in events.texts("lobby")
        assert bob_events.texts("lobby").count("exactly once") == 1


async def test_silent_server_is_detected_and_the_client_reconnects(
    server: LiveServer, proxy: FaultProxy
) -> None:
    """A connection that carries nothing any more is declared dead after ping period + answer deadline."""
    options = ClientOptions(ping_every=0.2, ping_grace=0.3, backoff=Backoff(initial=0.05, maximum=0.1))
    async with ChatClient("127.0.0.1", proxy.port, "alice", options=options) as alice:
        events = Recorder(alice)
        proxy.freeze()
        await wait_until(lambda: events.of(Disconnected), timeout=5, what="dead server noticed")
        assert "server not answering" in events.of(Disconnected)[0].reason
        assert events.of(Disconnected)[0].code == "not_answering"
        await proxy.cut()  # let the server see the old connection go, so the nick is free again
        await wait_until(lambda: connected_count(events) == 2, what="reconnected")


async def test_client_answers_server_pings(tmp_path: Path) -> None:
    """With the client never pinging by itself, the server's pings keep the connection open."""
    # This server pings after 0.2 s of silence and drops a client after 0.6 s without an answer.
    quick = LiveServer(fast_server_config(tmp_path / "pings", ping_interval=0.2, ping_timeout=0.6))
    await quick.astart()
    try:
        options = ClientOptions(ping_every=60, ping_grace=60)
        async with ChatClient(quick.host, quick.port, "alice", options=options) as alice:
            events = Recorder(alice)
            await wait_until(lambda: alice.pings_answered >= 4, what="four server pings answered")
            assert alice.connected
            assert not events.of(Disconnected)
    finally:
        await quick.astop()


async def test_lag_is_measured(server: LiveServer) -> None:
    """The client's own pings measure the round-trip time."""
    options = ClientOptions(ping_every=0.1)
    async with ChatClient(server.host, server.port, "alice", options=options) as alice:
        await wait_until(lambda: alice.lag is not None, what="lag measured")
        assert 0 <= (alice.lag or 0) < 5


async def test_reconnect_delays_grow_with_jitter(server: LiveServer) -> None:
    """While the server stays down, each attempt's window grows; the delay is anywhere in it (full jitter)."""
    backoff = Backoff(initial=0.02, maximum=0.16)
    options = ClientOptions(backoff=backoff)
    async with ChatClient(server.host, server.port, "alice", options=options) as alice:
        events = Recorder(alice)
        await server.astop()
        await wait_until(lambda: len(events.of(Reconnecting)) >= 5, what="five attempts")
        for event in events.of(Reconnecting)[:5]:
            ceiling = backoff.ceiling(event.attempt - 1)
            assert 0 <= event.delay <= ceiling
        assert [e.attempt for e in events.of(Reconnecting)[:5]] == [1, 2, 3, 4, 5]
        await alice.close()
    assert not alice.connected


async def test_close_while_reconnecting_stops_quickly(server: LiveServer) -> None:
    """close() during the backoff wait ends the client at once."""
    options = ClientOptions(backoff=Backoff(initial=30, maximum=30))
    client = ChatClient(server.host, server.port, "alice", options=options)
    await client.connect()
    events = Recorder(client)
    await server.astop()
    await wait_until(lambda: events.of(Reconnecting))
    await asyncio.wait_for(client.close(), 2)
    await events.stop()


async def test_stale_connection_is_replaced_by_the_reconnect_with_the_resume_token(
    server: LiveServer, proxy: FaultProxy
) -> None:
    """After a silent drop the server still holds our old connection; the reconnect's token replaces it.

    The old connection stays open on the server's side (the proxy froze it; the test server would drop it
    only after its 3 s ping timeout): without the token the reconnect would get `nick_taken` until then.
    """
    options = ClientOptions(ping_every=0.2, ping_grace=0.3, backoff=Backoff(initial=0.05, maximum=0.1))
    async with (
        ChatClient("127.0.0.1", proxy.port, "alice", options=options) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
    ):
        events = Recorder(alice)
        bob_events = Recorder(bob)
        await wait_until(lambda: alice.resume_token is not None, what="token from the welcome")
        proxy.freeze()  # a ghost: the server sees no end of the old connection
        await wait_until(lambda: events.of(Disconnected), timeout=5, what="dead connection noticed")
        await wait_until(lambda: connected_count(events) == 2, timeout=2, what="logged in again at once")
        assert not any("nick is still held" in e.reason for e in events.of(Reconnecting))
        assert alice.nick == "alice"
        assert alice.rooms == ("lobby",)
        await bob.say("lobby", "still there?", wait=True)
        await wait_until(lambda: "still there?" in events.texts("lobby"))
        # For bob nothing happened: no sign-off, no join of alice's new connection.
        assert not bob_events.of(SignedOff)
        assert [e.nick for e in bob_events.of(Joined)].count("alice") == 0


async def test_rate_limited_messages_are_resent_in_order(tmp_path: Path) -> None:
    """Messages the server refuses with rate_limited ("server busy": its history thread is stuck and its queue
    full, and the messages it holds behind that one) are held and resent: all delivered, once, in the order
    typed. (A server over its request rate delays a client rather than refusing it: no refusal to test there.)
    """
    config = fast_server_config(
        tmp_path / "busy", history_queue=1, history_wait=0.2, history_busy_timeout=30.0
    )
    busy = LiveServer(config)
    await busy.astart()
    try:
        async with (
            ChatClient(busy.host, busy.port, "alice", options=FAST) as alice,
            ChatClient(busy.host, busy.port, "bob", options=FAST) as bob,
        ):
            bob_events = Recorder(bob)
            alice_events = Recorder(alice)
            texts = [f"line {n}" for n in range(12)]
            blocker = sqlite3.connect(config.history_path, isolation_level=None)
            try:
                blocker.execute("BEGIN EXCLUSIVE")  # the history thread waits for this lock: its queue fills
                for text in texts:
                    await alice.say("lobby", text)
                # A refused message is resent after retry_after_ms: the proof that the server refused one.
                await wait_until(lambda: any(e.attempts >= 2 for e in alice.outbox), what="a resend")
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert await alice.wait_delivered(20)
            await wait_until(lambda: "line 11" in bob_events.texts("lobby"))
            assert [t for t in bob_events.texts("lobby") if t.startswith("line")] == texts
            assert alice.connected
            await wait_until(lambda: len(alice_events.of(OutboxChanged)) == 24)
            acked = [
                e.entry for e in alice_events.of(OutboxChanged) if e.entry.state is DeliveryState.ACKNOWLEDGED
            ]
            assert len(acked) == 12
            assert max(entry.attempts for entry in acked) >= 2  # the refusal was really met
    finally:
        await busy.astop()


async def test_a_burst_over_the_rate_is_delayed_not_refused(tmp_path: Path) -> None:
    """12 lines typed at once against a burst of 3 at 20 per second, with the client's pacing off: the server
    delays them (fakelag), so every one is stored at its first attempt, in order, with no refusal to resend
    after."""
    strict = LiveServer(fast_server_config(tmp_path / "strict", rate_burst=3, rate_messages=20.0))
    await strict.astart()
    try:
        async with (
            ChatClient(strict.host, strict.port, "alice", options=replace(FAST, pacing=False)) as alice,
            ChatClient(strict.host, strict.port, "bob", options=FAST) as bob,
        ):
            bob_events = Recorder(bob)
            alice_events = Recorder(alice)
            texts = [f"line {n}" for n in range(12)]
            for text in texts:
                await alice.say("lobby", text)
            assert await alice.wait_delivered(10)
            await wait_until(lambda: "line 11" in bob_events.texts("lobby"))
            assert [t for t in bob_events.texts("lobby") if t.startswith("line")] == texts
            await wait_until(lambda: len(alice_events.of(OutboxChanged)) == 24)
            acked = [
                e.entry for e in alice_events.of(OutboxChanged) if e.entry.state is DeliveryState.ACKNOWLEDGED
            ]
            assert [entry.attempts for entry in acked] == [1] * 12
    finally:
        await strict.astop()


async def test_frames_split_into_single_bytes_are_reassembled(server: LiveServer, proxy: FaultProxy) -> None:
    """Server bytes arriving one at a time still make whole messages: login, join, chat (TCP is a stream)."""
    proxy.to_client.split = 1  # frames split anywhere: one byte at a time,
    proxy.to_client.bandwidth = 2000  # with a pause after each
    async with (
        ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
    ):
        events = Recorder(alice)
        state = await alice.join("dev")
        assert state is not None
        await bob.join("dev")
        await bob.say("dev", "split into pieces", wait=True)
        await wait_until(lambda: "split into pieces" in events.texts("dev"))
        entry = await alice.say("dev", "and back", wait=True)
        assert entry.state is DeliveryState.ACKNOWLEDGED


async def test_without_reconnect_a_drop_closes_the_client(server: LiveServer) -> None:
    """With reconnect=False the client reports the drop as final and ends with Closed(error)."""
    from chat_client import Closed

    client = ChatClient(server.host, server.port, "alice", options=ClientOptions(reconnect=False))
    await client.connect()
    events = Recorder(client)
    await server.astop()
    await events.stop()
    disconnected = events.of(Disconnected)
    assert [(d.code, d.will_retry) for d in disconnected] == [("server_shutdown", False)]
    closed = events.events[-1]
    assert isinstance(closed, Closed)
    assert closed.error is not None
    assert not events.of(Reconnecting)
    await client.close()


def direct_texts(recorder: Recorder) -> list[str]:
    """Every direct message text seen, live or replayed, in arrival order."""
    out: list[str] = []
    for event in recorder.events:
        if isinstance(event, Told):
            out.append(event.text)
        elif isinstance(event, History) and event.direct:
            out.extend(item.text for item in event.messages if isinstance(item, Told))
    return out


async def missed_while_frozen(
    config: ServerConfig,
    rooms: list[str],
    per_room: int,
    direct: int,
    mangle: Callable[[bytes], bytes] | None = None,
) -> tuple[Recorder, tuple[str, ...]]:
    """alice and bob in `rooms`; once alice (behind a proxy, whose upstream bytes `mangle` rewrites) has bob's
    first line in each room and first direct message, her link freezes (the server still holds it) while bob
    says `per_room` lines in each room and tells her `direct` more. Returns alice's events once she has
    reconnected and received the last of them, and her rooms."""
    with LiveServer(config) as live:
        front = FaultProxy(lambda: (live.host, live.port))
        front.to_server.mangle = mangle
        await front.start()
        try:
            async with (
                ChatClient("127.0.0.1", front.port, "alice", rooms=rooms, options=FAST) as alice,
                ChatClient(live.host, live.port, "bob", rooms=rooms, options=FAST) as bob,
            ):
                events = Recorder(alice)
                for room in rooms:
                    await bob.say(room, f"{room} before", wait=True)
                await bob.tell("alice", "dm before", wait=True)
                await wait_until(lambda: all(f"{room} before" in events.texts(room) for room in rooms))
                await wait_until(lambda: "dm before" in direct_texts(events), what="the first direct message")
                front.freeze()
                for room in rooms:
                    for number in range(1, per_room + 1):
                        await bob.say(room, f"{room} missed {number}", wait=True)
                for number in range(1, direct + 1):
                    await bob.tell("alice", f"dm missed {number}", wait=True)
                await wait_until(lambda: connected_count(events) == 2, what="reconnected")
                for room in rooms:
                    last = f"{room} missed {per_room}"
                    await wait_until(lambda last=last, room=room: last in events.texts(room), what=last)
                last = f"dm missed {direct}"
                await wait_until(lambda: last in direct_texts(events), what=last)
                return events, alice.rooms
        finally:
            await front.close()


async def test_a_reconnect_resumes_every_room_and_the_direct_messages_in_its_login(tmp_path: Path) -> None:
    """A client in 12 rooms, on a server whose join bucket holds 2, loses its link (frozen: the server still
    holds it) while messages are stored in every room and sent to it directly. It reconnects and gets each
    missed message once, in order, with no refusal: its hello resumes every room (`hello.after`) and the
    direct messages (`hello.direct_after`), where 12 joins would meet `rate_limited` or wait for tokens."""
    rooms = [f"room{number}" for number in range(12)]
    config = fast_server_config(tmp_path / "server", rate_joins=0.2, rate_joins_burst=2)
    events, joined = await missed_while_frozen(config, rooms, per_room=3, direct=2)
    for room in rooms:
        assert events.texts(room) == [f"{room} before", *(f"{room} missed {number}" for number in (1, 2, 3))]
    assert direct_texts(events) == ["dm before", "dm missed 1", "dm missed 2"]
    assert events.of(ErrorFrame) == []
    assert joined == tuple(rooms)


def without_resume_in_hello(data: bytes) -> bytes:
    """A block from the client with `after` and `direct_after` taken out of a `hello` in it: what a server
    that predates them would read (it ignores fields it does not know)."""
    length = int.from_bytes(data[:4], "big")
    if len(data) < 4 + length:
        return data
    body = msgpack.unpackb(data[4 : 4 + length])
    if not isinstance(body, dict) or body.get("type") != "hello":
        return data
    body.pop("after", None)
    body.pop("direct_after", None)
    packed: bytes = msgpack.packb(body)
    return len(packed).to_bytes(4, "big") + packed + data[4 + length :]


async def test_a_server_that_ignores_the_resume_in_the_login_is_caught_up_the_old_way(tmp_path: Path) -> None:
    """Against a server that predates `hello.after` (here: our server behind a proxy that takes the field
    out of the hello), a resumed room's login answer is a plain backfill that says older messages exist
    (`more` without `skipped`): the client drops it, resumes the room with `join {after}` and the direct
    messages with `fetch_history {direct, after}`, and still gets every missed message once, in order."""
    rooms = ["dev", "ops"]
    config = fast_server_config(tmp_path / "server", backfill=3)
    events, _ = await missed_while_frozen(config, rooms, per_room=6, direct=1, mangle=without_resume_in_hello)
    for room in rooms:
        missed = [f"{room} missed {number}" for number in range(1, 7)]
        assert events.texts(room) == [f"{room} before", *missed]
    assert direct_texts(events) == ["dm before", "dm missed 1"]
    assert events.of(ErrorFrame) == []
