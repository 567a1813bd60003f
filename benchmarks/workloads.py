"""The standard workloads W1-W4 (issue 6), each a list of load points, and their `--quick` versions.

| name | clients | rooms | senders | rates (msg/s, all senders) | what it shows |
|---|---|---|---|---|---|
| W1 room | 100 | 1 | 10 | 1,000 / 5,000 / 20,000 | fan-out throughput and latency in one busy room |
| W2 big room | 500 | 1 | 5 | 200 / 1,000 | a large fan-out per message |
| W3 idle scale | 2,000 | 20 (of 100) | 1 | 100 | login time and memory per connection |
| W4 many rooms | 1,000 | 100 (of 10) | 100 | 1,000 / 5,000 | many small rooms: per-message cost |

W3 puts its 2,000 clients in 20 rooms of 100 rather than one room: in one room of 2,000, every login is
broadcast to everyone already there (2 million `joined` frames for one login wave) and the member list
would pass the protocol's 1,000-entry list limit; 100 people per room is a large LAN room already.
W4 has one sender per room, so every room is busy.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds of sending per load point in a full run.
DEFAULT_DURATION = 10.0


@dataclass(frozen=True, slots=True)
class Workload:
    """One standard workload: who is connected, who sends, and the offered rates to try."""

    name: str
    title: str
    clients: int
    rooms: int
    senders: int
    rates: tuple[float, ...]

    def quick(self) -> Workload:
        """A few-second version for smoke tests: at most 20 clients, the lowest rate scaled down."""
        clients = min(self.clients, 20)
        rooms = max(1, min(self.rooms, clients // 5))
        senders = min(self.senders, max(rooms, 2), clients)
        return Workload(
            self.name, self.title + " (quick)", clients, rooms, senders, (min(self.rates[0], 200.0),)
        )


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("W1", "room", 100, 1, 10, (1_000.0, 5_000.0, 20_000.0)),
        Workload("W2", "big room", 500, 1, 5, (200.0, 1_000.0)),
        Workload("W3", "idle scale", 2_000, 20, 1, (100.0,)),
        Workload("W4", "many rooms", 1_000, 100, 100, (1_000.0, 5_000.0)),
    )
}
