"""`ChatServer`: the listening socket, the acceptor thread, and the start/stop of everything else.

Thread model (the one place it is written down; docs/architecture.md draws it)
=============================================================================

Threads
-------
``acceptor`` (1, plus ``acceptor-tls`` when TLS has its own port)
    Owns one listening socket. Accepts, enforces `max_connections_per_minute`, `max_clients` and
    `max_clients_per_ip` (refusing with one `error` frame, then `shutdown(SHUT_WR)` and a hand-over to the
    refusal closer; on a TLS port, by closing: no handshake is done on the acceptor), sets TCP_NODELAY and
    SO_KEEPALIVE, and starts a `Connection`. Nothing else: it never waits for a client.
``refusal-closer`` (0 or 1: started by the first refusal)
    Owns the sockets refused at accept once their error frame is written and their sending side shut
    (`chat_server.acceptor.closer`): reads and throws away what each client sends until it closes too, or for
    at most `refusal_linger` seconds, then closes it; at most `max_lingering` at once (the oldest goes first).
    So a close never finds unread input, and never sends the reset that would destroy the refusal. Never
    writes.
``conn-N-reader`` (1 per connection)
    Owns the socket's receiving side (blocking `recv`, its timeout = the next deadline), the connection's
    `ProtocolConnection` (sans-I/O decoder), its rate limit buckets, its deadlines (TLS handshake, hello,
    frame completion, ping, dead peer) and its SQLite *read* connection. On a TLS port it first does the
    handshake itself (its own bounded `recv`/`sendall`, before the connection has a channel on the sender),
    then decrypts each `recv` through the connection's `TlsPump` (chat_server.tls). Answers `ping` itself,
    and through the connection's `Dispatcher` (chat_server.reader.dispatch) checks the rate limits, answers
    `history` requests and submits every other request to the history thread. Checks passwords itself
    (`chat_server.reader.gate`): the server password, and a registered nick's password with scrypt, which it
    also runs to hash a new one, reading the stored hash with its own read connection. Only the result (a
    proof, or the finished hash) goes to the history thread: scrypt costs tens of milliseconds by design, and
    on the history thread it would hold up all chat. Closes the socket once the sender has let go of it and
    the client's kernel has acknowledged the last bytes (at most `linger`, or `drop_linger` after a
    `sendq_exceeded` drop), discarding unread input first, so the close is never a reset.
    Also owns the connection's file transfers (`chat_server.reader.uploads`): writes and hashes upload chunks
    in the partial file and answers `file_progress`; answers `file_get` (access check on its read connection,
    `os.pread` of one chunk, `file_data` into the outbox's bulk lane). Only the final "store this offer" goes
    to the history thread (`StoreFile`). Before refusing a file request for want of membership it waits
    (bounded) for the history thread to apply the connection's earlier requests (`Settle`): a `join` sent
    just before counts. At the end it submits the `Disconnect` and waits (bounded) until the history thread
    has applied it, so its socket closes only once the nick is free.
    A request over the rate limit makes it wait for the token (fakelag: `Connection._fakelag`, on the
    connection's own `_wake` event, holding no lock, woken by `close()`), reading nothing meanwhile, so TCP
    holds that client back while every other connection goes on; kept behind its client for
    `max_fakelag_seconds`, it ends the connection with `excess_flood`.
``sender`` (1)
    Owns the sending side of every socket (a non-blocking `dup`), the ready queue and the selector
    (`chat_server.sender.thread`). Takes everything queued in a ready connection's `Outbox` and writes it with
    one `send`; keeps what the kernel did not take and waits for writability; enforces the write deadline and
    the soft-limit timer. The only thread that writes to client sockets after their TLS handshake, and it
    never waits for one of them. For a TLS channel it encrypts what it takes (under ``TlsPump._lock``) and
    writes the ciphertext exactly as it writes plaintext.
``history`` (1)
    Owns all shared chat state (the `Hub`: nicks, rooms, members, topics, away messages, and each client's
    `account`) and the SQLite *writer* connection, registered nicks included (`chat_server.history.accounts`):
    it has the final say on them, checking a reader's proof against the row as it is then, never hashing.
    Applies requests strictly in order; stores messages with group commit; after each
    commit, puts the acks and the encoded broadcasts into the recipients' outboxes, then wakes the sender
    once for the whole batch. Stores file offers (`chat_server.history.fileoffers`); never touches the files
    folder. Owns each room's moderation rules (`chat_server.history.rules`: operators, bans, mutes, modes),
    read and changed by no other thread, so they need no lock. Resumes sessions (a `hello` with the holder's
    `resume_token` takes its place in the hub, chat_server.history.chat). Its only look at a socket: when a
    login wants a held nick, a zero-timeout `select` on the holder's socket (`Client.input_waiting`) tells
    whether the holder may be leaving; then the login's reader waits (bounded, `nick_release_wait`) for the
    holder's logout instead of being refused at once.
``files-sweeper`` (0 or 1, only with file sharing on)
    Owns its own SQLite read connection. Every `files.sweep_interval` seconds deletes expired stored files
    and abandoned partial uploads (`chat_server.files`).
``metrics-http`` (0 or 1, only with ``--metrics``)
    Owns the metrics endpoint's listening socket (chat_server.metrics). Answers one HTTP request at a time,
    each bounded by `HTTP_TIMEOUT`: reads the `Tally` (plain counters; its rare-event table under
    ``Tally._lock``) and `observe()` (copies under ``ChatServer._lock``, then reads the hub under
    ``Hub.lock``: one after the other, never nested), and /proc. Writes nothing any other thread reads.
``mpchat-beacon`` (0 or 1, only with the LAN beacon on)
    Owns its UDP socket. Announces the server and answers discovery queries; reads the hub only through
    `Hub.summaries()` and `Hub.online()`, which copy under ``Hub.lock`` (see chat_server/beacon/beacon.py).

Locks (none is ever held during socket or disk I/O, and none is taken while holding another)
-------------------------------------------------------------------------------------------
``Hub.lock``
    Guards the hub's dictionaries and each room's member list. Written by the history thread only; read by
    readers (membership check for `history`) and by `stats()`. Fan-out copies the member list under it,
    releases it, then appends to each outbox.
``Outbox._lock``
    Guards one connection's queue of encoded frames and its byte count (many producers; the sender swaps the
    list out under it and writes after releasing it). The sender's ready queue is a `deque` (appends and pops
    are atomic) plus a wake-up socket pair; its other state belongs to the sender thread alone.
``Sequencer._lock``
    Guards the history thread's request queue.
``ChatServer._lock``
    Guards the table of live connections and the per-address counts (acceptor, finishing readers, `stop()`).
``Connection._lock``
    Guards a connection's close reason (set once, by whichever thread closes first) and its fakelag wake-up
    event (made by the reader's first wait, set by `close()` after releasing the lock).
``Closer._lock``
    Guards the refusal closer's hand-over queue, its thread and its count of lingering sockets (the acceptor
    appends, the ``refusal-closer`` thread takes; `stats()` reads the count). No socket I/O under it.
``AddressBuckets._lock``
    Guards one per-address table of buckets: wrong passwords (in `Gate`, any reader thread) or new
    connections (`ChatServer._arrivals`, the acceptors).
``Gate._hashing`` (a semaphore, not a lock)
    Lets at most `max_concurrent_hashes` readers run scrypt at once (16 MiB each); a reader waits for a slot
    at most `HASH_WAIT` seconds, holding no lock meanwhile.
``TlsPump._lock`` (TLS connections only)
    Guards one connection's `ssl.SSLObject` and its two memory BIOs: the reader feeds ciphertext and reads
    plaintext under it, the sender writes plaintext and takes ciphertext under it; socket I/O happens after
    releasing it. Bytes TLS wants to send on the reader's behalf (tickets, alerts) wait in the outgoing BIO
    and the reader marks the channel ready, so the sender stays the only writer.
``Tally._lock``
    Guards the table of rare events in the server's counters (chat_server.metrics): logins, refusals,
    disconnects, rate-limit refusals, file bytes. Taken by any thread for one dictionary update; the
    frequent counters (messages, deliveries, the commit and fan-out histograms) are plain attributes, each
    written by one thread only (history or sender) and read without a lock.
``FileStore._lock``
    Guards the in-memory bookkeeping of the files folder: partial files claimed by live uploads, stored files
    pinned until their offer is committed, names the sweeper is deleting, bytes reserved against the quotas.
    Taken by readers, the history thread (`Reservation.finish`) and the sweeper; no file I/O under it (a
    reader that wants a name being deleted waits on its condition, bounded by `SWEEP_WAIT`).

Stop order (`stop()`, bounded by `STOP_TIMEOUT` in total)
---------------------------------------------------------
0. Stop the beacon (if any): the server is no longer announced. Stop the files sweeper (if any) and the
   metrics endpoint (if any).
1. Close the listening sockets and join the acceptors: no new connections. Stop the refusal closer: the
   refused sockets still lingering are closed.
2. Tell every connection `server_shutdown` (queued after what it already has) and shut its receiving side:
   each reader stops reading, submits its `Disconnect`, and gives the sender until the shared deadline to
   write its last frames.
3. Join the readers (each releases its channel from the sender and closes its socket once the sender is done
   with it or the deadline passed).
4. Stop the sender thread (no channel is left), then the history thread: it applies what is still queued,
   commits, and closes the database.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

from shared.addresses import address_key, host_port, plain_address
from shared.discovery import BeaconInfo
from shared.errors import ErrorCode
from shared.text import fold

from .acceptor.closer import Closer
from .beacon.beacon import Beacon, load_or_create_server_id
from .config import ServerConfig
from .files import FileStore, FileSweeper, SweepResult
from .history.chat import Chat
from .history.thread import Sequencer
from .hub import Hub
from .metrics import TOP_QUEUES, Gauges, MetricsEndpoint, Tally
from .ratelimit import AddressBuckets
from .reader.connection import Connection
from .reader.gate import Gate
from .replies import error_frame
from .sender.thread import Sender
from .services import Services
from .storage import HistoryStore
from .tls import ServerTls, server_tls

log = logging.getLogger(__name__)

#: Longest `stop()` takes, all threads included.
STOP_TIMEOUT = 1.8
#: How long the acceptor waits in `accept` before checking whether it should stop.
ACCEPT_POLL = 0.5
#: File in the data folder holding the server's stable id, announced by the LAN beacon.
SERVER_ID_FILE = "server-id"
#: Seconds of TCP keepalive idle time before the kernel starts probing a silent peer (a backstop to pings).
KEEPALIVE_IDLE = 60


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of the server's load, for tests, logs and operators."""

    connections: int
    logged_in: int
    rooms: int
    queued_bytes: int
    max_queued_bytes: int
    threads: int
    #: Bytes queued for each logged-in nick.
    queues: dict[str, int]
    #: Connections refused at accept and not closed yet (see chat_server.acceptor.closer).
    lingering: int = 0


