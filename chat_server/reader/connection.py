"""One accepted TCP connection: its reader thread, its sending side, and the deadlines that guard it.

The reader thread (``conn-N-reader``) owns the socket's receiving side and the `ProtocolConnection`:

1. wait for bytes, at most until the next deadline (hello, frame completion, ping, dead peer);
2. hand them to the sans-I/O decoder (one `recv` may hold half a frame or fifty frames);
3. for each event of the decoder (`_handle`): look the request's type up in the routing table
   (chat_server.routes), spend its cost from the rate buckets (`Budget`, below), then run its handler
   here (a `READER` row: `hello`, `ping`, history pages, file requests...) or submit it to the history
   thread, which owns all shared chat state (a `HISTORY` row). A request over the rate waits for its token
   (fakelag, `_fakelag`): the reader sleeps, reading nothing, so the kernel's receive buffer fills and TCP
   holds the client back; the client's requests stay in the order it sent them, and it is refused nothing.
   A reader kept behind its client for `max_fakelag_seconds` (never finding the socket empty) ends the
   connection with `excess_flood`;
4. whatever ends the connection (the end of the stream, `quit`, a deadline, a fatal frame, a flood, a close
   by another thread) raises `HangUp` with the reason and the last frame to send, caught once by
   `_read_loop`; then (`_finish`): submit a `Disconnect`, give the sender `linger` seconds to flush the last
   frames, then close the socket.

On a TLS port the reader first completes the TLS handshake (bounded by `tls.handshake_timeout`) before the
connection gets its channel on the sender, then decrypts what each `recv` returns (chat_server.tls).

The sending side is a `Channel` of the one sender thread (`chat_server.sender.thread`): a non-blocking `dup`
of the socket and the connection's sendq. The sender writes everything queued with one `send`, keeps what the
kernel did not take, and closes the connection when it makes no progress for `write_timeout`; nothing else
ever waits for this client's socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import select
import socket
import sqlite3
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import cast

from chat_server.filesconfig import CHUNK_FRAME_OVERHEAD
from chat_server.history.accounts import Enroll, Rename, Unenroll
from chat_server.history.chat import Disconnect
from chat_server.history.fileoffers import Settle
from chat_server.hub import Client
from chat_server.ratelimit import MessageOrder, TokenBucket
from chat_server.reader.uploads import ConnectionFiles
from chat_server.replies import error_frame, fatal_frame
from chat_server.routes import ROUTES, Cost, Thread
from chat_server.sender.thread import Channel, SendQueue
from chat_server.services import Services
from chat_server.tls import TlsFailure, TlsPump
from chat_server.tuning import RECV_MAX, RECV_MIN, Latch, next_recv_size, set_timeout_lazily
from shared.addresses import host_port
from shared.codec import encode
from shared.connection import EndOfStream, Event, ProtocolConnection, Role
from shared.errors import ErrorCode, RemoteProtocolError
from shared.messages import Ping, Say, Tell
from shared.schema import Message

from .requests import HangUp

log = logging.getLogger(__name__)
#: The retry delay given with "server busy" (the history thread's queue stayed full `history_wait`), s.
BUSY_RETRY = 1.0
#: `--trace` turns this logger on at DEBUG: every frame in and out, decoded.
trace = logging.getLogger("chat_server.trace")

#: How long a closing reader waits for the sender to let go of its socket (it never blocks: a moment).
RELEASE_WAIT = 1.0
#: A closing reader polls the kernel's send queue (`unacknowledged`) every MIN, doubling up to MAX seconds.
DELIVERY_POLL_MIN = 0.002
DELIVERY_POLL_MAX = 0.05
#: Most `recv` calls (of up to RECV_MAX bytes each) a closing reader makes to discard unread input.
DISCARD_READS = 64


#: `tcp_info.tcpi_state` of a connection that is over (reset, or both sides done): nothing more will be sent.
TCP_CLOSE = 7


def unacknowledged(sock: socket.socket) -> int:
    """Bytes in `sock`'s kernel send queue not yet acknowledged by the peer (`SIOCOUTQ`); 0 where unknown,
    and once the connection is over (after a reset the count stays, but nothing will be acknowledged).
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE:
            return 0
        answer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ == TIOCOUTQ
    except OSError:
        return 0
    return int(struct.unpack("i", answer)[0])


