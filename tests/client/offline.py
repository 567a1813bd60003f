"""A chat screen filled from fixed events, with no server: for snapshots and rendering tests.

The events are what a server would send; building them here keeps timestamps and ids fixed, so the
screens render the same on every run.
"""

from __future__ import annotations

from chat_client.model.chat import ChatModel
from chat_client.net.events import Connected, LagMeasured, OutboxChanged
from chat_client.net.outbox import DeliveryState, OutboxEntry
from chat_client.tui.screens.chat import ChatScreen
from shared import History, Joined, Member, RoomState, Said, Told, TopicChanged, Welcome

#: 2025-11-21 18:33:20 UTC, in milliseconds.
TS = 1_763_750_000_000
NOW = TS / 1000 + 600


def scripted_model() -> ChatModel:
    """Alice in #lobby and #dev with some history, a DM from bob, unread messages and a pending message."""
    model = ChatModel("alice", clock=lambda: NOW)
    welcome = Welcome(version=1, nick="alice", server="mpchat on lanbox", ts=TS)
    members = (
        Member(nick="alice"),
        Member(nick="bob"),
        Member(nick="carol", away="lunch"),
        Member(nick="dave"),
    )
    events: list[object] = [
        Connected(welcome, resumed=False),
        LagMeasured(0.004),
        Joined(room="lobby", nick="alice", ts=TS),
        RoomState(room="lobby", topic="Friday demo at 15:00, bring snacks", members=members),
        History(
            room="lobby",
            messages=(
                Said(id=1, room="lobby", nick="bob", text="morning all", ts=TS),
                Said(id=2, room="lobby", nick="carol", text="hi bob! coffee?", ts=TS + 60_000),
                Said(id=3, room="lobby", nick="dave", text="stretches", action=True, ts=TS + 120_000),
                Said(id=4, room="lobby", nick="bob", text="alice: did the build pass?", ts=TS + 180_000),
            ),
        ),
        Joined(room="dev", nick="alice", ts=TS),
        Said(id=5, room="dev", nick="carol", text="merged the parser fix", ts=TS + 200_000),
        Said(id=6, room="dev", nick="bob", text="alice can you review #42?", ts=TS + 210_000),
        Told(id=7, nick="bob", to="alice", text="lunch later?", ts=TS + 220_000),
        TopicChanged(room="lobby", topic="Friday demo at 15:00, bring snacks", nick="bob", ts=TS + 230_000),
        OutboxChanged(
            OutboxEntry(
                client_msg_id="c1",
                text="yes, all green",
                room="lobby",
                created=NOW,
                state=DeliveryState.ACKNOWLEDGED,
                id=8,
                ts=TS + 240_000,
            )
        ),
        OutboxChanged(OutboxEntry(client_msg_id="c2", text="shipping it now", room="lobby", created=NOW)),
    ]
    for event in events:
        model.apply(event)  # type: ignore[arg-type]
    model.switch("#lobby")
    return model


def offline_screen(model: ChatModel | None = None) -> ChatScreen:
    """A chat screen showing `model` (the scripted one by default), with no connection."""
    return ChatScreen(model or scripted_model(), None, address="192.168.1.20:7878")
