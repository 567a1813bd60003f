"""A Hypothesis state machine: random join/leave/say/nick/disconnect sequences over several clients, with the
room membership the server reports checked against a model after every step."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import (
    Ack,
    ChangeNick,
    Error,
    Join,
    Leave,
    Left,
    NickChanged,
    RoomState,
    Say,
    Welcome,
    Who,
    fold,
)

from .client import ChatTestClient, wait_until
from .conftest import TEST_SETTINGS

SLOTS = st.integers(min_value=0, max_value=3)
NICKS = st.sampled_from(["ann", "Ann", "bob", "cy", "dee", "ANN"])
ROOMS = st.sampled_from(["r1", "R1", "r2", "r3"])


class ChatMachine(RuleBasedStateMachine):
    """The model: which slot is connected under which nick, and in which rooms (by folded name)."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        config = ServerConfig(**{**TEST_SETTINGS, "data_dir": self.folder, "max_clients_per_ip": 16})
        self.server = ChatServer(config)
        self.server.start()
        self.clients: dict[int, ChatTestClient] = {}
        self.nicks: dict[int, str] = {}
        self.rooms: dict[int, set[str]] = {}
        self.ref = 0

    def teardown(self) -> None:
        """Close the clients, stop the server, remove its folder."""
        for client in self.clients.values():
            client.close()
        self.server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def next_ref(self) -> int:
        """A fresh request reference."""
        self.ref += 1
        return self.ref

    def nick_in_use(self, nick: str, other_than: int | None = None) -> bool:
        """True if a connected slot other than `other_than` holds `nick` (folded)."""
        return any(fold(n) == fold(nick) for slot, n in self.nicks.items() if slot != other_than)

    @rule(slot=SLOTS, nick=NICKS)
    def connect(self, slot: int, nick: str) -> None:
        """Connect a free slot; a nick in use is refused (fatal), else welcomed."""
        if slot in self.clients:
            return
        client = ChatTestClient(self.server.address)
        ref = self.next_ref()
        client.hello(nick, rooms=[], ref=ref)
        if self.nick_in_use(nick):
            assert client.error("nick_taken").fatal is True
            client.wait_closed()
            client.close()
            return
        assert client.recv(Welcome, ref=ref).nick == nick
        self.clients[slot], self.nicks[slot], self.rooms[slot] = client, nick, set()

    @rule(slot=SLOTS, room=ROOMS)
    def join(self, slot: int, room: str) -> None:
        """Join a room (a rejoin is fine)."""
        if slot not in self.clients:
            return
        ref = self.next_ref()
        self.clients[slot].send(Join(room=room, ref=ref))
        self.clients[slot].recv(RoomState, ref=ref)
        self.rooms[slot].add(fold(room))

    @rule(slot=SLOTS, room=ROOMS)
    def leave(self, slot: int, room: str) -> None:
        """Leave a room: Left if a member, not_in_room otherwise."""
        if slot not in self.clients:
            return
        ref = self.next_ref()
        client = self.clients[slot]
        client.send(Leave(room=room, ref=ref))
        if fold(room) in self.rooms[slot]:
            client.recv_until(lambda m: isinstance(m, Left) and fold(m.room) == fold(room))
            self.rooms[slot].discard(fold(room))
        else:
            assert client.error("not_in_room").ref == ref

    @rule(
        slot=SLOTS, room=ROOMS, text=st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1)
    )
    def say(self, slot: int, room: str, text: str) -> None:
        """Say something: acked if a member, refused otherwise."""
        if slot not in self.clients:
            return
        ref = self.next_ref()
        client = self.clients[slot]
        client.send(Say(room=room, text=text, ref=ref))
        reply = client.recv_until(lambda m: isinstance(m, Ack | Error) and m.ref == ref)
        assert isinstance(reply, Ack) == (fold(room) in self.rooms[slot])

    @rule(slot=SLOTS, nick=NICKS)
    def change_nick(self, slot: int, nick: str) -> None:
        """Change nick: nick_taken if another slot holds it, else NickChanged."""
        if slot not in self.clients:
            return
        ref = self.next_ref()
        client = self.clients[slot]
        client.send(ChangeNick(nick=nick, ref=ref))
        if self.nick_in_use(nick, other_than=slot):
            assert client.error("nick_taken").ref == ref
        else:
            old = self.nicks[slot]
            changed = client.recv_until(lambda m: isinstance(m, NickChanged) and m.old == old)
            assert isinstance(changed, NickChanged)
            assert changed.new == nick
            self.nicks[slot] = nick

    @rule(slot=SLOTS)
    def disconnect(self, slot: int) -> None:
        """Drop a connection and wait until the server has noticed."""
        client = self.clients.pop(slot, None)
        if client is None:
            return
        client.close()
        del self.nicks[slot], self.rooms[slot]
        wait_until(lambda: self.server.stats().logged_in == len(self.clients), 5, "the server to notice")

    @invariant()
    def membership_matches_model(self) -> None:
        """Every room's members, as the server reports them, equal the model's."""
        if not self.clients:
            return
        asker_slot = min(self.clients)
        asker = self.clients[asker_slot]
        for room in ("r1", "r2", "r3"):
            ref = self.next_ref()
            asker.send(Who(room=room, ref=ref))
            reply = asker.recv_until(lambda m, ref=ref: isinstance(m, RoomState | Error) and m.ref == ref)
            expected = {fold(self.nicks[s]) for s, rooms in self.rooms.items() if room in rooms}
            got = {fold(m.nick) for m in reply.members} if isinstance(reply, RoomState) else set()
            assert got == expected, f"room {room}"
        for client in self.clients.values():
            client.pending.clear()  # announcements were checked by the rules that expect them


ChatMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_chat_state_machine = ChatMachine.TestCase
