"""LAN discovery for the client: listen for server beacons, query, and keep a live table of servers.

Seams (for the `--discover` command and the TUI connect screen):

* `DiscoveryListener(listen=..., query=..., on_update=...)`: an asyncio object. Run it in a Textual async
  worker with ``await listener.run()`` (cancel the worker to stop it), or use ``async with listener:``.
  `on_update(servers)` is called, on the event loop, whenever the list changes (a server appears, changes
  or expires); a TUI posts a message from it. `servers()` returns the current list at any time, and
  `query()` asks again at once (a "refresh" key).
* `discover(seconds, ...)`: listen (and query) for `seconds`, then return the list.
* `ServerTable`: the de-duplicating, expiring, bounded table itself, with no I/O (tests drive it directly).

Beacon data is a hint: the list says where a server *claims* to be. Nothing here changes what the user
configured or pinned; a connection made from this list goes through the same checks as any other.

How it works: two UDP sockets on the event loop. The *listen* socket is bound to the discovery port (with
SO_REUSEADDR, so a server or other clients on the same host can bind it too) and hears beacons. With an IPv6
query address (e.g. the link-local group ``ff02::7879%eth0``) the default listen address becomes ``::``,
dual-stack: it joins the IPv6 group on the zone's interface and still hears IPv4 broadcast beacons. The
*query* socket is bound to an ephemeral port and sends queries, padded to `QUERY_SIZE` bytes, to the query
address (broadcast by default); servers reply to that socket directly, echoing the query's nonce, which gives
the round-trip time and, with the server's clock, the clock offset. A background task repeats the query a few
times (UDP may lose datagrams) and expires servers not heard from for `expiry` seconds. Everything runs on one
event loop thread, so nothing needs a lock.


With ``MPCHAT_DISCOVERY_LOOPBACK_ONLY=1`` the listener refuses to send a query to a non-loopback address:
`start()` raises `DestinationRefused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.addresses import host_port, plain_address
from shared.discovery import (
    DEFAULT_DISCOVERY_PORT,
    Announcement,
    DestinationRefused,
    Reply,
    check_destination,
    decode_datagram,
    encode_query,
    new_nonce,
    split_zone,
)
from shared.errors import RemoteProtocolError
from shared.text import fold

log = logging.getLogger(__name__)

#: The local address the listen socket binds to (all interfaces); with an IPv6 query address, the IPv6 one
#: (dual-stack: it hears IPv4 too).
DEFAULT_LISTEN_ADDRESS = "0.0.0.0"
DEFAULT_LISTEN_ADDRESS_V6 = "::"
#: Where queries go: the limited broadcast address, i.e. every host on the local link.
DEFAULT_QUERY_ADDRESS = "255.255.255.255"
#: Seconds without a beacon or reply after which a server leaves the list (several beacon intervals).
DEFAULT_EXPIRY = 20.0
#: Queries sent when the listener starts, this many seconds apart (UDP may lose one).
DEFAULT_QUERY_REPEATS = 3
DEFAULT_QUERY_SPACING = 0.5
#: Servers kept at once; when full, the one heard from longest ago makes room.
MAX_SERVERS = 64
#: Source addresses remembered per server (one server may be heard through several interfaces).
MAX_ADDRESSES = 4
#: Queries whose nonce is remembered for matching replies.
MAX_PENDING_QUERIES = 16
#: Multicast queries stay on the local link (the IPv4 TTL and the IPv6 hop limit).
MULTICAST_TTL = 1

Updated = Callable[[list["DiscoveredServer"]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveredServer:
    """One server as last heard. Every string came from the network: show it through `shared.text.visible`.

    `host` is the address the server's datagrams came from and `port` its TCP port: connect to ``(host,
    port)``. An IPv6 link-local address carries its zone, the interface it was heard on (``fe80::1%eth0``),
    without which it cannot be reached. `rtt` (seconds) and `clock_offset` (server clock minus ours, seconds)
    are known once the server has answered a query.
    """

    server_id: str
    name: str
    host: str
    port: int
    tls: bool
    fingerprint: str | None
    users: int
    rooms: tuple[tuple[str, int], ...]
    truncated: bool
    addresses: tuple[str, ...]
    last_seen: float
    rtt: float | None = None
    clock_offset: float | None = None
    #: The other servers of its cluster as it announces them (``HOST:PORT`` each); empty for a single server.
    servers: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """``host:port`` to connect to (``[fe80::1%eth0]:7878`` for IPv6)."""
        return host_port(self.host, self.port)

    @property
    def host_list(self) -> str:
        """What `--host` (or the connect screen's host field, with `port`) takes to reach this server first
        and fail over to the others of its cluster: ``10.0.0.11,10.0.0.12:7878``; the host alone for a
        single server."""
        return ",".join((self.host, *self.servers))


@dataclass(slots=True)
class DiscoveryStats:
    """What the listener has received, by outcome."""

    received: int = 0
    malformed: int = 0
    ignored: int = 0
    queries_sent: int = 0
    servers_dropped: int = 0


class ServerTable:
    """Servers heard, keyed by server id: de-duplicated, expiring and bounded. No I/O, no clock of its own."""

    def __init__(self, expiry: float = DEFAULT_EXPIRY, max_servers: int = MAX_SERVERS) -> None:
        self.expiry = expiry
        self.max_servers = max_servers
        self.dropped = 0
        self._servers: dict[str, DiscoveredServer] = {}
        #: server id -> {source address: last heard}, in the order the addresses were first heard.
        self._addresses: dict[str, dict[str, float]] = {}

    def heard(
        self,
        datagram: Announcement | Reply,
        source: str,
        now: float,
        *,
        rtt: float | None = None,
        clock_offset: float | None = None,
    ) -> bool:
        """Record a beacon or reply from `source`; return True if the visible list changed."""
        old = self._servers.get(datagram.id)
        if old is None and len(self._servers) >= self.max_servers:
            oldest = min(self._servers.values(), key=lambda server: server.last_seen)
            self._forget(oldest.server_id)
            self.dropped += 1
        addresses = self._addresses.setdefault(datagram.id, {})
        addresses[source] = now
        if len(addresses) > MAX_ADDRESSES:
            del addresses[min(addresses, key=addresses.__getitem__)]
        new = DiscoveredServer(
            server_id=datagram.id,
            name=datagram.name,
            # The first address heard stays the one shown while it is alive, so the row does not flicker.
            host=next(iter(addresses)),
            port=datagram.port,
            tls=datagram.tls,
            fingerprint=datagram.fingerprint,
            users=datagram.users,
            rooms=datagram.rooms,
            truncated=datagram.truncated,
            addresses=tuple(addresses),
            last_seen=now,
            rtt=rtt if rtt is not None else (old.rtt if old else None),
            clock_offset=clock_offset if clock_offset is not None else (old.clock_offset if old else None),
            servers=datagram.servers or (),
        )
        self._servers[datagram.id] = new
        return old is None or dataclasses.replace(old, last_seen=now) != new

    def expire(self, now: float) -> bool:
        """Forget servers (and addresses) not heard from for `expiry` seconds; True if any server left."""
        changed = False
        for server_id, addresses in list(self._addresses.items()):
            for source, seen in list(addresses.items()):
                if now - seen > self.expiry:
                    del addresses[source]
            if not addresses:
                self._forget(server_id)
                changed = True
            elif tuple(addresses) != self._servers[server_id].addresses:
                server = self._servers[server_id]
                self._servers[server_id] = dataclasses.replace(
                    server, host=next(iter(addresses)), addresses=tuple(addresses)
                )
                changed = True
        return changed

    def servers(self) -> list[DiscoveredServer]:
        """The servers, sorted by name (then id, so the order is stable)."""
        return sorted(self._servers.values(), key=lambda server: (fold(server.name), server.server_id))

    def _forget(self, server_id: str) -> None:
        self._servers.pop(server_id, None)
        self._addresses.pop(server_id, None)


class _Endpoint(asyncio.DatagramProtocol):
    """Hands every datagram of one socket to the listener."""

    def __init__(self, listener: DiscoveryListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._listener._received(data, _source(addr))

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery socket error: %s", exc)


class DiscoveryListener:
    """Listens for beacons, sends queries and keeps a `ServerTable` (see the module docstring)."""

    def __init__(
        self,
        *,
        listen: tuple[str, int] = (DEFAULT_LISTEN_ADDRESS, DEFAULT_DISCOVERY_PORT),
        query: tuple[str, int] | None = (DEFAULT_QUERY_ADDRESS, DEFAULT_DISCOVERY_PORT),
        expiry: float = DEFAULT_EXPIRY,
        query_repeats: int = DEFAULT_QUERY_REPEATS,
        query_spacing: float = DEFAULT_QUERY_SPACING,
        on_update: Updated | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.listen = listen
        self.query_target = query
        self.query_repeats = query_repeats
        self.query_spacing = query_spacing
        self.stats = DiscoveryStats()
        self._table = ServerTable(expiry)
        #: Called with the new list whenever it changes; may be set after construction.
        self.on_update = on_update
        #: Set once the sockets are bound (a TUI test can then read `listen_address`).
        self.ready = asyncio.Event()
        self._clock = clock
        self._wall_clock = wall_clock
        #: nonce -> (monotonic time sent, wall clock time sent)
        self._pending: OrderedDict[int, tuple[float, float]] = OrderedDict()
        self._transports: list[asyncio.DatagramTransport] = []
        self._query_transport: asyncio.DatagramTransport | None = None
        self._query_ip: str | None = None
        self._task: asyncio.Task[None] | None = None

    # -- Lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the sockets and start querying; raises `DestinationRefused` or `OSError`."""
        if self._transports:
            raise RuntimeError("the listener is already started")
        loop = asyncio.get_running_loop()
        if self.query_target is not None:
            self._query_ip = await _resolve(self.query_target[0])
            check_destination(self._query_ip)
        listen = self.listen
        if self._query_ip is not None and ":" in self._query_ip and listen[0] == DEFAULT_LISTEN_ADDRESS:
            listen = (DEFAULT_LISTEN_ADDRESS_V6, listen[1])
        try:
            listen_sock = _listen_socket(listen, self._query_ip)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Endpoint(self), sock=listen_sock)
            self._transports.append(transport)
            if self.query_target is not None:
                assert self._query_ip is not None
                query_sock = _query_socket(listen[0], self._query_ip)
                transport, _ = await loop.create_datagram_endpoint(lambda: _Endpoint(self), sock=query_sock)
                self._transports.append(transport)
                self._query_transport = transport
        except BaseException:
            self.close()
            raise
        self._task = asyncio.create_task(self._background(), name="mpchat-discovery")
        self.ready.set()

    def close(self) -> None:
        """Stop the background task and close the sockets; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        self._query_transport = None
        self.ready.clear()

    async def __aenter__(self) -> DiscoveryListener:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def run(self) -> None:
        """Start, then run until cancelled (the shape a Textual worker wants); always closes."""
        await self.start()
        try:
            await asyncio.Future()
        finally:
            self.close()

    @property
    def listen_address(self) -> tuple[str, int]:
        """The (address, port) the listen socket is bound to (useful with port 0)."""
        if not self._transports:
            raise RuntimeError("the listener is not started")
        host, port = self._transports[0].get_extra_info("sockname")[:2]
        return (str(host), int(port))

    def servers(self) -> list[DiscoveredServer]:
        """The servers heard and not expired, sorted by name."""
        return self._table.servers()

    def query(self) -> None:
        """Send one query now (no-op when the listener has no query address or is closed)."""
        if self._query_transport is None or self.query_target is None or self._query_ip is None:
            return
        nonce = new_nonce()
        self._pending[nonce] = (self._clock(), self._wall_clock())
        if len(self._pending) > MAX_PENDING_QUERIES:
            self._pending.popitem(last=False)
        check_destination(self._query_ip)
        self._query_transport.sendto(encode_query(nonce), (self._query_ip, self.query_target[1]))
        self.stats.queries_sent += 1

    # -- Receiving ---------------------------------------------------------------------------------------

    def _received(self, data: bytes, source: str) -> None:
        self.stats.received += 1
        try:
            datagram = decode_datagram(data)
        except RemoteProtocolError:
            self.stats.malformed += 1
            return
        now = self._clock()
        if isinstance(datagram, Announcement):
            changed = self._table.heard(datagram, source, now)
        elif isinstance(datagram, Reply) and datagram.nonce in self._pending:
            sent, sent_wall = self._pending[datagram.nonce]
            rtt = now - sent
            offset = datagram.clock / 1000 - (sent_wall + rtt / 2)
            changed = self._table.heard(datagram, source, now, rtt=rtt, clock_offset=offset)
        else:
            self.stats.ignored += 1  # queries (ours and others'), replies to queries we did not send
            return
        self.stats.servers_dropped = self._table.dropped
        if changed:
            self._notify()

    def _notify(self) -> None:
        if self.on_update is None:
            return
        try:
            self.on_update(self._table.servers())
        except Exception:
            log.exception("discovery update callback failed")

    async def _background(self) -> None:
        """Send the first queries, then expire servers that went quiet."""
        for number in range(self.query_repeats if self.query_target is not None else 0):
            if number:
                await asyncio.sleep(self.query_spacing)
            try:
                self.query()
            except (OSError, DestinationRefused) as error:
                log.warning("discovery query failed: %s", error)
        tick = min(1.0, self._table.expiry / 4)
        while True:
            if self._table.expire(self._clock()):
                self._notify()
            await asyncio.sleep(tick)


async def discover(
    seconds: float,
    *,
    listen: tuple[str, int] = (DEFAULT_LISTEN_ADDRESS, DEFAULT_DISCOVERY_PORT),
    query: tuple[str, int] | None = (DEFAULT_QUERY_ADDRESS, DEFAULT_DISCOVERY_PORT),
    **options: Any,
) -> list[DiscoveredServer]:
    """Listen (and query) for `seconds`, then return the servers heard, sorted by name."""
    async with DiscoveryListener(listen=listen, query=query, **options) as listener:
        await asyncio.sleep(seconds)
        return listener.servers()


async def _resolve(host: str) -> str:
    """The address of `host`: an IP literal (IPv6 with its zone) as is, without a lookup; else the first
    address the name resolves to."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return host
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])