class Budget:
    """One connection's rate limits: what each request spends, before its handler runs (reader thread
    only)."""

    # Slots, not a __dict__: one per connection (docs/performance.md, W3 memory).
    __slots__ = (
        "_delay",
        "_edits",
        "_joins",
        "_order",
        "_reactions",
        "_refusals",
        "_renames",
        "_requests",
        "_searches",
        "_text_bytes",
        "client",
        "rate_limited",
        "services",
    )

    def __init__(self, services: Services, client: Client, delay: Callable[[float], None]) -> None:
        config, clock = services.config, services.clock
        self.services = services
        self.client = client
        #: Holds the reader that many seconds (fakelag, `Connection._fakelag`); raises `HangUp` instead
        #: when the connection must end.
        self._delay = delay
        self._requests = TokenBucket(config.rate_messages, config.rate_burst, clock)
        self._text_bytes = TokenBucket(config.rate_bytes, config.rate_bytes_burst, clock)
        self._refusals = TokenBucket(config.rate_messages, config.flood_refusals, clock)
        self._joins = TokenBucket(config.rate_joins, config.rate_joins_burst, clock)
        self._renames = TokenBucket(config.rate_nicks, config.rate_nicks_burst, clock)
        # Made by the first search: most connections never search (memory: docs/performance.md, W3).
        self._searches: TokenBucket | None = None
        # Made at the first edit or reaction: most connections never send one (W3 memory per connection).
        self._edits: TokenBucket | None = None
        self._reactions: TokenBucket | None = None
        self._order = MessageOrder(clock)
        #: Requests of this connection refused or delayed by a rate limit (shown by /stats NICK).
        self.rate_limited = 0

    def spend(self, cost: Cost, message: object) -> bool:
        """Spend what `message` costs (`cost`, its row's column in chat_server.routes), waiting if needed.

        False if the request was refused instead (its `error` is queued): the caller drops it.
        """
        if cost is Cost.FREE or cost is Cost.TRANSFER:
            return True
        if wait := self._requests.take():
            self._wait_for(self._requests, 1.0, wait, "messages")
        if cost is Cost.REQUESTS:
            return True
        if cost is Cost.TEXT:
            text = cast("Say | Tell", message)
            if wait := self._order.wait(text.client_msg_id):
                self.count_refusal("order")
                self._held_back(wait, text.ref)
                return False
            size = len(text.text.encode())
            if wait := self._text_bytes.take(size):
                self._wait_for(self._text_bytes, size, wait, "text_bytes")
            return True
        slow = self._slow_bucket(cost)
        if wait := slow.take():
            self.count_refusal(cost.value)
            retry = max(1, int(wait * 1000 + 0.999))
            ref = getattr(message, "ref", None)
            self.refuse(error_frame(ErrorCode.RATE_LIMITED, "slow down", ref, retry_after_ms=retry), ref)
            return False
        return True

    def _slow_bucket(self, cost: Cost) -> TokenBucket:
        """The refusing bucket a JOINS, NICKS, EDITS, REACTIONS or SEARCHES request draws from after a request
        token."""
        if cost is Cost.JOINS:
            return self._joins
        if cost is Cost.NICKS:
            return self._renames
        config, clock = self.services.config, self.services.clock
        if cost is Cost.SEARCHES:
            if self._searches is None:
                self._searches = TokenBucket(config.rate_searches, config.rate_searches_burst, clock)
            return self._searches
        if cost is Cost.EDITS:
            if self._edits is None:
                self._edits = TokenBucket(config.rate_edits, config.rate_edits_burst, clock)
            return self._edits
        if self._reactions is None:
            self._reactions = TokenBucket(config.rate_reactions, config.rate_reactions_burst, clock)
        return self._reactions

    def spend_invalid(self) -> None:
        """A request the decoder refused (not fatally) costs a request token like any other: otherwise a
        flood of invalid frames would be answered one for one, as fast as they come."""
        if wait := self._requests.take():
            self._wait_for(self._requests, 1.0, wait, "messages")

    def refuse(self, refusal: bytes, ref: int | None) -> None:
        """Send `refusal`; too many refusals in a row end the connection instead (`excess_flood`)."""
        if self._refusals.take():
            self.services.tally.count("rate_limited", "flood")
            log.info("conn=%d event=excess_flood", self.client.id)
            raise HangUp(
                "excess flood", fatal_frame(ErrorCode.EXCESS_FLOOD, "too many refused requests", ref)
            )
        self.client.send(refusal)

    def busy(self, request: object) -> None:
        """`request` was refused as "server busy": a `say`/`tell` behind it waits until it is back."""
        if isinstance(request, Say | Tell):
            self._order.refused(request.client_msg_id, BUSY_RETRY)

    def count_refusal(self, bucket: str) -> None:
        """Count a request refused or delayed by a rate limit under its bucket (/stats, the metrics)."""
        self.rate_limited += 1
        self.services.tally.count("rate_limited", bucket)

    def _wait_for(self, bucket: TokenBucket, cost: float, wait: float, name: str) -> None:
        """Fakelag: hold the reader until `bucket` has `cost` tokens (due in `wait` s), then spend them.

        Counted once per delayed request under `name`, like a refusal (for /stats and the metrics).
        """
        self.count_refusal(name)
        while wait:
            self._delay(wait)
            wait = bucket.take(cost)

    def _held_back(self, wait: float, ref: int | None) -> None:
        """Refuse a `say`/`tell` behind one refused as "server busy" (`MessageOrder`), until that one is back.

        Not counted against `flood_refusals`: the client did nothing wrong, and it paid a request token.
        """
        retry = max(1, int(wait * 1000 + 0.999))
        self.client.send(
            error_frame(ErrorCode.RATE_LIMITED, "held behind a refused one", ref, retry_after_ms=retry)
        )


