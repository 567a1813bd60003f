"""`ChatServer`: builds the parts, starts every thread, and stops them all in order.

Thread model (the one place it is written down; docs/architecture.md draws it and argues for it;
tests/server/test_thread_model.py checks that every thread and lock in chat_server is named here)
===================================================================================================

The layout follows the threads: the code a thread runs lives in its package (``chat_server/reader/``,
``history/``, ``sender/``, ``acceptor/``, ``beacon/``, ``sweeper/``, ``metrics_http/``); the modules at the
top level are used by several threads, each under the lock named below. This module runs on the thread that
calls `start()` and `stop()`.

Threads
-------
``acceptor`` (1, plus ``acceptor-tls`` when TLS has its own port; chat_server.acceptor.acceptor)
    Owns one listening socket. Accepts, enforces `max_connections_per_minute`, `max_clients` and
    `max_clients_per_ip` (refusing with one `error` frame, then `shutdown(SHUT_WR)` and a hand-over to the
    refusal closer; on a TLS port, by closing: no handshake is done on the acceptor), sets TCP_NODELAY and
    SO_KEEPALIVE, and starts a `Connection`. Nothing else: it never waits for a client.
``refusal-closer`` (0 or 1: started by the first refusal; chat_server.acceptor.closer)
    Owns the sockets refused at accept once their error frame is written and their sending side shut: reads
    and throws away what each client sends until it closes too, or for at most `refusal_linger` seconds, then
    closes it; at most `max_lingering` at once (the oldest goes first). So a close never finds unread input,
    and never sends the reset that would destroy the refusal. Never writes.
``conn-N-reader`` (1 per connection; chat_server.reader)
    Owns the socket's receiving side (blocking `recv`, its timeout = the next deadline), the connection's
    `ProtocolConnection` (sans-I/O decoder), its rate limit buckets (`Budget`), its deadlines (TLS handshake,
    hello, frame completion, ping, dead peer) and its SQLite *read* connection. On a TLS port it first does
    the handshake itself (its own bounded `recv`/`sendall`, before the connection has a channel on the
    sender), then decrypts each `recv` through the connection's `TlsPump` (chat_server.tls). Looks each
    request up in the routing table (chat_server.routes), spends its bucket, then runs a reader row's handler
    itself (`ping`, `fetch_history`, `search`, `typing`, `stats`, file requests) or submits the request to the
    history thread. History pages and searches (chat_server.reader.pages, chat_server.reader.search) read its
    own read connection (for a search, with the search index's file attached): in WAL mode a reader sees the
    last commit while the history thread writes the next, so neither waits for the other and a slow search
    never delays chat (SQLite releases the GIL while it runs a statement). Before a search it waits (bounded,
    `INDEX_WAIT`) on ``SearchIndexer._changed`` for the indexer to catch up with the newest message it sees.
    A `typing` is relayed from here to the room's other members (`Hub.publish`: the member list copied under
    ``Hub.lock``, then one append to each send queue), never stored; its throttle (one start per room per
    `typing_interval`) is the connection's own (`Connection._typing`).
    In cluster mode it first claims the login's nick (and the new nick of a `nick` request) across the
    cluster (chat_server.cluster.nicks), waiting for the ``nats`` thread at most `cluster.publish_timeout`,
    holding no lock; a login that gave a registered nick's password may take over the entry of a nick absent
    in the cluster (`ClusterPresence.absent_nicks`, a frozenset the history thread replaces whole).
    Checks passwords itself (chat_server.reader.gate): the server password, and a registered nick's password
    with scrypt, which it also runs to hash a new one, reading the stored hash with its own read connection.
    Only the result (a proof, or the finished hash) goes to the history thread: scrypt costs tens of
    milliseconds by design, and on the history thread it would hold up all chat. Owns the connection's file
    transfers (chat_server.reader.uploads): writes and hashes upload chunks in the partial file and answers
    `file_progress`; answers `file_get` (access check on its read connection, `os.pread` of one chunk,
    `file_data` into the send queue's bulk lane). Only the final "store this offer" goes to the history thread
    (`StoreFile`). Before refusing a file request for want of membership it waits (bounded) for the history
    thread to apply the connection's earlier requests (`Settle`): a `join` sent just before counts.
    A request over the rate limit makes it wait for the token (fakelag: `Connection._fakelag`, on the
    connection's own ``Connection._wake`` event, holding no lock, woken by `close()`), reading nothing
    meanwhile, so TCP holds that client back while every other connection goes on; kept behind its client
    for `max_fakelag_seconds`, it ends the connection with `excess_flood`. Whatever ends the connection
    raises `HangUp`, caught once in its read loop. At the end it submits the `Disconnect` and waits (bounded)
    until the history thread has applied it, so its socket closes only once the nick is free; it closes the
    socket once the sender has let go of it and the client's kernel has acknowledged the last bytes (at most
    `linger`, or `drop_linger` after a `sendq_exceeded` drop), discarding unread input first, so the close
    is never a reset.
``sender`` (1; chat_server.sender)
    Owns the sending side of every socket (a non-blocking `dup`), the ready queue and the selector. Takes
    everything queued in a ready connection's `SendQueue` and writes it with one `send`; keeps what the
    kernel did not take and waits for writability; enforces the write deadline and the soft-limit timer. The
    only thread that writes to client sockets after their TLS handshake, and it never waits for one of them.
    For a TLS channel it encrypts what it takes (under ``TlsPump._lock``) and writes the ciphertext exactly
    as it writes plaintext.
``history`` (1; chat_server.history)
    Owns all shared chat state (the `Hub`: nicks, rooms, members, topics, away messages, each client's
    `account`, the sessions of each registered nick: `Client.sessions`, one list shared by them, and with
    `always_on` the absent sessions standing for registered nicks none of whose connections is there,
    chat_server.history.presence; in cluster mode also the roster of every server's members, away messages
    and absent nicks, chat_server.cluster.presence, and the requests held while a client's presence record
    is on its way) and the
    SQLite *writer* connection, registered nicks included (chat_server.history.accounts): it has the final
    say on them, checking a reader's proof against the row as it is then, never hashing.
    Applies requests strictly in order, each with the handler its row of the routing table names; stores
    messages with group commit; after each commit, puts the acks and the encoded broadcasts into the
    recipients' send queues, then wakes the sender once for the whole batch. A read marker rides the same
    commit: its answer waits with the acks (`Messages.after_commit`), and a failed write refuses the whole
    batch (`Messages.write_failed`). Stores file offers (chat_server.history.fileoffers); never touches the
    files folder. Owns each room's moderation rules
    (chat_server.history.rules: operators, bans, mutes, modes), read and changed by no other thread, so they
    need no lock. Resumes sessions (a `hello` with the holder's `resume_token` takes its place in the hub).
    Its only look at a socket: when a login wants a held nick, a zero-timeout `select` on the holder's socket
    (`Client.input_waiting`) tells whether the holder may be leaving; then the login's reader waits
    (bounded, `nick_release_wait`) for the holder's logout instead of being refused at once.
``search-indexer`` (1; chat_server.indexer)
    Owns the search index (chat_server.searchdb: an FTS5 index in its own file beside the history) and its
    writer connection, on which the history is attached to be read (never written). Indexes what the history
    has committed since the newest message indexed, a batch at a time (its own transactions, in its own file:
    it never takes the history's write lock, and nothing on the message path indexes); then waits on
    ``SearchIndexer._changed`` (at most a second) until a reader asks it to catch up. FTS5 runs in C with
    the GIL released, so this work goes to the other core rather than the history thread's.
``files-sweeper`` (0 or 1, only with file sharing on; chat_server.sweeper)
    Owns its own SQLite read connection. Every `files.sweep_interval` seconds deletes expired stored files
    and abandoned partial uploads (`FileStore.sweep`, chat_server.files).
``metrics-http`` (0 or 1, only with ``--metrics``; chat_server.metrics_http)
    Owns the metrics endpoint's listening socket. Answers one HTTP request at a time, each bounded by
    `HTTP_TIMEOUT`: reads the `Tally` (plain counters; its rare-event table under ``Tally._lock``) and
    `observe()` (copies under ``Acceptor._lock``, then reads the hub under ``Hub.lock``: one after the
    other, never nested), and /proc. Writes nothing any other thread reads.
``nats`` (0 or 1, only in cluster mode, ``--cluster``; chat_server.cluster.link)
    Runs an asyncio loop that owns the `nats-py` connection to NATS JetStream: the publish pipeline (the
    history thread hands it each batch's messages with `NatsLink.publish`, which appends to a deque and wakes
    the loop once with `call_soon_threadsafe`; the loop sends them all, then waits for their
    acknowledgements together) and the ordered consumer of the message log, whose records it hands to the
    history thread as `Replicated` requests (`HistoryThread.submit`, waiting while that queue is full; the
    history thread never waits for this one). Reports duplicates and failed publishes the same way
    (`Published`). Keeps this server's entry in the servers bucket fresh and watches the others': it
    replaces `NatsLink.peers` (a tuple, one assignment) which the history thread reads for `welcome`. Keeps
    the nick bucket in step with the hub's nicks every second (chat_server.cluster.nicks: a copy of the
    nicks under ``Hub.lock``, the writes after releasing it), answers the readers' nick claims, and watches
    the bucket for nicks taken over elsewhere (`NickLost` requests to the history thread). Every second
    compares the servers holding seats in the cluster's roster (`ClusterPresence.seated_origins`, a frozenset
    the history thread replaces whole) with the live entries of the servers bucket, and reports the dead ones
    (`Vanished`, chat_server.cluster.presence) to the history thread. Touches no
    client socket, no SQLite connection and changes no hub state; `NatsLink.connected` is a flag it writes
    and the history thread reads.
``nats-files_N`` (0 or 1, only in cluster mode with file sharing on, started by the first shared file or
upload checkpoint; chat_server.cluster.files, chat_server.cluster.checkpoints)
    The ``nats`` loop's executor: reads a finished upload's file while `nats-py` puts it into the cluster's
    object store, and writes a file fetched from there into the files folder (``partial/fetch-*``, then moved
    into place by the loop); reads (and hashes) the segment of a partial file an upload checkpoint puts into
    the checkpoints' bucket, and writes a checkpoint fetched for a resume (``partial/resume-*``, then moved
    into place by the reader that asked), so the loop never waits for the disk. The reader that completed
    the upload has moved on (the loop then hands the offer to the history thread as a `FileShared`
    request); a reader serving a `file_get` for a file this server does not hold, or a `file_offer` whose
    checkpoint is on the cluster, waits for the fetch, bounded by `cluster.fetch_timeout`, holding no
    lock. Touches no socket, no SQLite and no chat state.
``mpchat-beacon`` (0 or 1, only with the LAN beacon on; chat_server.beacon)
    Owns its UDP socket. Announces the server and answers discovery queries; reads the hub only through
    `Hub.summaries()` and `Hub.online()`, which copy under ``Hub.lock``, and in cluster mode the other
    servers' addresses, `NatsLink.peers` (a tuple the ``nats`` thread replaces in one assignment).

So a server runs 4 threads (acceptor, sender, history, search-indexer) plus one per connection, and at most
one each of ``acceptor-tls``, ``refusal-closer``, ``files-sweeper``, ``metrics-http``, ``nats``,
``nats-files_N`` and ``mpchat-beacon``: with the default `max_clients` of 256, at most 267.

Locks (none is ever held during socket or disk I/O, and none is taken while holding another)
-------------------------------------------------------------------------------------------
``Hub.lock``
    Guards the hub's dictionaries, each room's member list and each nick's list of sessions. Written by the
    history thread only; read by readers (membership check for `fetch_history`, `search` and `typing`, the
    member list a `typing` goes to, `stats`), the beacon, `stats()` and, in cluster mode, the ``nats`` thread
    (a copy of the nicks and their resume tokens, once a second). Fan-out copies the member list under it,
    releases it, then appends to each send queue.
``SendQueue._lock``
    Guards one connection's queue of encoded frames and its byte count (many producers; the sender swaps the
    list out under it and writes after releasing it). The sender's ready queue is a `deque` (appends and pops
    are atomic) plus a wake-up socket pair; its other state belongs to the sender thread alone.
``HistoryThread._lock`` (and its condition ``HistoryThread._changed``)
    Guards the history thread's request queue (readers submit, the history thread takes; a reader waits on
    the condition, bounded by `history_wait`, while the queue is full).
``Acceptor._lock``
    Guards the table of live connections and the per-address counts (the acceptors add, each finishing
    reader removes its own, `stop()`, `stats()` and the metrics copy it).
``Connection._lock``
    Guards a connection's close reason (set once, by whichever thread closes first) and its fakelag wake-up
    event ``Connection._wake`` (made by the reader's first wait, set by `close()` after releasing the lock).
``RefusalCloser._lock``
    Guards the refusal closer's hand-over queue, its thread and its count of lingering sockets (the acceptor
    appends, the ``refusal-closer`` thread takes; `stats()` reads the count). No socket I/O under it.
``AddressBuckets._lock``
    Guards one per-address table of buckets: wrong passwords (in `Gate`, any reader thread) or new
    connections (the acceptors).
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
``FileStore._lock`` (and its condition ``FileStore._changed``)
    Guards the in-memory bookkeeping of the files folder: partial files claimed by live uploads, stored files
    pinned until their offer is committed, names the sweeper is deleting, bytes reserved against the quotas.
    Taken by readers, the history thread (`Reservation.finish`) and the sweeper; no file I/O under it (a
    reader that wants a name being deleted waits on the condition, bounded by `SWEEP_WAIT`).
``SearchIndexer._changed`` (a condition, with its own lock)
    Guards the newest message id indexed and the newest one a reader waits for. The indexer sets the first
    after each batch and waits on it between looks at the history; a reader about to search raises the
    second, wakes the indexer and waits (bounded) for the first to reach it. No I/O under it.
``Latch._gate`` and ``Latch._guard`` (chat_server.tuning)
    Inside each `Latch`, a set-once flag lighter than a `threading.Event`: a login decided
    (`Client.login_settled`), a sender finished with a channel (`Channel.done`), a `Disconnect` applied.
    One thread sets it, another waits for it (with a timeout).

Events (a stop signal, set once by `stop()`, waited on by the one thread it stops): ``Acceptor._stopping``,
``SearchIndexer._stop``, ``FileSweeper._stop``, ``MetricsEndpoint._stopping``, ``Beacon._stopping``.

Stop order (`stop()`, bounded by `STOP_TIMEOUT` in total)
---------------------------------------------------------
0. Stop the beacon (if any): the server is no longer announced. Stop the files sweeper (if any), the search
   indexer (after its current batch: an unfinished index goes on at the next start) and the metrics endpoint
   (if any).
1. Close the listening sockets and join the acceptors: no new connections. Stop the refusal closer: the
   refused sockets still lingering are closed.
2. Tell every connection `server_shutdown` (queued after what it already has) and shut its receiving side:
   each reader stops reading, submits its `Disconnect`, and gives the sender until the shared deadline to
   write its last frames.
3. Join the readers (each releases its channel from the sender and closes its socket once the sender is done
   with it or the deadline passed).
4. Stop the sender thread (no channel is left), then the history thread: it applies what is still queued,
   commits, and closes the database. In cluster mode the link first stops handing records to the history
   thread (`NatsLink.closing`), and closes the NATS connection and ends the ``nats`` thread after it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from shared.addresses import host_port
from shared.discovery import BeaconInfo, server_address_ok

from .acceptor.acceptor import Acceptor, listen
from .beacon.beacon import Beacon, load_or_create_server_id
from .config import ServerConfig
from .files import FileStore, SweepResult
from .history.chat import Chat
from .history.thread import HistoryThread
from .hub import Hub
from .indexer.indexer import SearchIndexer
from .metrics import TOP_QUEUES, Gauges, Tally
from .metrics_http.endpoint import MetricsEndpoint
from .reader.gate import Gate
from .routes import bind_history
from .searchdb import index_path
from .sender.thread import SenderThread
from .services import Services
from .storage import HistoryStore
from .sweeper.sweeper import FileSweeper
from .tls import ServerTls, server_tls

if TYPE_CHECKING:
    from .cluster.files import SharedFiles
    from .cluster.link import NatsLink
    from .cluster.messaging import ClusterMessages
    from .cluster.nicks import NickLeases
    from .cluster.presence import ClusterPresence
    from .history.moderation import Moderation

log = logging.getLogger(__name__)

#: Longest `stop()` takes, all threads included.
STOP_TIMEOUT = 1.8
#: File in the data folder holding the server's stable id, announced by the LAN beacon.
SERVER_ID_FILE = "server-id"


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
        self._listener: socket.socket | None = None
        #: Every listening socket with the TLS it speaks (None: plaintext); the first is `_listener`.
        self._listeners: list[tuple[socket.socket, ServerTls | None]] = []
        self._tls: ServerTls | None = None
        self._services: Services | None = None
        self._stopped = False
        self._beacon: Beacon | None = None
        self._sweeper: FileSweeper | None = None
        self._indexer: SearchIndexer | None = None
        self._metrics: MetricsEndpoint | None = None
        #: The link to NATS in cluster mode (chat_server.cluster.link); None on a single server.
        self._link: NatsLink | None = None
        #: The server's counters (chat_server.metrics): what the metrics endpoint and /stats report.
        self.tally = Tally()
        #: The files folder (None when file sharing is off or before `start`).
        self.files: FileStore | None = None
        #: The acceptor threads and the table of live connections (chat_server.acceptor.acceptor).
        self._acceptor = Acceptor(config, self.tally)

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
    def cluster_connected(self) -> bool | None:
        """In cluster mode, whether the server is connected to NATS now; None on a single server."""
        return self._link.connected if self._link is not None else None

    @property
    def cluster_servers(self) -> tuple[str, ...]:
        """In cluster mode, the other servers' client addresses as the servers bucket last said (what
        `welcome.servers` and the beacon announce; `NatsLink.peers`, replaced whole by the ``nats`` thread,
        so one read needs no lock); () on a single server."""
        return self._link.peers if self._link is not None else ()

    @property
    def fingerprint(self) -> str | None:
        """SHA-256 of the TLS certificate's public key (64 hex digits); None without TLS."""
        return self._tls.fingerprint if self._tls is not None else None

    def start(self) -> None:
        """Open the history, bind, listen, and start the history and acceptor threads."""
        if self._listener is not None:
            raise RuntimeError("the server is already started")
        config = self.config
        link = self._connect_cluster()  # first: a cluster server whose NATS is down refuses to start
        try:
            store = HistoryStore(
                config.history_path,
                synchronous=config.history_sync.upper(),
                busy_timeout=config.history_busy_timeout,
            )
        except BaseException:
            if link is not None:
                link.stop()
            raise
        self._start(store, link)

    def _announced_address(self) -> str | None:
        """In cluster mode, where the other servers' clients can reach this one (`welcome.servers`):
        `cluster.announce`, else the listening address unless it is a wildcard (then: not announced)."""
        if self.config.cluster.announce is not None:
            return self.config.cluster.announce
        host, port = self.address
        return None if host in ("0.0.0.0", "::") else host_port(host, port)

    def _connect_cluster(self) -> NatsLink | None:
        """In cluster mode, the link to NATS, connected (`ClusterUnavailable` if it cannot be); else None."""
        if not self.config.cluster.enabled:
            return None
        from .cluster.link import NatsLink  # the 'cluster' extra: imported only in cluster mode

        link = NatsLink(self.config.cluster)
        link.connect()
        log.info("event=cluster stream=%s nats=%s", self.config.cluster.stream, ",".join(link.config.urls))
        return link

    def _start(self, store: HistoryStore, link: NatsLink | None) -> None:
        config = self.config
        cluster_messages: ClusterMessages | None = None
        presence: ClusterPresence | None = None
        shared_files: SharedFiles | None = None
        hub = Hub()
        listeners: list[tuple[socket.socket, ServerTls | None]] = []
        try:
            if config.files.enabled:
                self.files = FileStore(config.files, config.files_folder)
            if link is not None:
                from .cluster.messaging import ClusterMessages

                def cluster_messages_of(
                    hub: Hub, store: HistoryStore, ts: Callable[[], int], moderation: Moderation, tally: Tally
                ) -> ClusterMessages:
                    return ClusterMessages(hub, store, ts, moderation, tally, link)

                chat = Chat(hub, store, config, self.tally, cluster_messages_of)
                assert isinstance(chat.messages, ClusterMessages)
                cluster_messages = chat.messages
                from .cluster.node import share_presence

                presence = share_presence(chat, cluster_messages)
                if self.files is not None:
                    from .cluster.files import SharedFiles

                    shared_files = SharedFiles(link, self.files, cluster_messages, chat.moderation.silenced)
            else:
                chat = Chat(hub, store, config, self.tally)
            tls = (
                server_tls(config.tls, config.history_path.parent, config.host)
                if config.tls.enabled
                else None
            )
            listeners.append((listen(config.host, config.port), None if config.tls.separate_port else tls))
            if config.tls.separate_port:
                assert config.tls.port is not None
                listeners.append((listen(config.host, config.tls.port), tls))
            metrics_address = config.metrics_address
            if metrics_address is not None:
                self._metrics = MetricsEndpoint(*metrics_address, self.tally, self.observe)
        except BaseException:
            for listener, _tls in listeners:
                listener.close()
            store.close()
            if link is not None:
                link.stop()
            raise
        self._tls = tls
        sender = SenderThread(config.write_timeout, tally=self.tally)
        handlers = bind_history(
            (chat, chat.messages, chat.conversations, chat.rooms, chat.operators, chat.attention)
        )
        if cluster_messages is not None and presence is not None:
            from .cluster.node import cluster_routes

            handlers = cluster_routes(handlers, chat, cluster_messages, presence, shared_files)
        history = HistoryThread(
            chat,
            handlers,
            sender,
            max_queue=config.history_queue,
            max_batch=config.commit_batch,
            max_wait=config.history_wait,
        )
        self._indexer = SearchIndexer(index_path(config.history_path), config.history_path)
        nick_leases: NickLeases | None = None
        if link is not None:
            from .cluster.nicks import NickLeases

            assert presence is not None
            nick_leases = NickLeases(link, hub, link.report, presence.is_absent)
        self._services = Services(
            config=config,
            hub=hub,
            history=history,
            store=store,
            sender=sender,
            gate=Gate(config),
            files=self.files,
            tally=self.tally,
            observer=self,
            indexer=self._indexer,
            nicks=nick_leases,
            shared_files=shared_files,
        )
        self._listener = listeners[0][0]
        self._listeners = listeners
        sender.start()
        history.start()
        self._indexer.start()
        self._link = link
        if link is not None and cluster_messages is not None:
            from .cluster.node import follow

            try:
                follow(link, history, cluster_messages)
                link.announce(self._announced_address())
                assert nick_leases is not None
                link.run(lambda _js: nick_leases.open(), config.cluster.connect_timeout + 1.0)
                assert presence is not None
                link.run(lambda _js: presence.start_rounds(link), config.cluster.connect_timeout)
                if shared_files is not None:
                    link.run(lambda _js: shared_files.open(), config.cluster.connect_timeout + 1.0)
            except BaseException:
                self._listener = None
                self._indexer.stop(0.5)
                sender.stop(0.1)
                history.stop(1.0)
                link.stop()
                for listener, _tls in listeners:
                    listener.close()
                raise
        if self.files is not None:
            self._sweeper = FileSweeper(self.files, store.open_reader)
            self._sweeper.start()
        self._acceptor.start(self._services, listeners)
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
        if self._beacon is not None:
            self._beacon.stop()  # stop announcing a server that is going away
        if self._sweeper is not None:
            self._sweeper.stop(0.2)  # an unfinished sweep goes on at the next start
        if self._indexer is not None:
            self._indexer.stop(0.5)  # an unfinished index goes on at the next start
        if self._metrics is not None:
            self._metrics.stop(0.2)  # a scrape in progress is cut short: its thread is a daemon
        self._acceptor.stop()  # no new connections; the refused ones still lingering are closed
        connections = self._acceptor.connections()
        # Leave the history thread time to commit after the connections are flushed.
        flush_deadline = deadline - 0.3
        for connection in connections:
            connection.shut_down_server(flush_deadline)
        for connection in connections:
            connection.reader.join(max(0.0, deadline - 0.2 - time.monotonic()))
        assert self._services is not None
        self._services.sender.stop(0.1)  # every reader has released its channel by now
        if self._link is not None:
            self._link.closing()  # hands nothing more to the history thread
        self._services.history.stop(max(0.05, deadline - time.monotonic()))
        if self._link is not None:
            self._link.stop()
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
                servers=self._cluster_peers(),
            )

        self._beacon = Beacon(self.config.beacon, snapshot)
        self._beacon.start()
        log.info(
            "event=beacon addresses=%s port=%d",
            ",".join(self.config.beacon.addresses),
            self.config.beacon.port,
        )

    def _cluster_peers(self) -> tuple[str, ...]:
        """The other servers of the cluster that a beacon can carry (`cluster_servers`, checked)."""
        return tuple(address for address in self.cluster_servers if server_address_ok(address))

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
        connections = self._acceptor.connections()
        queued = [connection.sendq.queued for connection in connections]
        hub = self._services.hub if self._services else None
        return Stats(
            connections=len(connections),
            logged_in=hub.online() if hub else 0,
            rooms=len(hub.rooms) if hub else 0,
            queued_bytes=sum(queued),
            max_queued_bytes=max(queued, default=0),
            threads=threading.active_count(),
            queues={c.client.nick: c.sendq.queued for c in connections if c.client.nick is not None},
            lingering=self._acceptor.lingering,
        )

    def observe(self) -> Gauges:
        """The gauges of the metrics endpoint and /stats: connections by state, queues, rooms (any thread)."""
        connections = self._acceptor.connections()
        states: Counter[tuple[str, bool]] = Counter()
        queues: list[tuple[int, str]] = []
        total = 0
        for connection in connections:
            states[connection.state, connection.encrypted] += 1
            queued = connection.sendq.queued
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
        connection = self._acceptor.find(nick)
        if connection is None:
            return None
        sendq, config = connection.sendq, self.config
        alive = max(self._services.clock() - connection.connected_since, 0.001) if self._services else 0.001
        return [
            ("connected_s", round(alive, 1)),
            ("tls", int(connection.encrypted)),
            ("rooms", len(connection.client.rooms)),
            ("queued_bytes", sendq.queued),
            ("sendq_soft", config.sendq_soft),
            ("sendq_hard", config.sendq_hard),
            ("received_bytes", connection.received),
            ("sent_bytes", sendq.sent),
            ("received_bytes_per_s", round(connection.received / alive, 1)),
            ("sent_bytes_per_s", round(sendq.sent / alive, 1)),
            ("rate_limited", connection.rate_limited),
        ]
