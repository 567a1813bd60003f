"""Replies, edits, deletions and reactions through the client library and the UI-free model, against a real
server: every operation between two clients, the refusals, exactly-once delivery of what happened while a
client was away, a history page that matches the live view, the commands (`/reply`, `/edit`, `s/old/new/`,
`/react`, `/unreact`, `/delete`) and the plain mode's lines."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from chat_client import ChatClient
from chat_client.model.chat import ChatModel, Line, reactions_summary, room_key, who_reacted
from chat_client.model.controller import Controller
from chat_client.net.errors import InvalidRequest, ServerError
from chat_client.net.events import Connected
from chat_client.plain.linemode import run_plain
from chat_lab.proxy import FaultProxy
from shared import Deleted, Edited, Reacted, Unreacted
from tests.waiting import wait_until

from .helpers import LiveServer, run_plain_captured
from .test_library import FAST

ROOM = "talk"


class Watched:
    """A client whose events feed a `ChatModel` (as the TUI and the plain mode do), and are kept."""

    def __init__(self, client: ChatClient, room: str = ROOM) -> None:
        self.client = client
        self.room = room
        self.model = ChatModel(client.nick)
        self.events: list[object] = []
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for event in self.client.events():
            self.events.append(event)
            self.model.apply(event)

    def line(self, message_id: int, room: str | None = None) -> Line | None:
        buffer = self.model.buffers.get(room_key(room or self.room))
        return buffer.find(message_id) if buffer is not None else None

    def view(self, room: str | None = None) -> dict[int, tuple[object, ...]]:
        """What the model shows of each message of `room`: its text, marks, reply and reactions."""
        buffer = self.model.buffers.get(room_key(room or self.room))
        if buffer is None:
            return {}
        return {
            line.id: (
                line.nick,
                line.text,
                line.deleted,
                line.edited is not None,
                line.reply_to,
                tuple((r.reaction, tuple(sorted(r.nicks))) for r in line.reactions),
            )
            for line in buffer.lines
            if line.id is not None and line.nick is not None
        }

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [event for event in self.events if isinstance(event, kind)]


class GatedInput(io.TextIOBase):
    """Standard input for the line mode whose lines come once `gate` was printed (read on the mode's
    input thread, which waits for it with a deadline, as a user would wait to see the message)."""

    def __init__(self, printed: io.StringIO, gate: str, lines: list[str], timeout: float = 20.0) -> None:
        self._printed, self._gate, self._lines, self._timeout = printed, gate, lines, timeout

    def __iter__(self) -> Iterator[str]:
        deadline = time.monotonic() + self._timeout
        while self._gate not in self._printed.getvalue() and time.monotonic() < deadline:
            threading.Event().wait(0.01)  # polling the output with a deadline (an input thread, no loop)
        yield from self._lines


@pytest.fixture
async def pair(server: LiveServer) -> AsyncIterator[tuple[Watched, Watched]]:
    async with (
        ChatClient(server.host, server.port, "alice", rooms=[ROOM], options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", rooms=[ROOM], options=FAST) as bob,
    ):
        yield Watched(alice), Watched(bob)


async def said(watched: Watched, text: str, **fields: object) -> int:
    """Say `text` in ROOM and return its id once the server stored it."""
    entry = await watched.client.say(ROOM, text, wait=True, **fields)  # type: ignore[arg-type]
    assert entry.id is not None
    return entry.id


async def test_every_operation_between_two_clients(pair: tuple[Watched, Watched]) -> None:
    alice, bob = pair
    first = await said(alice, "the first message, with a tpyo")
    await wait_until(lambda: bob.line(first) is not None, 10, "bob sees the message")
    reply = await said(bob, "an answer", reply_to=first)
    await wait_until(lambda: alice.line(reply) is not None, 10, "alice sees the reply")
    line = alice.line(reply)
    assert line is not None
    assert line.reply_to == first
    assert alice.model.reply_quote(room_key(ROOM), line) == "↳ alice: the first message, with a tpyo"

    ack = await alice.client.edit(first, "the first message, with a typo fixed")
    assert ack is not None
    await wait_until(lambda: bool(bob.of(Edited)), 10, "bob hears of the edit")
    assert bob.of(Edited)[0].id == ack.id
    shown = bob.line(first)
    assert shown is not None
    assert shown.text == "the first message, with a typo fixed"
    assert shown.edited is not None

    await bob.client.react(first, "👍")
    await alice.client.react(first, "👍")
    await alice.client.react(first, ":tada:")
    await wait_until(lambda: len(bob.of(Reacted)) == 3, 10, "three reactions")
    shown = bob.line(first)
    assert shown is not None
    assert reactions_summary(shown) == "👍 2  :tada: 1"
    assert who_reacted(shown, "👍") == ("bob", "alice")
    await bob.client.unreact(first, "👍")
    await wait_until(lambda: bool(alice.of(Unreacted)), 10, "the unreaction")
    shown = alice.line(first)
    assert shown is not None
    assert who_reacted(shown, "👍") == ("alice",)

    await alice.client.delete(first)
    await wait_until(lambda: bool(bob.of(Deleted)), 10, "the deletion")
    for watched in (alice, bob):
        tombstone = watched.line(first)
        assert tombstone is not None
        assert tombstone.deleted
        assert tombstone.text == ""
        assert tombstone.reactions == ()
    reply_line = bob.line(reply)
    assert reply_line is not None
    assert bob.model.reply_quote(room_key(ROOM), reply_line) == "↳ alice: message deleted"
    assert alice.view() == bob.view()


async def test_refusals(pair: tuple[Watched, Watched]) -> None:
    alice, bob = pair
    mine = await said(alice, "alice's")
    with pytest.raises(ServerError) as refused:
        await bob.client.edit(mine, "not yours")
    assert refused.value.code == "forbidden"
    with pytest.raises(ServerError) as refused:
        await bob.client.delete(mine)
    assert refused.value.code == "forbidden"
    with pytest.raises(ServerError) as refused:
        await bob.client.unreact(mine, "👍")
    assert refused.value.code == "no_such_reaction"
    with pytest.raises(ServerError) as refused:
        await bob.client.react(10**12, "👍")
    assert refused.value.code == "no_such_message"
    with pytest.raises(InvalidRequest):
        await bob.client.react(mine, "not an emoji")  # checked before it is sent
    failed = await bob.client.say(ROOM, "a reply to nothing", reply_to=10**12)
    await wait_until(lambda: failed.client_msg_id not in {e.client_msg_id for e in bob.client.outbox}, 10)
    assert bob.line(mine) is not None
    assert bob.view()[mine][1] == "alice's"


async def test_what_happened_while_away_arrives_once_in_order(server: LiveServer, proxy: FaultProxy) -> None:
    async with (
        ChatClient(server.host, server.port, "alice", rooms=[ROOM], options=FAST) as alice_client,
        ChatClient("127.0.0.1", proxy.port, "bob", rooms=[ROOM], options=FAST) as bob_client,
    ):
        alice, bob = Watched(alice_client), Watched(bob_client)
        first = await said(alice, "before the cut")
        second = await said(alice, "also before")
        await wait_until(lambda: bob.line(second) is not None, 10, "bob has both")
        proxy.refuse = True
        await proxy.cut()
        await wait_until(lambda: not bob_client.connected, 10, "bob cut off")
        await alice.client.edit(first, "edited while bob was away")
        await alice.client.react(first, "🎉")
        await alice.client.delete(second)
        third = await said(alice, "after", reply_to=first)
        await alice.client.react(third, "👀")
        connections = len(bob.of(Connected))
        proxy.refuse = False
        await wait_until(lambda: len(bob.of(Connected)) > connections, 20, "bob reconnected")
        await wait_until(lambda: bob.line(third) is not None and bob.line(third).reactions, 10, "caught up")
        # Each event came once (live or in the resume's history, never both), in id order.
        live_ids = [e.id for e in bob.events if isinstance(e, Edited | Deleted | Reacted | Unreacted)]
        paged = [
            e.id for h in bob.events if hasattr(h, "events") and getattr(h, "events", None) for e in h.events
        ]
        seen = live_ids + paged
        assert len(seen) == len(set(seen))
        assert paged == sorted(paged)
        assert bob.view() == alice.view()


async def test_a_history_page_after_edits_matches_the_live_view(
    pair: tuple[Watched, Watched], server: LiveServer
) -> None:
    alice, bob = pair
    ids = [await said(alice, f"message {n}") for n in range(4)]
    await alice.client.edit(ids[0], "message 0, edited")
    await bob.client.react(ids[1], "👍")
    await alice.client.react(ids[1], "👍")
    await bob.client.unreact(ids[1], "👍")
    await alice.client.delete(ids[2])
    reply = await said(bob, "on message 3", reply_to=ids[3])
    await wait_until(lambda: alice.line(reply) is not None, 10, "alice has everything")
    async with ChatClient(server.host, server.port, "carol", rooms=[ROOM], options=FAST) as carol_client:
        carol = Watched(carol_client)
        await wait_until(lambda: carol.line(reply) is not None, 10, "carol's backfill")
        assert carol.view() == alice.view()
        # A page fetched again (scrolling back over it) changes nothing.
        before = carol.view()
        await carol_client.fetch_history(ROOM, limit=50)
        assert carol.view() == before


async def test_commands_reply_edit_substitute_react_delete(pair: tuple[Watched, Watched]) -> None:
    alice, bob = pair
    controller = Controller(bob.client, bob.model)
    bob.model.switch(room_key(ROOM))
    question = await said(alice, "who brings the cake?")
    await wait_until(lambda: bob.line(question) is not None, 10)
    await controller.run(f"/reply {question} I do, with a candel")
    await wait_until(lambda: bob.model.last_own_message() is not None, 10, "bob's reply stored")
    own = bob.model.last_own_message()
    assert own is not None
    assert own.reply_to == question
    await controller.run("s/candel/candle/")
    await wait_until(lambda: alice.line(own.id or 0) is not None and alice.view()[own.id or 0][3], 10)
    assert alice.view()[own.id or 0][1] == "I do, with a candle"
    await controller.run(f"/react #{question} 🎂")
    await wait_until(lambda: alice.view()[question][5] == (("🎂", ("bob",)),), 10, "the reaction")
    await controller.run(f"/unreact {question} 🎂")
    await wait_until(lambda: alice.view()[question][5] == (), 10, "the reaction taken off")
    await controller.run(f"/edit {own.id} I do, and a candle")
    await wait_until(lambda: alice.view()[own.id or 0][1] == "I do, and a candle", 10, "the edit")
    await controller.run(f"/delete {own.id}")
    await wait_until(lambda: alice.view()[own.id or 0][2], 10, "the deletion")
    # A refusal comes back as an error line, not an exception.
    outcome = await controller.run("/react 12 nope")
    assert any(
        "usage: /react ID REACTION" in line.text for lines in outcome.changes.lines.values() for line in lines
    )
    await controller.run(f"/edit {question} hijacked")
    await wait_until(
        lambda: any(getattr(e, "code", None) == "forbidden" for e in bob.events),
        10,
        "the refusal as an event",
    )


async def test_plain_mode_prints_ids_replies_reactions_edits_and_deletions(server: LiveServer) -> None:
    async with ChatClient(server.host, server.port, "alice", rooms=[ROOM], options=FAST) as alice_client:
        alice = Watched(alice_client)
        first = await said(alice, "plain and simple")
        doomed = await said(alice, "soon gone")
        # The commands are read once the backfill is shown: a /reply finds its message's room in the model.
        printed = io.StringIO()
        source = GatedInput(
            printed,
            f"#{first} {ROOM} <alice>",
            [f"/react {first} 👍\n", f"/reply {first} a reply from the pipe\n", "done\n"],
        )
        status = await run_plain(
            server.host, server.port, "bob", room=ROOM, source=source, out=printed, err=io.StringIO()
        )
        assert status == 0
        await alice.client.edit(first, "plain and simple, edited")
        await alice.client.delete(doomed)
        later = await run_plain_captured(server, "carol", room=ROOM, lines="bye\n")
    out = printed.getvalue().splitlines()
    assert any(line.endswith(f"#{first} {ROOM} <alice> plain and simple") for line in out), out
    assert any(f"{ROOM} -!- bob reacted 👍 to #{first}: 👍 1" in line for line in out), out
    at = next((i for i, line in enumerate(out) if line.endswith("<bob> a reply from the pipe")), None)
    assert at is not None, "\n".join(out)
    assert out[at + 1].strip() == f"↳ #{first} alice: plain and simple"
    shown = later.out.splitlines()
    edited = f"#{first} {ROOM} (edited) <alice> plain and simple, edited"
    assert any(line.endswith(edited) for line in shown), shown
    assert any(line.endswith(f"#{doomed} {ROOM} (message deleted) <alice>") for line in shown), shown
    assert any(line.strip() == "+ 👍 1 (bob)" for line in shown), shown