class Connection:
    """A client connection: its reader thread and its channel on the sender thread."""

    # Slots, not a __dict__: thousands of connections, its `Budget` beside it
    # (docs/performance.md, W3 memory).
    __slots__ = (
        "_accepted",
        "_announce",
        "_behind_since",
        "_clock",
        "_close_reason",
        "_dropped",
        "_hello_deadline",
        "_history_db",
        "_last_input",
        "_linger_until",
        "_lock",
        "_on_finished",
        "_partial_since",
        "_pinged",
        "_protocol",
        "_recv_size",
        "_sock",
        "_tls",
        "_trace",
        "_transfers",
        "_typing",
        "_wake",
        "_wsock",
        "budget",
        "channel",
        "client",
        "config",
        "id",
        "peer",
        "reader",
        "received",
        "sendq",
        "services",
    )

    def __init__(
        self,
        services: Services,
        sock: socket.socket,
        peer: tuple[str, int],
        conn_id: int,
        on_finished: Callable[[Connection], None],
        tls: TlsPump | None = None,
    ) -> None:
        config = services.config
        self.services = services
        self.config = config
        self.id = conn_id
        self.peer = peer
        self._sock = sock
        # The sender's own socket object: non-blocking, while the reader's has the reader's timeouts.
        self._wsock = sock.dup()
        self._on_finished = on_finished
        self._clock = services.clock
        self.sendq = SendQueue(
            soft=config.sendq_soft,
            hard=config.sendq_hard,
            soft_seconds=config.sendq_soft_seconds,
            clock=self._clock,
            bulk_limit=config.files.window,
            bulk_frame=config.files.chunk + CHUNK_FRAME_OVERHEAD,
        )
        overflow = fatal_frame(ErrorCode.SENDQ_EXCEEDED, "you are not reading fast enough")
        self.client = Client(conn_id, peer[0], self.sendq, self.close, overflow, self._input_waiting)
        self._tls = tls
        # A TLS connection gets its channel once the handshake is done: until then nothing may be written
        # (the reader is the one writing the handshake), and frames queued meanwhile are never sent.
        self.channel: Channel | None = None
        if tls is None:
            self.channel = services.sender.attach(conn_id, self.sendq, self._wsock, self.close, overflow)
        self._protocol = ProtocolConnection(Role.SERVER, config.limits)
        #: The connection's rate limits: what each request spends before its handler runs.
        self.budget = Budget(services, self.client, self._fakelag)
        self._history_db: sqlite3.Connection | None = None
        # Created by the first file request: most connections never send one.
        self._transfers: ConnectionFiles | None = None
        # Per room (folded name): when this connection's last `typing` start was relayed, and whether a stop
        # may follow it (chat_server.reader.requests.relay_typing). Made by the first `typing`.
        self._typing: dict[str, tuple[float, bool]] | None = None
        self._lock = threading.Lock()  # guards _close_reason, _dropped, _linger_until and _wake
        # Set by close() to wake a reader held back by fakelag; made by the first wait (most never wait).
        self._wake: threading.Event | None = None
        # When the reader last fell behind its client (fakelag with input still waiting); None: caught up.
        self._behind_since: float | None = None
        self._close_reason: str | None = None
        self._dropped = False
        self._linger_until: float | None = None
        self._announce = True
        self._trace = trace.isEnabledFor(logging.DEBUG)
        now = self._clock()
        self._accepted = now
        self._hello_deadline: float | None = now + config.hello_timeout
        self._last_input = now
        self._pinged = False
        self._partial_since: float | None = None
        self._recv_size = RECV_MIN
        #: Bytes received from the client so far, as read from the socket (for /stats NICK; reader thread).
        self.received = 0
        self.reader = threading.Thread(target=self._read_loop, name=f"conn-{conn_id}-reader", daemon=True)

    # -- Observation (any thread) ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """ "tls_handshake", "greeting" (no nick yet) or "chatting": for the metrics (a racy read is fine)."""
        if self._tls is not None and self.channel is None:
            return "tls_handshake"
        return "greeting" if self.client.key is None else "chatting"

    @property
    def encrypted(self) -> bool:
        """True for a connection on a TLS port."""
        return self._tls is not None

    @property
    def connected_since(self) -> float:
        """When the connection was accepted (the services' clock)."""
        return self._accepted

    @property
    def rate_limited(self) -> int:
        """Requests of this connection delayed or refused by a rate limit so far."""
        return self.budget.rate_limited

    @property
    def close_reason(self) -> str | None:
        """Why the connection ended (None while it is open)."""
        with self._lock:
            return self._close_reason

    def start(self) -> None:
        """Start the reader thread."""
        log.info("conn=%d event=accepted peer=%s", self.id, host_port(*self.peer))
        self.reader.start()

    # -- Reader thread -------------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        reason, last = "connection lost", None
        try:
            self._serve()
        except HangUp as hang_up:  # every end of the connection, from anywhere on this thread
            reason, last = hang_up.reason, hang_up.last
        except Exception:
            log.exception("conn=%d event=reader_crashed", self.id)
            reason, last = "internal error", fatal_frame(ErrorCode.INTERNAL_ERROR, "internal server error")
        finally:
            self._finish(reason, last)

    def _serve(self) -> None:
        """Read and handle requests until the connection ends (by raising `HangUp`)."""
        tls = self._tls
        if tls is not None:
            self._start_tls(tls)
        while True:
            self.hang_up_if_closed()
            # Sleep until the next deadline, not a fixed poll: an idle connection costs no wake-ups
            # (close() wakes a blocked recv with shutdown).
            set_timeout_lazily(self._sock, max(self._next_deadline() - self._clock(), 0.001))
            try:
                data = self._sock.recv(self._recv_size)
            except TimeoutError:
                self._check_deadlines()
                continue
            except OSError:
                raise HangUp("connection lost") from None
            self.hang_up_if_closed()  # woken by close(): whatever arrived no longer matters
            self._last_input = self._clock()
            self._pinged = False
            self.received += len(data)
            self._recv_size = next_recv_size(self._recv_size, len(data))
            got_data = bool(data)
            if tls is None or not data:
                self._protocol.receive_data(data)
            else:
                got_data = self._decrypt(tls, data)
            self._handle_received(got_data)
            # Deadlines are checked after input too: a peer that trickles a byte now and then never lets
            # recv() time out, and must not escape the hello and frame deadlines that way.
            self._check_deadlines()
            if self._behind_since is not None and not self._input_waiting():
                self._behind_since = None  # caught up: everything the client sent is handled

    def _handle_received(self, got_data: bool) -> None:
        completed = False
        for event in self._protocol.events():
            completed = True
            self._handle(event)
        # Bytes that completed no frame mean a frame is in progress: it must complete within frame_timeout.
        if completed:
            self._partial_since = None
        elif got_data and self._partial_since is None:
            self._partial_since = self._clock()

    def _handle(self, event: Event) -> None:
        """One event of the decoder: a request goes where its row of the routing table says (one lookup)."""
        route = ROUTES.get(type(event))
        if route is None:  # not a request: the end of the stream, or a frame the client got wrong
            if isinstance(event, EndOfStream):
                raise HangUp("connection lost mid-frame" if event.mid_frame else "connection closed")
            self._refuse_invalid(cast(RemoteProtocolError, event))
            return
        if self._trace:
            trace.debug("conn=%d in %r", self.id, event)
        if not self.budget.spend(route.cost, event):
            return  # refused by a rate limit: its error is queued
        if route.thread is Thread.READER:
            route.handler(self, event)
        else:
            self.submit(cast(Message, event), getattr(event, "ref", None))

    def submit(self, request: Message | Rename | Enroll | Unenroll, ref: int | None) -> None:
        """Queue `request` for the history thread; answer "server busy" if its queue stayed full."""
        if not self.services.history.submit(self.client, request):
            self.budget.busy(request)
            retry_ms = int(BUSY_RETRY * 1000)
            self.client.send(error_frame(ErrorCode.RATE_LIMITED, "server busy", ref, retry_after_ms=retry_ms))

    def _refuse_invalid(self, error: RemoteProtocolError) -> None:
        """A frame the decoder refused: a fatal one ends the connection, another is answered with its code."""
        if error.fatal:
            log.info("conn=%d event=protocol_error code=%s message=%r", self.id, error.code, error.message)
            raise HangUp(f"protocol error: {error.code}", fatal_frame(error.code, error.message, error.ref))
        self.budget.spend_invalid()
        self.client.send(error_frame(error.code, error.message, error.ref))

    # -- Called by the request handlers (reader thread; chat_server.reader.requests) -------------------------

    def hello_received(self) -> None:
        """The `hello` is here: its deadline is met. Hangs up on an attempt its client has abandoned."""
        self._hello_deadline = None
        if self._peer_gone():
            # An abandoned attempt (its client gave up waiting and closed): logging it in would only take the
            # nick from the client's live attempt.
            raise HangUp("closed before login")

    def hang_up_if_closed(self) -> None:
        """Raise `HangUp` with the close reason if the connection was closed (by any thread)."""
        with self._lock:
            reason = self._close_reason
        if reason is not None:
            raise HangUp(reason)

    def reader_db(self) -> sqlite3.Connection:
        """This reader's own SQLite read connection, opened when first needed (raises `HistoryError`)."""
        if self._history_db is None:
            self._history_db = self.services.store.open_reader()
        return self._history_db

    def typing_state(self) -> dict[str, tuple[float, bool]]:
        """This connection's `typing` throttle: room key -> (when its last start was relayed, whether a stop
        may follow). Reader thread only."""
        if self._typing is None:
            self._typing = {}
        return self._typing

    def transfers(self) -> ConnectionFiles | None:
        """This connection's file transfers, created by its first file request; None with file sharing off."""
        files = self.services.files
        if files is None:
            return None
        if self._transfers is None:
            services = self.services
            self._transfers = ConnectionFiles(
                self.client,
                self.sendq,
                files,
                services.hub,
                services.history,
                self.reader_db,
                self._settle,
                services.tally,
                services.shared_files,
            )
        return self._transfers

    def _settle(self) -> None:
        """Wait (bounded) until the history thread has applied every request this connection sent before."""
        done = Latch()
        if self.services.history.submit(self.client, Settle(done)):
            done.wait(self.services.config.history_wait)

    def _input_waiting(self) -> bool:
        """True if input from the client waits unread, its end of stream included (any thread; no I/O but a
        poll that does not wait). The history thread asks it of a nick's holder when a login wants it."""
        try:
            return readable_now(self._sock)
        except (OSError, ValueError):  # closed meanwhile: it is leaving
            return True

    def _peer_gone(self) -> bool:
        """True if the client has already closed its side (end of stream is waiting after what was read)."""
        if self._tls is not None or self._protocol.buffered > 0:
            return False  # TLS: what is waiting is a record, not the end; buffered bytes: a frame follows
        try:
            # A socket with a timeout waits for input before its recv: ask first, without waiting.
            return readable_now(self._sock) and self._sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):  # a reset, or a socket closed meanwhile: the reader finds out next
            return False

    def _next_deadline(self) -> float:
        config = self.config
        # Before the hello only the hello deadline counts: pings and the ping timeout are for a session (a
        # client's first frame from us must be its welcome, and a slow start, such as a TLS handshake on a
        # loaded machine, is what `hello_timeout` is for).
        if self._hello_deadline is not None:
            deadlines = [self._hello_deadline]
        else:
            deadlines = [self._last_input + (config.ping_timeout if self._pinged else config.ping_interval)]
        if self._partial_since is not None:
            deadlines.append(self._partial_since + config.frame_timeout)
        return min(deadlines)

    def _check_deadlines(self) -> None:
        now, config = self._clock(), self.config
        if self._hello_deadline is not None and now >= self._hello_deadline:
            raise HangUp("hello timeout", fatal_frame(ErrorCode.HELLO_TIMEOUT, "no hello received in time"))
        if self._partial_since is not None and now >= self._partial_since + config.frame_timeout:
            raise HangUp(
                "frame timeout", fatal_frame(ErrorCode.BAD_FRAME, "a frame was not completed in time")
            )
        if self._hello_deadline is None:
            if now >= self._last_input + config.ping_timeout:
                raise HangUp("ping timeout", fatal_frame(ErrorCode.PING_TIMEOUT, "no data received in time"))
            if not self._pinged and now >= self._last_input + config.ping_interval:
                self._pinged = True
                self.client.send(encode(Ping(token=int(now * 1000))))
        if self.sendq.overdue():
            self.close(self.client.overflow, True)

    # -- Fakelag (reader thread) ---------------------------------------------------------------------------

    def _fakelag(self, wait: float) -> None:
        """Hold the reader `wait` seconds: a request over the rate waits for its token (the `Budget`'s
        `delay`). Reads nothing meanwhile, so TCP holds the client back. Hangs up instead with
        `excess_flood` once the reader would have been behind its client for longer than
        `max_fakelag_seconds`, or with the close reason if the connection was closed meanwhile.

        No lock is held while waiting; close() wakes the wait through `_wake`.
        """
        now = self._clock()
        if self._behind_since is None:
            self._behind_since = now
        if now + wait - self._behind_since > self.config.max_fakelag_seconds:
            self.services.tally.count("rate_limited", "flood")
            log.info("conn=%d event=excess_flood behind=%.1f", self.id, now - self._behind_since)
            raise HangUp(
                "excess flood",
                fatal_frame(
                    ErrorCode.EXCESS_FLOOD, f"over the rate limit for {self.config.max_fakelag_seconds:g} s"
                ),
            )
        with self._lock:
            if self._close_reason is not None:
                raise HangUp(self._close_reason)
            if self._wake is None:
                self._wake = threading.Event()
            wake = self._wake
        if wake.wait(wait):
            raise HangUp(self._closed_by_server() or "closed by server")
        # The client's requests are waiting for us: it is alive, whatever the ping timer says.
        self._last_input = self._clock()
        self._pinged = False

    # -- TLS (reader thread) -------------------------------------------------------------------------------

    def _start_tls(self, tls: TlsPump) -> None:
        """Do the TLS handshake (bounded by `tls.handshake_timeout`), then give the connection its channel."""
        try:
            tls.handshake(self._sock, self._accepted + self.config.tls.handshake_timeout, self._clock)
        except TlsFailure as failure:
            log.info("conn=%d event=tls_failed reason=%r", self.id, str(failure))
            raise HangUp(f"tls: {failure}") from None
        log.info("conn=%d event=tls version=%s", self.id, tls.version)
        self.channel = self.services.sender.attach(
            self.id, self.sendq, self._wsock, self.close, self.client.overflow, tls
        )
        # The handshake's last read may have brought the first records too (a hello sent right behind the
        # client's Finished): they wait in the TLS buffer and must be handled before the next recv.
        self._handle_received(self._decrypt(tls, b""))

    def _decrypt(self, tls: TlsPump, data: bytes) -> bool:
        """Hand the plaintext in `data` (ciphertext) to the decoder, and the end of stream at close_notify.

        Returns whether bytes arrived that may start or continue a frame: plaintext, or part of a TLS
        record (so a trickled record meets the frame deadline like a trickled plaintext frame does). A TLS
        failure hangs up.
        """
        try:
            plaintext, closed, waiting = tls.decrypt(data)
        except TlsFailure as failure:
            raise HangUp(f"tls: {failure}") from None
        if waiting and self.channel is not None:
            self.services.sender.mark(self.channel)  # TLS has bytes to send: the sender writes them
        if plaintext:
            self._protocol.receive_data(plaintext)
        if closed:
            self._protocol.receive_data(b"")
        return bool(plaintext) or tls.partial

    # -- Closing (any thread) ------------------------------------------------------------------------------

    def close(self, last: bytes | None, abort: bool, reason: str | None = None) -> None:
        """End the connection: send `last` after what is queued (or instead of it, if `abort`), then close."""
        with self._lock:
            if self._close_reason is not None:
                return
            self._close_reason = reason or ("send queue exceeded" if abort else "closed by server")
            # Dropped with a reason to tell (sendq_exceeded): the reason gets `drop_linger` to arrive.
            self._dropped = abort and last is not None
            wake = self._wake
        if wake is not None:
            wake.set()  # a reader held back by fakelag stops waiting
        if abort:
            self.sendq.abort(last)
        else:
            self.sendq.close(last)
        self.client.closed = True  # before login_settled: a reader that renews the latch checks this after
        self.client.login_settled.set()  # a reader waiting for its login result stops waiting
        self._shutdown(socket.SHUT_RD)  # wakes the reader from recv at once

    def shut_down_server(self, deadline: float) -> None:
        """The server is stopping: say so after what is queued, and give up on flushing at `deadline`."""
        with self._lock:
            self._linger_until = deadline
            self._announce = False  # no sign-off storm: everyone is leaving
        self.close(
            fatal_frame(ErrorCode.SERVER_SHUTDOWN, "the server is shutting down"), False, "server shutdown"
        )

    def _closed_by_server(self) -> str | None:
        with self._lock:
            return self._close_reason

    def _shutdown(self, how: int) -> None:
        with contextlib.suppress(OSError):  # already disconnected: nothing left to shut down
            self._sock.shutdown(how)

    # -- Closing (reader thread) ---------------------------------------------------------------------------

    def _finish(self, reason: str, last: bytes | None) -> None:
        """End of the reader thread: sign off, let the sender flush, close everything."""
        # From here on, a login that wants our nick may wait for our Disconnect (chat_server.history.chat).
        self.client.ending = True
        with self._lock:
            if self._close_reason is None:
                self._close_reason = reason
            reason = self._close_reason
            announce = self._announce
            linger_until = self._linger_until
            dropped = self._dropped
        if self._trace:  # the end, for --trace and --record (chat_server.recorder): once per connection
            trace.debug("conn=%d end %r", self.id, reason)
        # Its uploads first: once the nick is free, they may resume elsewhere.
        if self._transfers is not None:
            self._transfers.close()
        if self._history_db is not None:
            self._history_db.close()
        disconnect = Disconnect(reason, last, announce)
        if not self.services.history.submit(self.client, disconnect):
            self.sendq.close(last)  # the history thread is gone: close the send queue ourselves
        else:
            # The socket closes only after the history thread has freed the nick (docs/protocol.md,
            # "When a nick is free"): a client that saw our end of stream after its `quit` may log in again
            # at once. Bounded like a login (the history thread may be stuck on a slow disk), and by the
            # server's stop deadline.
            wait = self.config.history_wait + self.config.hello_timeout
            if linger_until is not None:
                wait = min(wait, linger_until - self._clock())
            disconnect.applied.wait(wait)
        deadline = self._clock() + (self.config.drop_linger if dropped else self.config.linger)
        if linger_until is not None:
            deadline = min(deadline, linger_until)
        channel = self.channel
        # Finished once the last frame is written (or the sender gave up on this client). Without a channel
        # (a TLS handshake that never completed) nothing was ever written.
        if channel is not None and not channel.done.wait(deadline - self._clock()):
            self._shutdown(socket.SHUT_RDWR)
            self.sendq.abort()
            self.services.sender.release(channel)
            if not channel.done.wait(RELEASE_WAIT):
                log.error("conn=%d event=sender_stuck", self.id)
        elif channel is not None:
            # Written and our end of stream sent (the sender shut our sending side): wait until the client's
            # kernel has it all, so a frame the client sends meanwhile cannot turn the close into a reset
            # that would destroy the last frames (its error) before the client reads them.
            self._wait_delivered(deadline)
        self._discard_input()  # unread input makes close() send a reset instead of closing cleanly
        self._wsock.close()
        self._sock.close()
        log.info("conn=%d event=closed nick=%r reason=%r", self.id, self.client.nick, reason)
        self._on_finished(self)

    def _wait_delivered(self, deadline: float) -> None:
        """Wait (at most until `deadline`) until the kernel holds nothing more for the client: everything
        written, our end of stream included, has been acknowledged by the client's kernel."""
        delay = DELIVERY_POLL_MIN
        while (remaining := deadline - self._clock()) > 0 and unacknowledged(self._sock) > 0:
            # No event says "send queue empty": poll it, briefly at first (a reading client empties it in
            # a round trip), then every DELIVERY_POLL_MAX (a slow one), discarding what the client sends.
            self._discard_input()
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, DELIVERY_POLL_MAX)

    def _discard_input(self) -> None:
        """Read and drop what the client sent that nobody will handle now (a bounded amount)."""
        with contextlib.suppress(OSError):
            self._sock.setblocking(False)
            for _ in range(DISCARD_READS):
                if not self._sock.recv(RECV_MAX):
                    return


def readable_now(sock: socket.socket) -> bool:
    """True if `sock` has input waiting (its end of stream included), without waiting for any.

    `poll`, not `select.select`: select's descriptor sets stop at 1023, so past 1,023 connections it fails,
    and CPython's `select.select` puts three tables of 1,025 entries (about 48 KiB) on the calling thread's
    stack, pages that each reader thread then keeps: W3 (2,000 clients) measured 42 KiB per connection with
    it and 30 KiB without (docs/performance.md).
    """
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