def _source(addr: tuple[Any, ...]) -> str:
    """A datagram's source address as shown and connected to: IPv4-mapped IPv6 as IPv4, and an IPv6
    link-local address with its zone (the interface it came in on; ``recvfrom`` gives it as a number)."""
    host = plain_address(str(addr[0]))
    if len(addr) >= 4 and addr[3] and ipaddress.ip_address(host).is_link_local:
        try:
            return f"{host}%{socket.if_indextoname(addr[3])}"
        except OSError:
            return f"{host}%{addr[3]}"
    return host


def _interface_index(zone: str | None) -> int:
    """The index of the interface an IPv6 zone names (a name or a number); 0 (the system's choice) if none."""
    if zone is None:
        return 0
    return int(zone) if zone.isdigit() else socket.if_nametoindex(zone)


def _listen_socket(listen: tuple[str, int], group: str | None) -> socket.socket:
    """The socket that hears beacons; joined to `group` if that is a multicast group of its family. An IPv6
    one is dual-stack (IPV6_V6ONLY off): IPv4 broadcasts reach it too."""
    ipv6 = ":" in listen[0]
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(listen)
        if group is not None:
            address, zone = split_zone(group)
            multicast = ipaddress.ip_address(address).is_multicast
            if multicast and ipv6 and ":" in address:
                membership = socket.inet_pton(socket.AF_INET6, address) + struct.pack(
                    "@I", _interface_index(zone)
                )
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
            elif multicast and not ipv6 and ":" not in address:
                membership = socket.inet_aton(address) + socket.inet_aton("0.0.0.0")
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _query_socket(local_host: str, target: str) -> socket.socket:
    """The socket queries leave from and replies come back to: of the target's family, bound to the listen
    address if that is of the same family (else to the family's wildcard), TTL or hop limit 1."""
    ipv6 = ":" in target
    if (":" in local_host) != ipv6:
        local_host = DEFAULT_LISTEN_ADDRESS_V6 if ipv6 else DEFAULT_LISTEN_ADDRESS
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, MULTICAST_TTL)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        sock.bind((local_host, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
