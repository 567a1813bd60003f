"""Many clients in several rooms chatting at once: every message reaches exactly the members of its room,
exactly once, in the same (id) order for everyone."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

import pytest

from chat_server.server import ChatServer
from shared import Ack, Join, RoomState, Said, Say

from .client import ChatTestClient

ROOMS = ["red", "green", "blue"]
CLIENTS = 12
MESSAGES = 40


def rooms_of(number: int) -> list[str]:
    """Client n is in one or two rooms, so rooms overlap."""
    first = ROOMS[number % 3]
    return [first] if number % 2 else [first, ROOMS[(number + 1) % 3]]


class Chatter(threading.Thread):
    """Sends its messages (pipelined, round-robin over its rooms), then reads until it has all it expects."""

    def __init__(self, address: tuple[str, int], number: int) -> None:
        super().__init__(name=f"chatter-{number}", daemon=True)
        self.nick = f"c{number}"
        self.rooms = rooms_of(number)
        self.client = ChatTestClient(address)
        self.client.login(self.nick, rooms=[])
        for ref, room in enumerate(self.rooms):
            self.client.send(Join(room=room, ref=ref))
            self.client.recv(RoomState, ref=ref)
        self.expected_said = 0
        self.start_gate = threading.Event()
        self.acked: dict[int, tuple[str, int]] = {}  # ref -> (room, id)
        self.received: dict[str, list[Said]] = defaultdict(list)
        self.failure: BaseException | None = None

    def run(self) -> None:
        """Send, then read until every expected message and ack arrived."""
        try:
            self.start_gate.wait(10)
            client = self.client
            for ref in range(MESSAGES):
                room = self.rooms[ref % len(self.rooms)]
                client.send(Say(room=room, text=f"{self.nick}:{ref}", ref=ref))
            said = 0
            while len(self.acked) < MESSAGES or said < self.expected_said:
                message = client.recv_until(lambda m: isinstance(m, Ack | Said), timeout=20)
                if isinstance(message, Ack):
                    assert message.ref is not None
                    self.acked[message.ref] = (self.rooms[message.ref % len(self.rooms)], message.id)
                elif isinstance(message, Said):
                    self.received[message.room].append(message)
                    said += 1
        except BaseException as error:  # reported by the test thread
            self.failure = error


@pytest.mark.parametrize("commit_batch", [1, 1024])
def test_concurrent_rooms_exactly_once_in_order(
    make_server: Callable[..., ChatServer], commit_batch: int
) -> None:
    """Every member of a room gets every other member's messages once, in id order; non-members none
    (whether the history thread commits one request at a time or a thousand)."""
    server = make_server(max_clients_per_ip=CLIENTS, commit_batch=commit_batch)
    chatters = [Chatter(server.address, number) for number in range(CLIENTS)]
    members = {room: [c for c in chatters if room in c.rooms] for room in ROOMS}
    for chatter in chatters:
        chatter.expected_said = sum(
            MESSAGES // len(other.rooms) * (1 if room in other.rooms else 0)
            for other in chatters
            if other is not chatter
            for room in chatter.rooms
        )
    try:
        for chatter in chatters:
            chatter.start()
        for chatter in chatters:
            chatter.start_gate.set()
        for chatter in chatters:
            chatter.join(30)
            assert chatter.failure is None, f"{chatter.nick}: {chatter.failure}"
            assert not chatter.is_alive()
        sent_ids: dict[str, dict[int, str]] = defaultdict(dict)  # room -> id -> sender
        for chatter in chatters:
            for room, message_id in chatter.acked.values():
                sent_ids[room][message_id] = chatter.nick
        all_ids = [i for ids in sent_ids.values() for i in ids]
        assert len(all_ids) == len(set(all_ids)) == CLIENTS * MESSAGES
        for room in ROOMS:
            for member in members[room]:
                got = [m.id for m in member.received[room]]
                expected = sorted(i for i, nick in sent_ids[room].items() if nick != member.nick)
                assert got == expected, f"{member.nick} in {room}"
                assert all(sent_ids[room][m.id] == m.nick for m in member.received[room])
        for chatter in chatters:
            assert set(chatter.received) <= set(chatter.rooms)
    finally:
        for chatter in chatters:
            chatter.client.close()
