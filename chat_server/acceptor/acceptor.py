"""The acceptor threads (``acceptor``, and ``acceptor-tls`` when TLS has its own port) and the table of live
connections they fill.

Each acceptor owns one listening socket. For each new connection it checks the limits
(`max_connections_per_minute`, `max_clients`, `max_clients_per_ip`), refuses with one `error` frame (handed
to the refusal closer, chat_server.acceptor.closer) or sets the socket's options and starts the connection's
reader thread (chat_server.reader.connection). It never waits for a client. ``Acceptor._lock`` guards the
table of live connections and the per-address counts: the acceptors add, each connection's reader removes
its own as its last act (`forget`), and `ChatServer.stop()`, `stats()` and the metrics copy it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections import Counter

from chat_server.config import ServerConfig
from chat_server.metrics import Tally
from chat_server.ratelimit import AddressBuckets
from chat_server.reader.connection import Connection
from chat_server.replies import error_frame
from chat_server.services import Services
from chat_server.tls import ServerTls
from shared.addresses import address_key, host_port, plain_address
from shared.errors import ErrorCode
from shared.text import fold

from .closer import RefusalCloser

log = logging.getLogger(__name__)

#: How long an acceptor waits in `accept` before checking whether it should stop.
ACCEPT_POLL = 0.5
#: Seconds of TCP keepalive idle time before the kernel starts probing a silent peer (a backstop to pings).
KEEPALIVE_IDLE = 60


class Acceptor:
    """The acceptor threads and the table of live connections (`_lock`)."""

    def __init__(self, config: ServerConfig, tally: Tally) -> None:
        self.config = config
        self.tally = tally
        self._lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        self._per_ip: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._listeners: list[tuple[socket.socket, ServerTls | None]] = []
        self._services: Services | None = None
        self._stopping = threading.Event()
        # Refused connections, half-closed until their clients have read the refusal (own thread and lock).
        self._closer = RefusalCloser(config.refusal_linger, config.max_lingering)
        # New connections per address per minute (the acceptors' own; it has its own lock, never nested).
        self._arrivals = AddressBuckets(
            config.max_connections_per_minute / 60.0,
            config.max_connections_per_minute,
            config.max_tracked_addresses,
        )

    def start(self, services: Services, listeners: list[tuple[socket.socket, ServerTls | None]]) -> None:
        """Start one acceptor thread per listening socket: ``acceptor``, then ``acceptor-tls``."""
        self._services = services
        self._listeners = listeners
        for index, (listener, tls) in enumerate(listeners):
            name = "acceptor" if index == 0 else "acceptor-tls"
            thread = threading.Thread(target=self._accept_loop, args=(listener, tls), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop accepting: close the listening sockets, join the acceptors, stop the refusal closer."""
        self._stopping.set()
        for listener, _tls in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once (Linux)
        for thread in self._threads:
            thread.join(ACCEPT_POLL + 0.5)
        for listener, _tls in self._listeners:
            listener.close()
        self._closer.stop(0.2)

    # -- The table of live connections (any thread) --------------------------------------------------------

    def connections(self) -> list[Connection]:
        """A copy of the live connections."""
        with self._lock:
            return list(self._connections.values())

    def find(self, nick: str) -> Connection | None:
        """The connection logged in as `nick` (under case folding), if any."""
        key = fold(nick)
        with self._lock:
            return next((c for c in self._connections.values() if c.client.key == key), None)

    @property
    def lingering(self) -> int:
        """Refused connections not closed yet (see chat_server.acceptor.closer)."""
        return self._closer.lingering

    def forget(self, connection: Connection) -> None:
        """Called by a connection's reader thread as its very last act."""
        self.tally.closed(connection.close_reason or "connection lost")
        with self._lock:
            self._connections.pop(connection.id, None)
            key = address_key(connection.peer[0])
            self._per_ip[key] -= 1
            if self._per_ip[key] <= 0:
                del self._per_ip[key]

    # -- Acceptor threads ----------------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, tls: ServerTls | None) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self._stopping.is_set():
                    return
                log.warning("event=accept_failed error=%s", error)
                time.sleep(0.05)  # e.g. out of file descriptors: do not spin; the cause may clear
                continue
            try:
                self._admit(sock, peer, tls)
            except Exception:
                log.exception("event=admit_failed peer=%s", peer)
                sock.close()

    def _admit(self, sock: socket.socket, peer: tuple[str, int], tls: ServerTls | None) -> None:
        config = self.config
        ip = plain_address(peer[0])  # a dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d
        key = address_key(ip)  # what the per-address limits count: IPv6 by its /64
        retry_ms: int | None = None
        # The connection rate comes first, outside `_lock` (its table has its own lock; locks never nest).
        # Every connection it lets through spends a token, even one the caps below then refuse.
        if wait := self._arrivals.take(key):
            per_minute = config.max_connections_per_minute
            refusal: tuple[ErrorCode, str] | None = (
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {per_minute} new connections a minute",
            )
            retry_ms = max(1, int(wait * 1000 + 0.999))
        else:
            with self._lock:
                if len(self._connections) >= config.max_clients:
                    refusal = (ErrorCode.SERVER_FULL, "the server is full")
                elif self._per_ip[key] >= config.max_clients_per_ip:
                    refusal = (
                        ErrorCode.TOO_MANY_CONNECTIONS,
                        f"at most {config.max_clients_per_ip} per address",
                    )
                else:
                    refusal = None
                    conn_id = next(self._ids)
        if refusal is not None:
            log.info("event=refused peer=%s code=%s", host_port(ip, peer[1]), refusal[0])
            self.tally.count("refusals", refusal[0].value)
            if tls is None:
                self._refuse(sock, *refusal, retry_ms)
            else:
                sock.close()  # an error frame needs a handshake first, and the acceptor never waits for one
            return
        tune(sock, config.send_buffer)
        assert self._services is not None
        pump = tls.pump() if tls is not None else None
        connection = Connection(self._services, sock, (ip, peer[1]), conn_id, self.forget, pump)
        with self._lock:
            self._connections[conn_id] = connection
            self._per_ip[key] += 1
        connection.start()

    def _refuse(self, sock: socket.socket, code: ErrorCode, message: str, retry_after_ms: int | None) -> None:
        """Send the refusal and half-close; the refusal closer closes once the client has read it."""
        try:
            # A fresh socket's send buffer always takes one small frame, so this cannot block for long.
            sock.settimeout(0.5)
            sock.sendall(error_frame(code, message, retry_after_ms=retry_after_ms, fatal=True))
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()  # the peer is already gone; there is no one left to tell
            return
        self._closer.hand_over(sock)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket whose `accept` wakes every `ACCEPT_POLL` seconds to check for `stop()`.

    `host` is an IPv4 or IPv6 address or a name, which listens on the first address it resolves to (in the
    system's order of preference). ``::`` (all IPv6 addresses) is dual-stack: IPV6_V6ONLY is off, so IPv4
    clients connect too and are seen as IPv4-mapped addresses (``::ffff:192.0.2.7``).
    """
    family, _type, _proto, _name, address = socket.getaddrinfo(
        host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    dual = family == socket.AF_INET6 and address[0] == "::" and socket.has_dualstack_ipv6()
    listener = socket.create_server(
        address, family=family, backlog=128, reuse_port=False, dualstack_ipv6=dual
    )
    listener.settimeout(ACCEPT_POLL)
    return listener


def tune(sock: socket.socket, send_buffer: int) -> None:
    """TCP_NODELAY (a chat line should not wait for Nagle), keepalive (a backstop against dead peers)."""
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
