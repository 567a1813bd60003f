"""The LAN beacon: one thread that announces this server over UDP and answers discovery queries.

Seams (what the server wires in):

* `BeaconConfig` (chat_server.beacon.config): every setting, from the config file and the command line.
* `Beacon(config, snapshot)`: `snapshot` is a callable that returns a `shared.discovery.BeaconInfo`. It is
  the beacon's only view of the server: it runs on the beacon thread, so it must be thread-safe (take the
  server's lock, copy the counts, release). `start()` / `stop()`, or use the beacon as a context manager.
* `load_or_create_server_id(path)`: the stable server id, kept in a small file in the server's data folder.

Threads and ownership: `start()` opens one UDP socket per address family its addresses use (IPv4, IPv6 or
both) and starts one daemon thread, "mpchat-beacon", which owns those sockets, the rate limiter and the
cached snapshot. The thread sleeps in `select()` until the next beacon is due or a datagram arrives: it then
sends the beacon to every configured address, or answers a valid, large enough, not rate-limited query with
a reply sent straight back to its source, from the socket it came in on. `stats` counters
are written by that thread only (other threads may read them). No lock is needed: nothing else is shared.
`stop()` sets the stop event, wakes the thread through a socket pair, joins it (bounded), then closes the
sockets: the thread never sees a closed socket.

Safety: with ``MPCHAT_DISCOVERY_LOOPBACK_ONLY=1`` in the environment, `start()` raises `DestinationRefused`
for any non-loopback target, and no reply ever leaves for a non-loopback source (see `shared.discovery`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat_server.ratelimit import TokenBucket
from shared.addresses import address_key, host_port
from shared.discovery import (
    MAX_DATAGRAM,
    BeaconInfo,
    DestinationRefused,
    Query,
    check_destination,
    decode_datagram,
    encode_beacon,
    encode_reply,
    new_server_id,
    split_zone,
)
from shared.errors import RemoteProtocolError
from shared.schema import MAX_TOKEN

from .config import BeaconConfig

log = logging.getLogger(__name__)

#: Multicast datagrams stay on the local link: no router forwards a datagram whose TTL (IPv4) or hop limit
#: (IPv6) is 1.
MULTICAST_TTL = 1
#: Seconds a snapshot is reused for replies, so a query flood cannot hammer the server's lock.
SNAPSHOT_MAX_AGE = 1.0
#: Datagrams handled per wake-up before the thread checks its schedule again.
DRAIN_BATCH = 64
#: Seconds `stop()` waits for the thread.
STOP_TIMEOUT = 5.0


def jittered_interval(config: BeaconConfig, rng: random.Random) -> float:
    """Seconds until the next beacon: `interval`, moved at random by up to ±`jitter` of itself."""
    spread = config.interval * config.jitter
    return config.interval + rng.uniform(-spread, spread)


@dataclass(slots=True)
class BeaconStats:
    """What the beacon has done, counted by its thread."""

    beacons_sent: int = 0
    replies_sent: int = 0
    malformed: int = 0
    ignored: int = 0
    undersized: int = 0
    rate_limited: int = 0
    send_errors: int = 0


class QueryLimiter:
    """Rate limits for replies: one bucket per source address, and one for all sources together.

    A source is keyed as the chat server's per-address limits key it (`shared.addresses.address_key`): an IPv6
    source by its /64, which one host can fill with as many addresses as it likes. The per-source table is
    bounded (`max_sources`, least recently seen forgotten first), so a flood of spoofed source addresses costs
    memory once, not per datagram.
    """

    def __init__(self, config: BeaconConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._overall = TokenBucket(config.reply_rate, config.reply_burst, clock)
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, source: str) -> bool:
        """True if a reply to `source` may go out now (spending its tokens)."""
        source = address_key(source)
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = TokenBucket(self._config.query_rate, self._config.query_burst, self._clock)
            self._sources[source] = bucket
            if len(self._sources) > self._config.max_query_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        # take() returns the seconds to wait, 0.0 when the token was spent.
        return bucket.take() == 0.0 and self._overall.take() == 0.0


class Beacon:
    """Announces the server on the LAN and answers queries, from one thread (see the module docstring)."""

    def __init__(
        self,
        config: BeaconConfig,
        snapshot: Callable[[], BeaconInfo],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.stats = BeaconStats()
        self._snapshot = snapshot
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._limiter = QueryLimiter(config, clock)
        self._info: BeaconInfo | None = None
        self._info_time = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: One socket per address family in use: the IPv4 one first.
        self._socks: list[socket.socket] = []
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # -- Lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the targets, open the socket and start the thread; raises `DestinationRefused`/`OSError`."""
        if self._thread is not None:
            raise RuntimeError("the beacon is already started")
        for address in self.config.addresses:
            check_destination(address)
        self._socks = self._open_sockets()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mpchat-beacon", daemon=True)
        self._thread.start()
        bound = ", ".join(host_port(*sock.getsockname()[:2]) for sock in self._socks)
        log.info("beacon on %s, announcing to %s", bound, ", ".join(self.config.addresses))

    def stop(self) -> None:
        """Stop the thread (bounded wait) and close the sockets; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        assert self._wake_w is not None
        self._wake_w.send(b"\0")
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.error("the beacon thread did not stop within %.1f s", STOP_TIMEOUT)
            return
        for sock in (*self._socks, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._socks = []

    def __enter__(self) -> Beacon:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def query_address(self) -> tuple[str, int]:
        """The (address, port) the first beacon socket (IPv4 if there is one) is bound to: where queries
        reach it."""
        if not self._socks:
            raise RuntimeError("the beacon is not started")
        host, port = self._socks[0].getsockname()[:2]
        return (str(host), int(port))

    def _open_sockets(self) -> list[socket.socket]:
        """The IPv4 socket if an address is IPv4, the IPv6 one if an address is IPv6 (closed on failure)."""
        families = {_family(address) for address in self.config.addresses}
        socks: list[socket.socket] = []
        try:
            if socket.AF_INET in families:
                socks.append(self._open_socket())
            if socket.AF_INET6 in families:
                socks.append(self._open_socket6())
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return socks

    def _open_socket(self) -> socket.socket:
        config = self.config
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # Several programs on one host (a server and a listening client) may share the discovery port;
            # each gets its own copy of every broadcast and multicast datagram.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
            interface = socket.inet_aton(config.interface or "0.0.0.0")
            if config.interface is not None:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, interface)
            port = config.port if config.query_port is None else config.query_port
            sock.bind((config.bind_address, port))
            for address in config.addresses:
                ipv4 = _family(address) == socket.AF_INET
                if ipv4 and ipaddress.IPv4Address(address).is_multicast and config.answer_queries:
                    membership = socket.inet_aton(address) + interface
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_socket6(self) -> socket.socket:
        """The IPv6 socket: IPv6 only (IPv4 has its own socket), hop limit 1, joined to each IPv6 group on the
        interface its zone names (``ff02::7879%eth0``; no zone: the system's choice)."""
        config = self.config
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, MULTICAST_TTL)
            port = config.port if config.query_port is None else config.query_port
            sock.bind((config.bind_address_v6, port))
            for address in config.addresses:
                group, zone = split_zone(address)
                ipv6 = _family(address) == socket.AF_INET6
                if ipv6 and ipaddress.IPv6Address(group).is_multicast and config.answer_queries:
                    index = struct.pack("@I", interface_index(zone))
                    membership = socket.inet_pton(socket.AF_INET6, group) + index
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    # -- The thread --------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            # A bug, not a network condition (those are handled where they happen). Retrying could spin,
            # so the beacon stops and says so; the chat server itself carries on.
            log.exception("the beacon stopped after an unexpected error")

    def _loop(self) -> None:
        assert self._socks
        assert self._wake_r is not None
        next_beacon = self._clock()
        while not self._stopping.is_set():
            now = self._clock()
            if now >= next_beacon:
                self._announce()
                next_beacon = now + jittered_interval(self.config, self._rng)
            wait = max(0.0, next_beacon - self._clock())
            readable, _, _ = select.select([*self._socks, self._wake_r], [], [], wait)
            for sock in self._socks:
                if sock in readable:
                    self._drain(sock)

    def _announce(self) -> None:
        info = self._fresh_info(max_age=0.0)
        if info is None:
            return
        datagram = encode_beacon(info)
        for address in self.config.addresses:
            if self._send(datagram, (address, self.config.port)):
                self.stats.beacons_sent += 1

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(DRAIN_BATCH):
            try:
                # One byte more than the largest datagram, so an oversized one is seen as oversized.
                data, source = sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. an ICMP error reported on a later read
                log.debug("beacon recvfrom: %s", error)
                return
            # An IPv6 source is (host, port, flow info, scope id): all of it goes back to `sendto`, so a
            # reply to a link-local address leaves through the interface the query came in on.
            self._handle(data, tuple(source))

    def _handle(self, data: bytes, source: tuple[Any, ...]) -> None:
        """Answer `data` if it is a valid query that is large enough and within the rate limits."""
        try:
            datagram = decode_datagram(data)
        except RemoteProtocolError:
            self.stats.malformed += 1
            return
        if not isinstance(datagram, Query) or not self.config.answer_queries:
            self.stats.ignored += 1  # other servers' beacons and replies, our own beacons
            return
        info = self._fresh_info(max_age=SNAPSHOT_MAX_AGE)
        if info is None:
            return
        reply = encode_reply(info, datagram.nonce, int(self._wall_clock() * 1000))
        if len(reply) > len(data):
            self.stats.undersized += 1  # answering would amplify: the reply is larger than the query
            return
        if not self._limiter.allow(str(source[0])):
            self.stats.rate_limited += 1
            return
        if self._send(reply, source):
            self.stats.replies_sent += 1

    def _fresh_info(self, max_age: float) -> BeaconInfo | None:
        now = self._clock()
        if self._info is None or now - self._info_time > max_age:
            try:
                self._info = self._snapshot()
                self._info_time = now
            except Exception:
                # The server's bug must not kill the beacon; the next beacon tries again.
                log.exception("the beacon snapshot failed")
                return None
        return self._info

    def _send(self, datagram: bytes, destination: tuple[Any, ...]) -> bool:
        family = _family(str(destination[0]))
        sock = next(sock for sock in self._socks if sock.family == family)
        try:
            check_destination(str(destination[0]))
            sock.sendto(datagram, destination)
        except OSError as error:
            # Typically "network unreachable" while an interface is down; the next beacon tries again.
            self.stats.send_errors += 1
            log.log(
                logging.WARNING if self.stats.send_errors == 1 else logging.DEBUG,
                "beacon could not send to %s: %s",
                host_port(str(destination[0]), int(destination[1])),
                error,
            )
            return False
        except DestinationRefused as error:
            self.stats.send_errors += 1
            log.warning("%s", error)
            return False
        return True


def _family(address: str) -> socket.AddressFamily:
    """The family of an IP literal (checked by `BeaconConfig`): IPv6 addresses contain a colon."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def interface_index(zone: str | None) -> int:
    """The index of the interface an IPv6 zone names (``eth0`` or a number); 0 (the system's choice) for none.

    Raises OSError for an interface that does not exist.
    """
    if zone is None:
        return 0
    return int(zone) if zone.isdigit() else socket.if_nametoindex(zone)


# -- Server id ---------------------------------------------------------------------------------------------


def load_or_create_server_id(path: Path) -> str:
    """Return the server id stored in `path`, creating the file with a new random id if needed."""
    try:
        stored = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        stored = ""
    except (OSError, UnicodeDecodeError) as error:
        log.warning("cannot read the server id from %s (%s); using a new one", path, error)
        stored = ""
    if 0 < len(stored) <= MAX_TOKEN and stored.isascii() and stored.isprintable():
        return stored
    server_id = new_server_id()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(server_id + "\n", encoding="ascii")
    os.replace(temporary, path)
    return server_id
