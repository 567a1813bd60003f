"""The fault proxy: forwards TCP (or UDP) to a server and does to the bytes what bad networks do.

A real network delays, throttles, splits and merges, stalls, cuts and (rarely) corrupts. Loopback does none
of it, so a program that works on 127.0.0.1 may still be wrong. Put `FaultProxy` between a client and a
server and switch the faults on and off while they talk:

- `delay` and `jitter` (seconds): each block is held that long (plus a random part) before it goes on. On TCP
  the order is kept, as TCP keeps it; on UDP jitter reorders datagrams.
- `bandwidth` (bytes per second): the bytes go out no faster.
- `split` (bytes): every write is cut into pieces of at most N bytes (1: one byte at a time).
- `coalesce` (seconds): blocks are gathered for that long and written as one.
- `frozen`: nothing goes that way, not even the end of the connection; what arrives is held (up to
  `DEFAULT_HOLD_LIMIT` bytes, then TCP holds the sender back) and goes out in one write on `thaw()`.
- `discard`: bytes that way are thrown away; the connection stays open.
- `drop_after` (bytes): the connection is closed, both sides, once that many bytes went that way.
- `corrupt` (byte offset): that byte of each connection's stream (of each datagram, on UDP) is inverted.
- `loss`, `duplicate` (probabilities, UDP only): a datagram is lost, or sent twice.
- `observe` (library only): sees each block as it was read, before any fault, with its connection's
  number: what that side sent (a test decodes the server's frames with it and counts its errors).
- and for the whole proxy, `refuse` (new connections are closed at once) and `drop_at` (seconds: each
  connection is closed that long after it opened).

Each direction has its own `Faults`: `to_server` (upstream, "up") and `to_client` ("down"). They are read
for every block as it passes, so a change acts at once. Everything runs on one asyncio event loop: per TCP
connection one task reads each side and one task writes each side, with a queue between them (the queue is
where delayed, frozen and coalesced bytes wait). `ProxyThread` runs a proxy on its own loop in a thread, for
synchronous programs and tests.

The proxy is a teaching and testing tool: it listens on 127.0.0.1 unless told otherwise, and never on its
own on a public address.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Literal, TypeVar

#: Bytes read from a socket at a time.
DEFAULT_CHUNK = 65536
#: Bytes a frozen (or slow) direction holds before it stops reading, so TCP holds the sender back.
DEFAULT_HOLD_LIMIT = 1 << 20
#: Pieces per second when `bandwidth` is set and `split` is not: the rate is kept smooth, not in bursts.
BANDWIDTH_PIECES_PER_SECOND = 20
#: Seconds a duplicated datagram follows the original.
DUPLICATE_GAP = 0.001
#: Seconds `ProxyThread` waits for its loop to start, stop or answer.
THREAD_TIMEOUT = 10.0

Direction = Literal["up", "down", "both"]
T = TypeVar("T")


@dataclass(slots=True)
class Faults:
    """What happens to the bytes going one way (see the module docstring for each switch)."""

    delay: float = 0.0
    jitter: float = 0.0
    bandwidth: int = 0
    split: int = 0
    coalesce: float = 0.0
    frozen: bool = False
    discard: bool = False
    drop_after: int = 0
    corrupt: int = -1
    loss: float = 0.0
    duplicate: float = 0.0
    #: Library only: a filter applied to each block as it is read (after `corrupt`).
    mangle: Callable[[bytes], bytes] | None = None
    #: Library only: called with the connection's number (1, 2, ...: `connections` when it was accepted; on
    #: UDP, the sender's, in the order they were first heard) and each block as it was read, before any fault.
    observe: Callable[[int, bytes], None] | None = None

    def describe(self) -> str:
        """The switches that differ from their defaults, as `name=value` words."""
        default = Faults()
        words = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.name not in LIBRARY_ONLY and getattr(self, f.name) != getattr(default, f.name)
        ]
        return " ".join(words) or "clean"


#: The switches, by their command name, with how a command's value is read. Times are given in milliseconds
#: on the command line and the console, and kept in seconds.
SWITCHES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "delay": ("delay", lambda v: float(v) / 1000),
    "jitter": ("jitter", lambda v: float(v) / 1000),
    "bandwidth": ("bandwidth", int),
    "split": ("split", int),
    "coalesce": ("coalesce", lambda v: float(v) / 1000),
    "discard": ("discard", lambda v: _on_off(v)),
    "drop-after": ("drop_after", int),
    "corrupt": ("corrupt", int),
    "loss": ("loss", float),
    "duplicate": ("duplicate", float),
}
#: The `Faults` fields that are hooks for programs, not switches.
LIBRARY_ONLY = frozenset({"mangle", "observe"})
#: Switches that make no sense for datagrams, and the ones only datagrams have.
TCP_ONLY = frozenset({"bandwidth", "split", "coalesce", "drop-after", "drop-at"})
UDP_ONLY = frozenset({"loss", "duplicate"})


def _on_off(value: str) -> bool:
    if value in ("on", "1", "yes", "true"):
        return True
    if value in ("off", "0", "no", "false"):
        return False
    raise ValueError(f"expected on or off, not {value!r}")


@dataclass(slots=True)
class Stats:
    """What passed one way, over every connection (for the console's `status` and for tests)."""

    bytes_in: int = 0
    bytes_out: int = 0
    writes: int = 0
    largest_write: int = 0
    datagrams_lost: int = 0
    datagrams_duplicated: int = 0


@dataclass(eq=False)
class _Way:
    """One direction of one TCP connection: the queue between its reading task and its writing task."""

    faults: Faults
    stats: Stats
    writer: asyncio.StreamWriter
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # set while bytes may flow
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set when the queue or `ended` changes
    space: asyncio.Event = field(default_factory=asyncio.Event)  # set while the queue is under the limit
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    queued: int = 0
    seen: int = 0  # bytes read so far (the offsets `corrupt` and `drop_after` count in)
    last_due: float = 0.0
    ended: Literal["", "eof", "close"] = ""
    done: bool = False  # its writing task has finished

    def __post_init__(self) -> None:
        self.space.set()
        if not self.faults.frozen:
            self.gate.set()


class _Link:
    """One proxied TCP connection: the client's side, the server's side, and the two ways between."""

    def __init__(self, number: int, up: _Way, down: _Way) -> None:
        self.number = number
        self.up = up
        self.down = down

    def ways(self, direction: Direction) -> list[_Way]:
        return {"up": [self.up], "down": [self.down], "both": [self.up, self.down]}[direction]

    def close(self) -> None:
        for way in (self.up, self.down):
            way.writer.close()


def _names(direction: Direction) -> tuple[Literal["up", "down"], ...]:
    return ("up", "down") if direction == "both" else (direction,)


def _fixed(address: tuple[str, int]) -> Callable[[], tuple[str, int]]:
    return lambda: address


class _Switchboard:
    """The two directions' faults, and setting a switch from its command form."""

    def __init__(self) -> None:
        #: The faults of each direction: to the server ("up") and to the client ("down").
        self.to_server = Faults()
        self.to_client = Faults()
        self.stats_up = Stats()
        self.stats_down = Stats()

    def faults(self, direction: Literal["up", "down"]) -> Faults:
        """The faults of one direction."""
        return self.to_server if direction == "up" else self.to_client

    def set(self, name: str, value: str, direction: Direction = "both") -> None:
        """Set the switch `name` (a key of `SWITCHES`) from its command form, e.g. `delay 100`."""
        attribute, read = SWITCHES[name]
        parsed = read(value)
        for way in _names(direction):
            setattr(self.faults(way), attribute, parsed)


class FaultProxy(_Switchboard):
    """Forwards TCP from `listen` to the address `target()` returns (asked for each new connection)."""

    def __init__(
        self,
        target: Callable[[], tuple[str, int]] | tuple[str, int],
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        hold_limit: int = DEFAULT_HOLD_LIMIT,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self._target = target if callable(target) else _fixed(target)
        self._listen = listen
        self.hold_limit = hold_limit
        self._random = random.Random(seed)
        #: New connections are closed at once while set.
        self.refuse = False
        #: Seconds after which each new connection is closed (both sides); 0: never.
        self.drop_at = 0.0
        #: Connections accepted so far.
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.host = listen[0]
        self.port = 0

    # -- Switches ----------------------------------------------------------------------------------------

    def set(self, name: str, value: str, direction: Direction = "both") -> None:
        """Set a switch from its command form (`delay 100`); `drop-at` too, for the whole proxy."""
        if name == "drop-at":
            self.drop_at = float(value) / 1000
        else:
            super().set(name, value, direction)

    def freeze(self, direction: Direction = "both", *, new_connections: bool = False) -> None:
        """Stop moving bytes on the current connections (held, not lost), keeping them open.

        New connections flow normally unless `new_connections`, so a client that gives up on a frozen one
        can connect again.
        """
        for link in self._links:
            for way in link.ways(direction):
                way.gate.clear()
        if new_connections:
            for name in _names(direction):
                self.faults(name).frozen = True

    def thaw(self, direction: Direction = "both") -> None:
        """Move bytes again (what was held goes out in one write), on current and new connections."""
        for name in _names(direction):
            self.faults(name).frozen = False
        for link in self._links:
            for way in link.ways(direction):
                way.gate.set()
                way.wake.set()

    def held(self, direction: Literal["up", "down"] = "up") -> int:
        """Bytes waiting in the proxy that way, over every connection."""
        return sum(way.queued for link in self._links for way in link.ways(direction))

    def freeze_after(self, count: int) -> Callable[[bytes], bytes]:
        """A filter (for `Faults.mangle`) that freezes every connection once `count` bytes have passed it:
        a transfer is then surely stopped part-way, however fast the machine."""
        passed = 0

        def watch(data: bytes) -> bytes:
            nonlocal passed
            passed += len(data)
            if passed >= count:
                self.freeze()
            return data

        return watch

    def status(self) -> str:
        """One line per direction: its faults and what passed."""
        lines = [f"connections {self.connections} open {len(self._links)} refuse {self.refuse}"]
        if self.drop_at:
            lines[0] += f" drop-at {self.drop_at * 1000:g} ms"
        for name, faults, stats in (
            ("up", self.to_server, self.stats_up),
            ("down", self.to_client, self.stats_down),
        ):
            lines.append(
                f"{name}: {faults.describe()}; in {stats.bytes_in} B, out {stats.bytes_out} B"
                f" in {stats.writes} writes (largest {stats.largest_write} B)"
            )
        return "\n".join(lines)

    # -- Life cycle ---------------------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen (on 127.0.0.1 port 0 unless told otherwise) and return the port."""
        self._server = await asyncio.start_server(self._accept, *self._listen)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        return self.port

    @property
    def address(self) -> tuple[str, int]:
        """Where the proxy listens."""
        return self.host, self.port

    async def cut(self) -> None:
        """Close every current connection on both sides."""
        links, self._links = self._links, []
        for link in links:
            link.close()

    async def close(self) -> None:
        """Stop listening and close everything."""
        if self._server is not None:
            self._server.close()
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- The connections ----------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections  # taken now: another connection may be accepted while this one connects
        if self.refuse:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target())
        except OSError:
            writer.close()
            return
        link = _Link(
            number,
            _Way(self.to_server, self.stats_up, up_writer),
            _Way(self.to_client, self.stats_down, writer),
        )
        self._links.append(link)
        for coro in (
            self._read(reader, link.up, link),
            self._write(link.up, link),
            self._read(up_reader, link.down, link),
            self._write(link.down, link),
        ):
            self._spawn(coro)
        if self.drop_at:
            self._spawn(self._drop_later(link, self.drop_at))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop_later(self, link: _Link, after: float) -> None:
        await asyncio.sleep(after)  # the fault itself: the connection ends at this time
        self._forget(link)
        link.close()

    def _forget(self, link: _Link) -> None:
        with contextlib.suppress(ValueError):
            self._links.remove(link)

    async def _read(self, reader: asyncio.StreamReader, way: _Way, link: _Link) -> None:
        """Read one side; apply the byte faults; queue each block with the time it is due."""
        loop = asyncio.get_running_loop()
        ending: Literal["eof", "close"] = "eof"
        try:
            while data := await reader.read(DEFAULT_CHUNK):
                faults = way.faults
                if faults.observe is not None:
                    faults.observe(link.number, data)
                start = way.seen
                way.seen += len(data)
                way.stats.bytes_in += len(data)
                if start <= faults.corrupt < way.seen:
                    at = faults.corrupt - start
                    data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                if faults.mangle is not None:
                    data = faults.mangle(data)
                if faults.discard:
                    continue
                if faults.drop_after and way.seen >= faults.drop_after:
                    data = data[: max(0, faults.drop_after - start)]
                    ending = "close"
                due = loop.time() + faults.delay + faults.jitter * self._random.random()
                way.last_due = max(due, way.last_due)  # TCP delivers in order, however late a block is
                if data:
                    way.queue.append((way.last_due, data))
                    way.queued += len(data)
                    way.wake.set()
                if ending == "close":
                    break
                if way.queued >= self.hold_limit:
                    way.space.clear()
                    await way.space.wait()
        except (OSError, RuntimeError):
            pass
        finally:
            way.ended = ending
            way.wake.set()

    async def _write(self, way: _Way, link: _Link) -> None:
        """Write one side: wait for the gate and the due time, then write what is due as the faults say."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not way.gate.is_set() or not (way.queue or way.ended):
                    way.wake.clear()  # frozen, or nothing to do: the end, too, waits behind a freeze
                    await way.wake.wait()
                    continue
                if not way.queue:
                    break  # the other side ended and everything before the end went out
                due = way.queue[0][0]
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())  # the delay is the fault, not a wait
                if way.faults.coalesce:
                    await asyncio.sleep(way.faults.coalesce)  # gathering is the fault, not a wait
                if not way.gate.is_set():
                    continue  # frozen while it waited
                await self._send(way, self._take_due(way, loop.time()))
        except (OSError, RuntimeError):
            pass
        finally:
            way.done = True
            if way.ended == "close":
                link.close()
            else:
                way.writer.close()
            if way.ended == "close" or (link.up.done and link.down.done):
                self._forget(link)

    def _take_due(self, way: _Way, now: float) -> bytes:
        """Everything queued that is due by `now`, as one block (a backlog goes out together)."""
        parts = []
        while way.queue and way.queue[0][0] <= now:
            parts.append(way.queue.popleft()[1])
        data = b"".join(parts)
        way.queued -= len(data)
        if way.queued < self.hold_limit:
            way.space.set()
        return data

    async def _send(self, way: _Way, data: bytes) -> None:
        faults = way.faults
        piece = faults.split or len(data)
        if faults.bandwidth and not faults.split:
            piece = max(1, faults.bandwidth // BANDWIDTH_PIECES_PER_SECOND)
        for offset in range(0, len(data), max(1, piece)):
            chunk = data[offset : offset + piece]
            way.writer.write(chunk)
            await way.writer.drain()
            way.stats.bytes_out += len(chunk)
            way.stats.writes += 1
            way.stats.largest_write = max(way.stats.largest_write, len(chunk))
            if faults.bandwidth:
                await asyncio.sleep(len(chunk) / faults.bandwidth)  # the rate limit is the fault, not a wait


class _DatagramSide(asyncio.DatagramProtocol):
    """Hands every datagram one socket receives to a callback."""

    def __init__(self, received: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._received = received

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._received(data, addr)


class UdpFaultProxy(_Switchboard):
    """Forwards UDP datagrams from `listen` to `target`, and the answers back to each sender.

    Each client address gets its own socket towards the target (so the target's answers find their way
    back). The faults that apply: `delay`, `jitter` (which reorders), `loss`, `duplicate`, `corrupt` (a byte
    offset in each datagram), `discard`, `frozen` (held, sent on `thaw()`).
    """

    def __init__(
        self, target: tuple[str, int], *, listen: tuple[str, int] = ("127.0.0.1", 0), seed: int | None = None
    ) -> None:
        super().__init__()
        self._target = target
        self._listen = listen
        self._random = random.Random(seed)
        self._front: asyncio.DatagramTransport | None = None
        self._backs: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self._held: list[tuple[Literal["up", "down"], bytes, tuple[str, int]]] = []
        self._numbers: dict[tuple[str, int], int] = {}  # each sender's number, for `Faults.observe`
        self.host = listen[0]
        self.port = 0

    def freeze(self, direction: Direction = "both", *, new_connections: bool = True) -> None:
        """Hold the datagrams going that way until `thaw()`."""
        for name in _names(direction):
            self.faults(name).frozen = True

    def thaw(self, direction: Direction = "both") -> None:
        """Send what was held, and let datagrams through again."""
        names = _names(direction)
        for name in names:
            self.faults(name).frozen = False
        held = [item for item in self._held if item[0] in names]
        self._held = [item for item in self._held if item[0] not in names]
        for way, data, peer in held:
            self._pass(way, data, peer)

    def status(self) -> str:
        """One line per direction: its faults and what passed."""
        lines = [f"udp peers {len(self._backs)}"]
        for name, faults, stats in (
            ("up", self.to_server, self.stats_up),
            ("down", self.to_client, self.stats_down),
        ):
            lines.append(
                f"{name}: {faults.describe()}; in {stats.bytes_in} B, out {stats.bytes_out} B in"
                f" {stats.writes} datagrams ({stats.datagrams_lost} lost,"
                f" {stats.datagrams_duplicated} doubled)"
            )
        return "\n".join(lines)

    @property
    def address(self) -> tuple[str, int]:
        """Where the proxy listens."""
        return self.host, self.port

    async def start(self) -> int:
        """Bind and return the port."""
        loop = asyncio.get_running_loop()
        self._front, _ = await loop.create_datagram_endpoint(
            lambda: _DatagramSide(self._from_client), local_addr=self._listen
        )
        self.host, self.port = self._front.get_extra_info("sockname")[:2]
        return self.port

    async def close(self) -> None:
        for transport in [*self._backs.values(), self._front]:
            if transport is not None:
                transport.close()
        self._backs.clear()

    async def cut(self) -> None:
        """Forget every peer (their next datagram gets a fresh socket towards the target)."""
        backs, self._backs = self._backs, {}
        for transport in backs.values():
            transport.close()

    def _from_client(self, data: bytes, peer: tuple[str, int]) -> None:
        if peer not in self._backs:
            loop = asyncio.get_running_loop()
            task = loop.create_datagram_endpoint(
                lambda: _DatagramSide(lambda answer, _: self._forward("down", answer, peer)),
                remote_addr=self._target,
            )
            future = asyncio.ensure_future(task)
            future.add_done_callback(lambda done: self._opened(peer, done, data))
            return
        self._forward("up", data, peer)

    def _opened(self, peer: tuple[str, int], done: asyncio.Future[Any], first: bytes) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            transport, _ = done.result()
            self._backs[peer] = transport
            self._forward("up", first, peer)

    def _forward(self, way: Literal["up", "down"], data: bytes, peer: tuple[str, int]) -> None:
        faults = self.faults(way)
        stats = self.stats_up if way == "up" else self.stats_down
        stats.bytes_in += len(data)
        if faults.observe is not None:
            faults.observe(self._numbers.setdefault(peer, len(self._numbers) + 1), data)
        if faults.frozen:
            self._held.append((way, data, peer))
            return
        self._pass(way, data, peer)

    def _pass(self, way: Literal["up", "down"], data: bytes, peer: tuple[str, int]) -> None:
        """Do to one datagram what the faults of its way say, and send it (or its copies) when due."""
        faults = self.faults(way)
        stats = self.stats_up if way == "up" else self.stats_down
        if faults.discard or self._random.random() < faults.loss:
            stats.datagrams_lost += 1
            return
        if 0 <= faults.corrupt < len(data):
            data = data[: faults.corrupt] + bytes([data[faults.corrupt] ^ 0xFF]) + data[faults.corrupt + 1 :]
        if faults.mangle is not None:
            data = faults.mangle(data)
        copies = 1
        if self._random.random() < faults.duplicate:
            copies = 2
            stats.datagrams_duplicated += 1
        loop = asyncio.get_running_loop()
        for copy in range(copies):
            after = faults.delay + faults.jitter * self._random.random() + copy * DUPLICATE_GAP
            loop.call_later(after, self._send, way, data, peer)

    def _send(self, way: Literal["up", "down"], data: bytes, peer: tuple[str, int]) -> None:
        stats = self.stats_up if way == "up" else self.stats_down
        if way == "up":
            transport = self._backs.get(peer)
            if transport is None:
                return
            transport.sendto(data)
        elif self._front is not None:
            self._front.sendto(data, peer)
        stats.bytes_out += len(data)
        stats.writes += 1
        stats.largest_write = max(stats.largest_write, len(data))


P = TypeVar("P", FaultProxy, UdpFaultProxy)


class ProxyThread(Generic[P]):
    """Runs a proxy on its own event loop in a thread, for synchronous programs and tests.

    `call(fn)` runs `fn(proxy)` on the loop's thread and returns its result: the proxy's state belongs to
    that thread, so every switch is flipped there.
    """

    def __init__(self, proxy: P) -> None:
        self.proxy: P = proxy
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    def __enter__(self) -> ProxyThread[P]:
        self._thread.start()
        self.run(self.proxy.start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(Exception):
            self.run(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(THREAD_TIMEOUT)
        self._loop.close()

    @property
    def address(self) -> tuple[str, int]:
        """Where the proxy listens."""
        address: tuple[str, int] = self.proxy.address
        return address

    def call(self, function: Callable[[P], T]) -> T:
        """Run `function(proxy)` on the proxy's thread and return what it returned."""
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(function(self.proxy))
            except BaseException as error:  # handed to the caller's thread
                result.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return result.result(THREAD_TIMEOUT)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of the proxy (`proxy.cut()`) on its loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(THREAD_TIMEOUT)
