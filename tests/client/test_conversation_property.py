"""A property test over random conversations: any sequence of says, replies, edits, deletions, reactions and
unreactions by three people, against a real server, leaves every client's model (fed live) and a late
joiner's (fed by the history page) showing exactly what a reference model of the rules says; every refusal
is the one the rules predict."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_client import ChatClient
from chat_client.net.errors import ServerError
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_conversation_library import Watched
from .test_library import FAST

NICKS = ("alice", "bob", "carol")  # alice joins first: the room's operator
REACTIONS = ("👍", "🎉", ":eyes:")
TEXTS = st.text(alphabet="abc xyz", min_size=1, max_size=6).filter(lambda t: t.strip() != "")
ROOMS = itertools.count()


@dataclass
class Expected:
    """What the rules say a message shows now."""

    author: str
    text: str
    reply_to: int | None
    deleted: bool = False
    edited: bool = False
    reactions: dict[str, list[str]] = field(default_factory=dict)

    def view(self) -> tuple[object, ...]:
        shown = tuple((r, tuple(sorted(nicks))) for r, nicks in self.reactions.items() if nicks)
        return (
            self.author,
            "" if self.deleted else self.text,
            self.deleted,
            self.edited,
            self.reply_to,
            shown,
        )


actor = st.integers(0, 2)
target = st.integers(0, 3)  # few messages, many changes to each
operations = st.lists(
    st.one_of(
        st.tuples(st.just("say"), actor, TEXTS, st.one_of(st.none(), target)),
        st.tuples(st.just("edit"), actor, target, TEXTS),
        st.tuples(st.just("delete"), actor, target),
        st.tuples(st.just("react"), actor, target, st.sampled_from(REACTIONS)),
        st.tuples(st.just("unreact"), actor, target, st.sampled_from(REACTIONS)),
    ),
    min_size=3,
    max_size=20,
)
#: Every conversation starts with a message of alice's and one of bob's, so the changes have targets.
OPENING: list[tuple[object, ...]] = [("say", 0, "first", None), ("say", 1, "second", 0)]


async def play(server: LiveServer, ops: list[tuple[object, ...]]) -> None:
    room = f"prop{next(ROOMS)}"
    clients = [ChatClient(server.host, server.port, nick, rooms=[room], options=FAST) for nick in NICKS]
    for client in clients:  # one after the other: alice is the first joiner, the operator
        await client.connect()
    try:
        watched = [Watched(client, room) for client in clients]
        ids: list[int] = []
        expected: dict[int, Expected] = {}
        for op in ops:
            kind, who = op[0], NICKS[op[1]]  # type: ignore[index]
            client = clients[op[1]]  # type: ignore[index]
            if kind == "say":
                reply_to = ids[op[3] % len(ids)] if op[3] is not None and ids else None  # type: ignore[operator]
                entry = await client.say(room, str(op[2]), reply_to=reply_to, wait=True)
                assert entry.id is not None
                ids.append(entry.id)
                expected[entry.id] = Expected(who, str(op[2]), reply_to)
                continue
            if not ids:
                continue
            message_id = ids[op[2] % len(ids)]  # type: ignore[operator]
            message = expected[message_id]
            predicted = _predict(kind, who, message, op)
            try:
                if kind == "edit":
                    await client.edit(message_id, str(op[3]))
                elif kind == "delete":
                    await client.delete(message_id)
                elif kind == "react":
                    await client.react(message_id, str(op[3]))
                else:
                    await client.unreact(message_id, str(op[3]))
                outcome = None
            except ServerError as refused:
                outcome = refused.code
            assert outcome == predicted, (op, outcome, predicted)
            if outcome is None:
                _apply(kind, who, message, op)
        # A last message: every client has applied everything before it (one ordered stream).
        marker = await clients[0].say(room, "the end", wait=True)
        assert marker.id is not None
        reference = {message_id: message.view() for message_id, message in expected.items()}
        for each in watched:
            await wait_until(lambda w=each: w.line(marker.id or 0) is not None, 10, "the end")  # type: ignore[misc]
            shown = {k: v for k, v in each.view().items() if k != marker.id}
            assert shown == reference, (each.client.nick, ops)
        async with ChatClient(server.host, server.port, "dave", rooms=[room], options=FAST) as late:
            joiner = Watched(late, room)
            await wait_until(lambda: joiner.line(marker.id or 0) is not None, 10, "the late joiner's page")
            shown = {k: v for k, v in joiner.view().items() if k != marker.id}
            assert shown == reference, ("the late joiner", ops)
    finally:
        for client in clients:
            await client.close()


def _predict(kind: object, who: str, message: Expected, op: tuple[object, ...]) -> str | None:
    """The refusal the rules give (docs/protocol.md, section 6.3), or None for success."""
    if message.deleted:
        return "no_such_message"
    if kind == "edit":
        return None if who == message.author else "forbidden"
    if kind == "delete":
        return None if who in (message.author, "alice") else "forbidden"
    if kind == "unreact" and who not in message.reactions.get(str(op[3]), []):
        return "no_such_reaction"
    return None


def _apply(kind: object, who: str, message: Expected, op: tuple[object, ...]) -> None:
    if kind == "edit":
        message.text, message.edited = str(op[3]), True
    elif kind == "delete":
        message.deleted, message.reactions = True, {}
    elif kind == "react":
        nicks = message.reactions.setdefault(str(op[3]), [])
        if who not in nicks:
            nicks.append(who)
    else:
        message.reactions[str(op[3])].remove(who)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_every_client_shows_what_the_rules_say(server: LiveServer, ops: list[tuple[object, ...]]) -> None:
    asyncio.run(play(server, OPENING + ops))
