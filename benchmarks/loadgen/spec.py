"""What one load run is: the workload parameters, who is in which room, and how many deliveries to expect.

Everything here is plain arithmetic shared by the coordinator and the workers, so both agree on the schedule
without talking: client `i` is nick `u000i..` in room `i % rooms`; clients `0 .. senders-1` are the senders
(so the senders are spread over the rooms); message `k` (counting from 0) is sent by sender `k % senders` at
`t0 + k / rate` seconds. Every other member of the sender's room must receive it exactly once; the sender
gets an `ack` instead (the server does not echo a message to its sender).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every message text starts with this marker, then the 19-digit send time (CLOCK_MONOTONIC ns, which is
#: system-wide on Linux, so any process can compute the latency), a dot and the 10-digit message number.
MARKER = b"~T"
MARKER_LEN = len(MARKER) + 19 + 1 + 10
#: Chat text bytes per message, marker included (the C reference instrument's default, too).
DEFAULT_TEXT_BYTES = 64
DEFAULT_ROOM = "bench"
#: Clients connecting and logging in at the same time, per worker process.
DEFAULT_CONCURRENCY = 32
DEFAULT_LOGIN_TIMEOUT = 60.0
DEFAULT_DRAIN_TIMEOUT = 5.0
DEFAULT_IDLE_TIMEOUT = 2.0
#: Only loopback targets are allowed: this tool floods whatever it is pointed at.
LOOPBACK_PREFIX = "127."


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    """One open-loop run: `clients` in `rooms`, `senders` sending `rate` msg/s in all for `duration` s."""

    host: str = "127.0.0.1"
    port: int
    #: More servers of one cluster (docs/cluster.md): client i connects to ``(port, *ports)[i % n]``, so the
    #: clients are split evenly over the servers (every room has members on each).
    ports: tuple[int, ...] = ()
    clients: int
    rooms: int = 1
    senders: int
    rate: float
    duration: float
    text_bytes: int = DEFAULT_TEXT_BYTES
    workers: int = 2
    concurrency: int = DEFAULT_CONCURRENCY
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    room_prefix: str = DEFAULT_ROOM
    #: Nicks are `nick_prefix` + the 6-digit client index; change it to run twice against one server.
    nick_prefix: str = "u"
    #: Extra clients in the first room that log in and then never read (the fairness test): they count in no
    #: expected delivery; what they do to everyone else's latency is the point.
    stalled: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        if not self.host.startswith(LOOPBACK_PREFIX):
            raise ValueError(f"the load generator targets loopback (127.x.x.x) only, not {self.host!r}")
        if not 1 <= self.rooms <= self.clients:
            raise ValueError("need 1 <= rooms <= clients")
        if not 1 <= self.senders <= self.clients:
            raise ValueError("need 1 <= senders <= clients")
        if self.rate <= 0 or self.duration <= 0:
            raise ValueError("rate and duration must be positive")
        if self.text_bytes < MARKER_LEN + 1:
            raise ValueError(f"text_bytes must be at least {MARKER_LEN + 1} (the marker and a space)")
        if not 1 <= self.workers <= self.clients:
            raise ValueError("need 1 <= workers <= clients")
        if self.stalled < 0:
            raise ValueError("stalled must not be negative")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def needle(self) -> bytes:
        """What the receiver looks for in a frame: the `text` key, the text's msgpack header and the marker.

        The marker alone is not enough: two bytes like "~T" occur by chance in binary fields (timestamps).
        """
        size = self.text_bytes
        header = (
            bytes([0xA0 | size])
            if size < 32
            else b"\xd9" + bytes([size])
            if size < 256
            else b"\xda" + size.to_bytes(2, "big")
        )
        return b"\xa4text" + header + MARKER

    @property
    def total_messages(self) -> int:
        """How many messages the senders send in all."""
        return max(1, round(self.rate * self.duration))

    def room_index(self, client: int) -> int:
        """The number of the room client `client` joins (stalled clients all join room 0)."""
        return client % self.rooms if client < self.clients else 0

    def room_of(self, client: int) -> str:
        """The room client `client` joins at login."""
        if self.rooms == 1:
            return self.room_prefix
        return f"{self.room_prefix}-{self.room_index(client):04d}"

    def port_of(self, client: int) -> int:
        """The port client `client` connects to."""
        if not self.ports:
            return self.port
        every = (self.port, *self.ports)
        return every[client % len(every)]

    def nick_of(self, client: int) -> str:
        """Client `client`'s nick."""
        return f"{self.nick_prefix}{client:06d}"

    def members(self, room_index: int) -> int:
        """How many clients are in room number `room_index`."""
        return self.clients // self.rooms + (1 if room_index < self.clients % self.rooms else 0)

    def messages_from(self, sender: int) -> int:
        """How many messages sender `sender` sends (round-robin over the senders)."""
        total, count = self.total_messages, self.senders
        return total // count + (1 if sender < total % count else 0)

    def expected_for(self, client: int) -> int:
        """How many messages client `client` must receive: all from the other senders in its room."""
        if client >= self.clients:
            return 0  # a stalled client: whatever reaches it is not counted
        room = client % self.rooms
        return sum(
            self.messages_from(sender) for sender in range(room, self.senders, self.rooms) if sender != client
        )

    def expected_deliveries(self) -> int:
        """How many deliveries the whole run must make: each message times (its room's members - 1)."""
        return sum(
            self.messages_from(sender) * (self.members(sender % self.rooms) - 1)
            for sender in range(self.senders)
        )

    def clients_of(self, worker: int) -> list[int]:
        """The clients worker process `worker` owns (the stalled ones all belong to worker 0)."""
        owned = list(range(worker, self.clients, self.workers))
        if worker == 0:
            owned += range(self.clients, self.clients + self.stalled)
        return owned
