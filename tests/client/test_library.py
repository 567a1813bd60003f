"""The client library against a real server: login, rooms, messages, direct messages, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chat_client import (
    ChatClient,
    ClientOptions,
    Closed,
    Connected,
    DeliveryState,
    InvalidRequest,
    LoginRefused,
    OutboxChanged,
)
from chat_client.net.backoff import Backoff
from shared import History, Joined, Said, Told
from tests.waiting import wait_until

from .helpers import LiveServer

FAST = ClientOptions(connect_timeout=5, request_timeout=5, backoff=Backoff(initial=0.05, maximum=0.2))


class Recorder:
    """Collects a client's events in a background task, so tests can wait on what arrived."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.events: list[object] = []
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.client.events():
            self.events.append(event)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [event for event in self.events if isinstance(event, kind)]

    def texts(self, room: str) -> list[str]:
        """Every message text seen in `room`, live or replayed, in arrival order."""
        out: list[str] = []
        for event in self.events:
            if isinstance(event, Said) and event.room == room:
                out.append(event.text)
            elif isinstance(event, History) and event.room == room:
                out.extend(item.text for item in event.messages)
        return out

    async def stop(self) -> None:
        await asyncio.wait_for(self._task, 5)


@pytest.fixture
async def pair(server: LiveServer) -> AsyncIterator[tuple[ChatClient, ChatClient]]:
    """Two logged-in clients, alice and bob, both in the default room."""
    alice = ChatClient(server.host, server.port, "alice", options=FAST)
    bob = ChatClient(server.host, server.port, "bob", options=FAST)
    await alice.connect()
    await bob.connect()
    try:
        yield alice, bob
    finally:
        await alice.close()
        await bob.close()


async def test_login_puts_the_client_in_the_default_room(server: LiveServer) -> None:
    """After connect() the client is logged in and has joined the server's default room."""
    async with ChatClient(server.host, server.port, "carol", options=FAST) as client:
        recorder = Recorder(client)
        await wait_until(lambda: client.rooms == ("lobby",), what="joined lobby")
        await wait_until(lambda: recorder.of(Joined), what="joined event")
        assert client.connected
        assert client.nick == "carol"
        assert isinstance(recorder.events[0], Connected)
        assert not recorder.events[0].resumed
    await recorder.stop()
    assert isinstance(recorder.events[-1], Closed)
    assert recorder.events[-1].error is None


async def test_room_message_reaches_the_other_member_and_is_acknowledged(
    pair: tuple[ChatClient, ChatClient],
) -> None:
    """say() is acked to the sender, and the other member receives exactly one Said."""
    alice, bob = pair
    bob_events = Recorder(bob)
    await alice.join("dev")
    await bob.join("dev")
    entry = await alice.say("dev", "hello bob", wait=True)
    assert entry.state is DeliveryState.ACKNOWLEDGED
    assert entry.id is not None
    assert not entry.duplicate
    await wait_until(lambda: "hello bob" in bob_events.texts("dev"))
    said = [e for e in bob_events.of(Said) if e.text == "hello bob"]
    assert len(said) == 1
    assert said[0].nick == "alice"
    assert said[0].id == entry.id


async def test_sender_gets_outbox_events_not_its_own_said(pair: tuple[ChatClient, ChatClient]) -> None:
    """The sender sees its message as pending then acknowledged, never as a Said."""
    alice, _ = pair
    recorder = Recorder(alice)
    await alice.say("lobby", "mine", wait=True)
    await wait_until(lambda: len(recorder.of(OutboxChanged)) == 2)
    states = [event.entry.state for event in recorder.of(OutboxChanged)]
    assert states == [DeliveryState.PENDING, DeliveryState.ACKNOWLEDGED]
    assert not [e for e in recorder.of(Said) if e.text == "mine"]


async def test_join_returns_the_room_state(pair: tuple[ChatClient, ChatClient]) -> None:
    """join() waits for and returns the room's state, listing the joiner."""
    alice, bob = pair
    await alice.join("kitchen")
    state = await bob.join("kitchen")
    assert state is not None
    assert state.room == "kitchen"
    assert {member.nick for member in state.members} == {"alice", "bob"}
    assert "kitchen" in bob.rooms


async def test_leave_removes_the_room(pair: tuple[ChatClient, ChatClient]) -> None:
    """leave() takes the room out of the client's rooms, and others see Left."""
    alice, bob = pair
    await alice.join("tmp")
    await bob.join("tmp")
    await bob.leave("tmp")
    assert "tmp" not in bob.rooms
    who = await alice.who("tmp")
    assert who is not None
    assert [m.nick for m in who.members] == ["alice"]