class ChatServer:
    """A running chat server: `start()` (or `with`) binds and starts threads; `stop()` ends them all."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        self._per_ip: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._listener: socket.socket | None = None
        #: Every listening socket with the TLS it speaks (None: plaintext); the first is `_listener`.
        self._listeners: list[tuple[socket.socket, ServerTls | None]] = []
        self._acceptors: list[threading.Thread] = []
        self._tls: ServerTls | None = None
        self._services: Services | None = None
        self._stopping = threading.Event()
        self._stopped = False
        self._beacon: Beacon | None = None
        self._sweeper: FileSweeper | None = None
        self._metrics: MetricsEndpoint | None = None
        #: The server's counters (chat_server.metrics): what the metrics endpoint and /stats report.
        self.tally = Tally()
        #: The files folder (None when file sharing is off or before `start`).
        self.files: FileStore | None = None
        # Refused connections, half-closed until their clients have read the refusal (own thread and lock).
        self._closer = Closer(config.refusal_linger, config.max_lingering)
        # New connections per address per minute (the acceptors' own; it has its own lock, never nested).
        self._arrivals = AddressBuckets(
            config.max_connections_per_minute / 60.0,
            config.max_connections_per_minute,
            config.max_tracked_addresses,
        )

    # -- Life cycle ----------------------------------------------------------------------------------------

    def __enter__(self) -> ChatServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); with port 0 in the config, the port the system chose."""
        if self._listener is None:
            raise RuntimeError("the server is not started")
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def tls_address(self) -> tuple[str, int] | None:
        """The bound (host, port) that speaks TLS (the main one with ``--tls`` alone); None without TLS."""
        for listener, tls in self._listeners:
            if tls is not None:
                host, port = listener.getsockname()[:2]
                return host, port
        return None

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """The bound (host, port) of the metrics endpoint; None when it is off."""
        return self._metrics.address if self._metrics is not None else None

    @property
    def fingerprint(self) -> str | None:
        """SHA-256 of the TLS certificate's public key (64 hex digits); None without TLS."""
        return self._tls.fingerprint if self._tls is not None else None

    def start(self) -> None:
        """Open the history, bind, listen, and start the history and acceptor threads."""
        if self._listener is not None:
            raise RuntimeError("the server is already started")
        config = self.config
        store = HistoryStore(
            config.history_path,
            synchronous=config.history_sync.upper(),
            busy_timeout=config.history_busy_timeout,
        )
        hub = Hub()
        listeners: list[tuple[socket.socket, ServerTls | None]] = []
        try:
            if config.files.enabled:
                self.files = FileStore(config.files, config.files_folder)
            chat = Chat(hub, store, config, self.tally)
            tls = (
                server_tls(config.tls, config.history_path.parent, config.host)
                if config.tls.enabled
                else None
            )
            listeners.append((_listen(config.host, config.port), None if config.tls.separate_port else tls))
            if config.tls.separate_port:
                assert config.tls.port is not None
                listeners.append((_listen(config.host, config.tls.port), tls))
            metrics_address = config.metrics_address
            if metrics_address is not None:
                self._metrics = MetricsEndpoint(*metrics_address, self.tally, self.observe)
        except BaseException:
            for listener, _tls in listeners:
                listener.close()
            store.close()
            raise
        self._tls = tls
        sender = Sender(config.write_timeout, tally=self.tally)
        sequencer = Sequencer(
            chat,
            sender,
            max_queue=config.sequencer_queue,
            max_batch=config.commit_batch,
            max_wait=config.sequencer_wait,
        )
        self._services = Services(
            config=config,
            hub=hub,
            sequencer=sequencer,
            store=store,
            sender=sender,
            gate=Gate(config),
            files=self.files,
            tally=self.tally,
            observer=self,
        )
        self._listener = listeners[0][0]
        self._listeners = listeners
        sender.start()
        sequencer.start()
        if self.files is not None:
            self._sweeper = FileSweeper(self.files, store.open_reader)
            self._sweeper.start()
        for listener, listener_tls in listeners:
            name = "acceptor" if listener is self._listener else "acceptor-tls"
            acceptor = threading.Thread(
                target=self._accept_loop, args=(listener, listener_tls), name=name, daemon=True
            )
            self._acceptors.append(acceptor)
            acceptor.start()
        if self._metrics is not None:
            self._metrics.start()
            log.info("event=metrics host=%s port=%d", *self._metrics.address)
        host, port = self.address
        log.info("event=listening host=%s port=%d history=%s", host, port, config.history_path)
        if self.tls_address is not None:
            log.info("event=tls port=%d fingerprint=%s", self.tls_address[1], self.fingerprint)
        if config.beacon.enabled:
            try:
                self._start_beacon()
            except BaseException:
                self.stop()  # a server that cannot announce as configured does not run half-started
                raise

    def stop(self) -> None:
        """Tell clients, stop accepting, flush the history, join every thread (within `STOP_TIMEOUT`)."""
        if self._listener is None or self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + STOP_TIMEOUT
        self._stopping.set()
        if self._beacon is not None:
            self._beacon.stop()  # stop announcing a server that is going away
        if self._sweeper is not None:
            self._sweeper.stop(0.2)  # an unfinished sweep goes on at the next start
        if self._metrics is not None:
            self._metrics.stop(0.2)  # a scrape in progress is cut short: its thread is a daemon
        for listener, _tls in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once (Linux)
        for acceptor in self._acceptors:
            acceptor.join(ACCEPT_POLL + 0.5)
        for listener, _tls in self._listeners:
            listener.close()
        self._closer.stop(0.2)
        with self._lock:
            connections = list(self._connections.values())
        # Leave the history thread time to commit after the connections are flushed.
        flush_deadline = deadline - 0.3
        for connection in connections:
            connection.shut_down_server(flush_deadline)
        for connection in connections:
            connection.reader.join(max(0.0, deadline - 0.2 - time.monotonic()))
        assert self._services is not None
        self._services.sender.stop(0.1)  # every reader has released its channel by now
        self._services.sequencer.stop(max(0.05, deadline - time.monotonic()))
        log.info("event=stopped")

    # -- LAN beacon ----------------------------------------------------------------------------------------

    def _start_beacon(self) -> None:
        """Start announcing this server on the LAN (see chat_server.beacon.beacon and docs/discovery.md)."""
        server_id = load_or_create_server_id(self.config.history_path.parent / SERVER_ID_FILE)
        # With TLS the beacon points at the TLS port: whoever finds the server on the LAN gets encryption.
        tls_address = self.tls_address
        port = tls_address[1] if tls_address is not None else self.address[1]
        fingerprint = self.fingerprint

        def snapshot() -> BeaconInfo:
            # Runs on the beacon thread: the hub's own queries take its lock and copy what they return.
            assert self._services is not None
            hub = self._services.hub
            rooms = sorted(((name, count) for name, _topic, count in hub.summaries()), key=lambda r: -r[1])
            return BeaconInfo(
                server_id=server_id,
                name=self.config.server_name,
                port=port,
                users=hub.online(),
                rooms=rooms,
                tls=fingerprint is not None,
                fingerprint=fingerprint,
            )

        self._beacon = Beacon(self.config.beacon, snapshot)
        self._beacon.start()
        log.info(
            "event=beacon addresses=%s port=%d",
            ",".join(self.config.beacon.addresses),
            self.config.beacon.port,
        )

    # -- Accepting -----------------------------------------------------------------------------------------

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
        _tune(sock, config.send_buffer)
        assert self._services is not None
        pump = tls.pump() if tls is not None else None
        connection = Connection(self._services, sock, (ip, peer[1]), conn_id, self._forget, pump)
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

    def _forget(self, connection: Connection) -> None:
        """Called by a connection's reader thread as its very last act."""
        self.tally.closed(connection.close_reason or "connection lost")
        with self._lock:
            self._connections.pop(connection.id, None)
            key = address_key(connection.peer[0])
            self._per_ip[key] -= 1
            if self._per_ip[key] <= 0:
                del self._per_ip[key]

    def sweep_files(self) -> SweepResult:
        """Delete expired files and abandoned uploads now, on the calling thread (the sweeper does this every
        `files.sweep_interval` seconds)."""
        if self.files is None or self._services is None:
            return SweepResult()
        db = self._services.store.open_reader()
        try:
            return self.files.sweep(db)
        finally:
            db.close()

    # -- Observation ---------------------------------------------------------------------------------------

    def stats(self) -> Stats:
        """Current connection count, logged-in users, rooms, queued bytes (total and largest), threads."""
        with self._lock:
            connections = list(self._connections.values())
        queued = [connection.outbox.queued for connection in connections]
        hub = self._services.hub if self._services else None
        return Stats(
            connections=len(connections),
            logged_in=hub.online() if hub else 0,
            rooms=len(hub.rooms) if hub else 0,
            queued_bytes=sum(queued),
            max_queued_bytes=max(queued, default=0),
            threads=threading.active_count(),
            queues={c.client.nick: c.outbox.queued for c in connections if c.client.nick is not None},
            lingering=self._closer.lingering,
        )

    def observe(self) -> Gauges:
        """The gauges of the metrics endpoint and /stats: connections by state, queues, rooms (any thread)."""
        with self._lock:
            connections = list(self._connections.values())
        states: Counter[tuple[str, bool]] = Counter()
        queues: list[tuple[int, str]] = []
        total = 0
        for connection in connections:
            states[connection.state, connection.encrypted] += 1
            queued = connection.outbox.queued
            total += queued
            if queued:
                queues.append((queued, connection.client.nick or f"#conn-{connection.id}"))
        queues.sort(reverse=True)
        hub = self._services.hub if self._services else None
        with hub.lock if hub is not None else contextlib.nullcontext():
            logged_in = len(hub.nicks) if hub else 0
            rooms = len(hub.rooms) if hub else 0
        return Gauges(
            connections=dict(states),
            logged_in=logged_in,
            rooms=rooms,
            queued_bytes=total,
            top_queues=[(nick, size) for size, nick in queues[:TOP_QUEUES]],
        )

    def connection_figures(self, nick: str) -> list[tuple[str, int | float]] | None:
        """The queue and rates of the connection logged in as `nick` (for /stats NICK); None if none is."""
        key = fold(nick)
        with self._lock:
            found = [c for c in self._connections.values() if c.client.key == key]
        if not found:
            return None
        connection = found[0]
        outbox, config = connection.outbox, self.config
        alive = max(self._services.clock() - connection.connected_since, 0.001) if self._services else 0.001
        return [
            ("connected_s", round(alive, 1)),
            ("tls", int(connection.encrypted)),
            ("rooms", len(connection.client.rooms)),
            ("queued_bytes", outbox.queued),
            ("sendq_soft", config.sendq_soft),
            ("sendq_hard", config.sendq_hard),
            ("received_bytes", connection.received),
            ("sent_bytes", outbox.sent),
            ("received_bytes_per_s", round(connection.received / alive, 1)),
            ("sent_bytes_per_s", round(outbox.sent / alive, 1)),
            ("rate_limited", connection.rate_limited),
        ]


def _listen(host: str, port: int) -> socket.socket:
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


def _tune(sock: socket.socket, send_buffer: int) -> None:
    """TCP_NODELAY (a chat line should not wait for Nagle), keepalive (a backstop against dead peers)."""
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
