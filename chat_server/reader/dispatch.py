"""What a connection's reader thread does with each decoded request: answer it, or hand it on.

`Connection` (chat_server.reader.connection) reads and decodes; it handles the frames of the connection's own
life (`hello`, `ping`, `pong`, `quit`) and gives every other request to its `Dispatcher`, which decides, still
on the reader thread:

1. file requests (`file_chunk`, `file_get`, `file_cancel`) go to the connection's `Transfers`
   (chat_server.reader.uploads): they are bounded by the transfer window and the quotas, not by the request
   rate;
2. everything else spends a request token first (`say` and `tell` also their text's bytes). Without one the
   request *waits* for it (fakelag): the connection's `delay` (`Connection._fakelag`) holds the reader,
   which reads nothing meanwhile, so TCP holds the client back and its requests stay in order; a reader
   kept behind its client for `max_fakelag_seconds` ends the connection (`excess_flood`). Only the slow
   join and nick buckets refuse (`rate_limited`, and after `flood_refusals` refusals `excess_flood`);
3. `fetch_history` is answered here, from the reader's own SQLite read connection (chat_server.reader.pages);
   `file_offer` goes to `Transfers`;
4. `nick`, `register` and `unregister` have their passwords checked here (scrypt, chat_server.reader.gate):
   only the result goes on;
5. every other request is submitted, in order, to the history thread (chat_server.history.thread), which owns
   the chat state and answers it.

The login (`log_in`, for a `hello`) is handed to the history thread the same way, but the reader waits for
its decision before reading on.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from chat_server.history.accounts import Enroll, Rename, Unenroll
from chat_server.history.chat import Login
from chat_server.history.fileoffers import Settle
from chat_server.hub import Client
from chat_server.latch import Latch
from chat_server.ratelimit import MessageOrder, TokenBucket
from chat_server.replies import error_frame, fatal_frame
from chat_server.services import Services
from chat_server.storage import HistoryError
from shared.errors import ErrorCode, RemoteProtocolError
from shared.messages import (
    CancelFile,
    ChangeNick,
    FetchHistory,
    FileChunk,
    GetFile,
    GetStats,
    Hello,
    Join,
    OfferFile,
    Register,
    Say,
    Tell,
    Unregister,
)
from shared.schema import Message

from .adminstats import answer_stats
from .gate import Refused
from .pages import fetch_history
from .uploads import Transfers

log = logging.getLogger(__name__)

#: File requests bounded by the transfer window and the quotas instead of the request rate (a 50 MB file is
#: a thousand chunks); a `file_offer` counts like a message. Their refusals count against `flood_refusals`.
_TRANSFER = (FileChunk, GetFile, CancelFile)

#: The retry delay given with "server busy" (the history thread's queue stayed full `sequencer_wait`), s.
BUSY_RETRY = 1.0
#: What ends a connection: (reason, last frame to send); None goes on.
Outcome = tuple[str, bytes | None] | None
#: Holds the reader `seconds` (fakelag); an `Outcome` if the connection must end instead.
Delay = Callable[[float], Outcome]


class Dispatcher:
    """One connection's decoded requests: rate limits, answers here, hand-offs (its reader thread only)."""

    # Slots, not a __dict__: one per connection, like `Connection`.
    __slots__ = (
        "_delay",
        "_history_db",
        "_joins",
        "_order",
        "_refusals",
        "_renames",
        "_requests",
        "_text_bytes",
        "_transfers",
        "client",
        "rate_limited",
        "services",
    )

    def __init__(self, services: Services, client: Client, delay: Delay) -> None:
        config, clock = services.config, services.clock
        self.services = services
        self.client = client
        self._delay = delay
        self._requests = TokenBucket(config.rate_messages, config.rate_burst, clock)
        self._text_bytes = TokenBucket(config.rate_bytes, config.rate_bytes_burst, clock)
        self._refusals = TokenBucket(config.rate_messages, config.flood_refusals, clock)
        self._joins = TokenBucket(config.rate_joins, config.rate_joins_burst, clock)
        self._renames = TokenBucket(config.rate_nicks, config.rate_nicks_burst, clock)
        self._order = MessageOrder(clock)
        self._history_db: sqlite3.Connection | None = None
        # Created by the first file request: most connections never send one.
        self._transfers: Transfers | None = None
        #: Requests of this connection refused or delayed by a rate limit (shown by /stats NICK).
        self.rate_limited = 0

    def handle(self, message: Message) -> Outcome:
        """Handle one request; return (reason, last frame to send) if the connection must end."""
        if isinstance(message, _TRANSFER):
            return self._transfer(message)
        if (wait := self._requests.take()) and (
            outcome := self._wait_for(self._requests, 1.0, wait, "messages")
        ):
            return outcome
        if isinstance(message, Say | Tell):
            if wait := self._order.wait(message.client_msg_id):
                self._count_refusal("order")
                return self._held_back(wait, message.ref)
            size = len(message.text.encode())
            wait = self._text_bytes.take(size)
            if wait and (outcome := self._wait_for(self._text_bytes, size, wait, "text_bytes")):
                return outcome
        elif isinstance(message, Join):
            if wait := self._joins.take():
                self._count_refusal("joins")
                return self._rate_limited(wait, message.ref)
        elif isinstance(message, ChangeNick | Register | Unregister) and (wait := self._renames.take()):
            self._count_refusal("nicks")
            return self._rate_limited(wait, message.ref)
        return self._request(message)

    def invalid(self, error: RemoteProtocolError) -> Outcome:
        """Answer a request the decoder refused (not fatally) with its error code."""
        # A refused request costs a request token like any other: otherwise a flood of invalid frames would
        # be answered one for one, as fast as they come.
        if (wait := self._requests.take()) and (
            outcome := self._wait_for(self._requests, 1.0, wait, "messages")
        ):
            return outcome
        self.client.send(error_frame(error.code, error.message, error.ref))
        return None

    def log_in(self, hello: Hello) -> Outcome:
        """Hand the login to the history thread and wait for its decision before reading on.

        A client may pipeline requests behind its hello; answering any of them here (a `pong`, an error)
        before the history thread has queued the `welcome` would put them first on the wire, and after a
        refused hello they must not be answered at all (docs/protocol.md, "Connection life"). A refusal by
        the history thread (e.g. nick_taken) closes the connection, which the caller checks next.
        """
        services, client = self.services, self.client
        try:
            # scrypt runs here, on this connection's reader thread: never on the history thread.
            proof = services.gate.admit(client.peer, hello, self._reader_db)
        except Refused as refused:
            log.info("conn=%d event=login_refused code=%s", client.id, refused.code)
            services.tally.count("refusals", refused.code.value)
            return f"login refused: {refused.code}", error_frame(
                refused.code, refused.message, hello.ref, retry_after_ms=refused.retry_after_ms, fatal=True
            )
        outcome = self._submit_login(Login(hello, proof))
        wait = client.nick_wait
        if outcome is None and wait is not None:
            # The nick's holder is leaving (chat_server.history.chat): wait for its logout, then ask once
            # more.
            client.nick_wait = None
            wait.wait(services.config.nick_release_wait)
            client.login_settled = Latch()
            if client.closed:
                return None  # closed meanwhile (the caller sees why); the new latch was never needed
            outcome = self._submit_login(Login(hello, proof, retry=False))
        return outcome

    def _submit_login(self, login: Login) -> tuple[str, bytes | None] | None:
        services, client, ref = self.services, self.client, login.hello.ref
        if not services.sequencer.submit(client, login):
            return "server busy", fatal_frame(ErrorCode.SERVER_FULL, "server busy, try again later", ref)
        config = services.config
        if not client.login_settled.wait(config.sequencer_wait + config.hello_timeout):
            return "server busy", fatal_frame(ErrorCode.SERVER_FULL, "login not handled in time", ref)
        return None

    def close(self) -> None:
        """The connection is ending: close its files and its read connection (before its `Disconnect`)."""
        if self._transfers is not None:
            # Before the Disconnect: once the nick is free, a new connection may resume these uploads.
            self._transfers.close()
        if self._history_db is not None:
            self._history_db.close()

    # -- Rate limits ---------------------------------------------------------------------------------------

    def _wait_for(self, bucket: TokenBucket, cost: float, wait: float, name: str) -> Outcome:
        """Fakelag: hold the reader until `bucket` has `cost` tokens (due in `wait` s), then spend them.

        Counted once per delayed request under `name`, like a refusal (for /stats and the metrics).
        """
        self._count_refusal(name)
        while wait:
            if (outcome := self._delay(wait)) is not None:
                return outcome
            wait = bucket.take(cost)
        return None

    def _held_back(self, wait: float, ref: int | None) -> Outcome:
        """Refuse a `say`/`tell` behind one refused as "server busy" (`MessageOrder`), until that one is back.

        Not counted against `flood_refusals`: the client did nothing wrong, and it paid a request token.
        """
        retry = max(1, int(wait * 1000 + 0.999))
        refusal = error_frame(ErrorCode.RATE_LIMITED, "held behind a refused one", ref, retry_after_ms=retry)
        self.client.send(refusal)
        return None

    def _count_refusal(self, bucket: str) -> None:
        """Count a request refused or delayed by a rate limit under its bucket (/stats, the metrics)."""
        self.rate_limited += 1
        self.services.tally.count("rate_limited", bucket)

    def _rate_limited(self, wait: float, ref: int | None) -> Outcome:
        """Refuse a request over the join or nick bucket, saying when to try again."""
        retry = max(1, int(wait * 1000 + 0.999))
        return self._refuse(error_frame(ErrorCode.RATE_LIMITED, "slow down", ref, retry_after_ms=retry), ref)

    def _refuse(self, refusal: bytes, ref: int | None) -> Outcome:
        """Send `refusal`; too many refusals in a row end the connection instead."""
        if self._refusals.take():
            self.services.tally.count("rate_limited", "flood")
            log.info("conn=%d event=excess_flood", self.client.id)
            return "excess flood", fatal_frame(ErrorCode.EXCESS_FLOOD, "too many refused requests", ref)
        self.client.send(refusal)
        return None

    # -- Requests within the limits ------------------------------------------------------------------------

    def _request(self, message: Message) -> Outcome:
        if isinstance(message, FetchHistory):
            self.client.send(self._fetch_history(message))
        elif isinstance(message, GetStats):
            self.client.send(answer_stats(self.services, self.client, message))
        elif isinstance(message, ChangeNick | Register | Unregister):
            self._account_request(message)
        elif isinstance(message, OfferFile):
            return self._transfer(message)
        else:
            self._submit(message, getattr(message, "ref", None))
        return None

    def _submit(self, request: Message | Rename | Enroll | Unenroll, ref: int | None) -> None:
        if not self.services.sequencer.submit(self.client, request):
            if isinstance(request, Say | Tell):
                self._order.refused(request.client_msg_id, BUSY_RETRY)  # later ones wait for this one
            retry_ms = int(BUSY_RETRY * 1000)
            self.client.send(error_frame(ErrorCode.RATE_LIMITED, "server busy", ref, retry_after_ms=retry_ms))

    def _fetch_history(self, request: FetchHistory) -> bytes:
        try:
            db = self._reader_db()
        except HistoryError as error:
            log.warning("conn=%d event=history_failed error=%s", self.client.id, error)
            return error_frame(ErrorCode.HISTORY_UNAVAILABLE, "history is unavailable", request.ref)
        services = self.services
        return fetch_history(self.client, request, db, services.hub, services.config)

    def _account_request(self, message: ChangeNick | Register | Unregister) -> None:
        """Check passwords (and hash a new one) here, on the reader thread; hand only the result over.

        scrypt costs tens of milliseconds by design: on the history thread it would hold up all chat.
        """
        gate, address = self.services.gate, self.client.peer
        with self.services.hub.lock:
            key = self.client.key or ""
        request: Rename | Enroll | Unenroll
        try:
            if isinstance(message, ChangeNick):
                proof = None
                if message.password is not None:
                    proof = gate.prove(address, message.nick, message.password, self._reader_db)
                request = Rename(message, proof)
            elif isinstance(message, Register):
                request = gate.enroll(address, key, message, self._reader_db)
            else:
                request = gate.unenroll(address, key, message, self._reader_db)
        except Refused as refused:
            frame = error_frame(
                refused.code, refused.message, message.ref, retry_after_ms=refused.retry_after_ms
            )
            self.client.send(frame)
            return
        self._submit(request, message.ref)

    def _transfer(self, message: FileChunk | GetFile | CancelFile | OfferFile) -> Outcome:
        """A file request (`chat_server.reader.uploads`); its refusals count against `flood_refusals`."""
        refusal: bytes | None
        files = self.services.files
        if files is None:
            refusal = error_frame(ErrorCode.FORBIDDEN, "file sharing is off on this server", message.ref)
        else:
            if self._transfers is None:
                services = self.services
                self._transfers = Transfers(
                    self.client,
                    self.client.outbox,
                    files,
                    services.hub,
                    services.sequencer,
                    self._reader_db,
                    self._settle,
                    services.tally,
                )
            refusal = self._transfers.handle(message)
        if refusal is None:
            return None
        return self._refuse(refusal, message.ref)

    # -- Helpers for the requests answered here ------------------------------------------------------------

    def _settle(self) -> None:
        """Wait (bounded) until the history thread has applied every request this connection sent before."""
        done = Latch()
        if self.services.sequencer.submit(self.client, Settle(done)):
            done.wait(self.services.config.sequencer_wait)

    def _reader_db(self) -> sqlite3.Connection:
        """This reader's own SQLite read connection, opened when first needed (raises `HistoryError`)."""
        if self._history_db is None:
            self._history_db = self.services.store.open_reader()
        return self._history_db