async def test_direct_message(pair: tuple[ChatClient, ChatClient]) -> None:
    """tell() reaches only its recipient, as Told, and is acked to the sender."""
    alice, bob = pair
    bob_events = Recorder(bob)
    entry = await alice.tell("bob", "psst", wait=True)
    assert entry.state is DeliveryState.ACKNOWLEDGED
    await wait_until(lambda: bob_events.of(Told))
    told = bob_events.of(Told)[0]
    assert (told.nick, told.to, told.text, told.id) == ("alice", "bob", "psst", entry.id)


async def test_taken_nick_is_refused_at_first_login(server: LiveServer) -> None:
    """A second client with a nick in use gets LoginRefused(nick_taken) from connect()."""
    async with ChatClient(server.host, server.port, "dora", options=FAST):
        late = ChatClient(server.host, server.port, "DORA", options=FAST)
        with pytest.raises(LoginRefused) as refused:
            await late.connect()
        assert refused.value.code == "nick_taken"


async def test_no_server_fails_connect_with_a_clear_error(server: LiveServer) -> None:
    """connect() to a port where nothing listens raises ConnectionLost instead of retrying forever."""
    from chat_client import ConnectionLost

    port = server.port
    await server.astop()
    client = ChatClient("127.0.0.1", port, "eve", options=FAST)
    with pytest.raises(ConnectionLost, match="cannot connect"):
        await client.connect()


async def test_invalid_requests_are_refused_before_sending(pair: tuple[ChatClient, ChatClient]) -> None:
    """Text over the server's limit, an empty text and a bad room name raise InvalidRequest locally."""
    alice, _ = pair
    limit = alice.limits.max_text
    with pytest.raises(InvalidRequest) as too_long:
        await alice.say("lobby", "x" * (limit + 1))
    assert too_long.value.code == "too_long"
    with pytest.raises(InvalidRequest):
        await alice.say("lobby", "")
    with pytest.raises(InvalidRequest) as bad_room:
        await alice.join("no spaces")
    assert bad_room.value.code == "invalid_room"
    assert alice.outbox == ()
    entry = await alice.say("lobby", "x" * limit, wait=True)  # exactly at the limit: accepted
    assert entry.state is DeliveryState.ACKNOWLEDGED


async def test_refused_message_is_marked_failed(pair: tuple[ChatClient, ChatClient]) -> None:
    """A message to a room we are not in is refused by the server and its entry marked failed."""
    alice, _ = pair
    recorder = Recorder(alice)
    entry = await alice.say("nowhere", "hello?")
    await wait_until(lambda: any(e.entry.state is DeliveryState.FAILED for e in recorder.of(OutboxChanged)))
    failed = recorder.of(OutboxChanged)[-1].entry
    assert failed.client_msg_id == entry.client_msg_id
    assert failed.error_code == "not_in_room"
    assert alice.outbox == ()


async def test_history_paging_backwards(pair: tuple[ChatClient, ChatClient]) -> None:
    """fetch_history(before=...) returns older messages, oldest first, and says whether more exist."""
    alice, _ = pair
    await alice.join("log")
    ids = [(await alice.say("log", f"m{i}", wait=True)).id for i in range(6)]
    page = await alice.fetch_history("log", before=ids[-1], limit=3)
    assert page is not None
    assert [m.text for m in page.messages] == ["m2", "m3", "m4"]
    assert page.more
    older = await alice.fetch_history("log", before=page.messages[0].id, limit=10)
    assert older is not None
    assert [m.text for m in older.messages] == ["m0", "m1"]


async def test_joined_is_seen_by_existing_members(pair: tuple[ChatClient, ChatClient]) -> None:
    """Existing members get Joined for a newcomer."""
    alice, bob = pair
    recorder = Recorder(alice)
    await alice.join("hall")
    await bob.join("hall")
    await wait_until(lambda: any(e.nick == "bob" and e.room == "hall" for e in recorder.of(Joined)))


async def test_events_end_with_closed(server: LiveServer) -> None:
    """After close(), events() yields Closed last and then stops."""
    client = ChatClient(server.host, server.port, "finn", options=FAST)
    await client.connect()
    await client.close("bye")
    events = [event async for event in client.events()]
    assert isinstance(events[0], Connected)
    assert isinstance(events[-1], Closed)
    assert [event async for event in client.events()] == []


async def test_invalid_nick_is_refused_before_connecting(server: LiveServer) -> None:
    """A nick that breaks the rules raises InvalidRequest from connect(), with the protocol's code."""
    client = ChatClient(server.host, server.port, "no spaces", options=FAST)
    with pytest.raises(InvalidRequest) as refused:
        await client.connect()
    assert refused.value.code == "invalid_nick"
