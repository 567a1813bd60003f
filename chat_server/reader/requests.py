"""The handlers of the routing table's `READER` rows (chat_server.routes), and `HangUp`.

The read loop (chat_server.reader.connection) has already spent the request's rate bucket; requests of the
`HISTORY` rows never come here (`Connection.submit` queues them for the history thread).

Every handler here runs on the connection's reader thread and takes the `Connection` and the request. It
answers by queueing frames for the client (`client.send`); it ends the connection by raising `HangUp`, which
the read loop catches once (`Connection._read_loop`).

* `hello`: the password checks run here (scrypt, chat_server.reader.gate); the login itself is the history
  thread's, and the reader waits for its decision before reading on (`log_in`);
* `ping` is answered here, `pong` is only a sign of life, `quit` ends the connection;
* `fetch_history`, `search` and `stats` are answered here, from the reader's own SQLite read connection
  (chat_server.reader.pages, chat_server.reader.search) and the server's counters
  (chat_server.reader.adminstats);
* `typing` is relayed from here to the room's other members (`Hub.publish`), never stored;
* `nick`, `register` and `unregister` have their passwords checked here: only the result goes on;
* file requests move their bytes here (chat_server.reader.uploads); only the finished offer goes on.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from chat_server.files import FileRefused
from chat_server.history.accounts import Enroll, Rename, Unenroll
from chat_server.history.chat import Login
from chat_server.reader import adminstats, pages
from chat_server.reader.gate import AccessRefused
from chat_server.reader.search import answer_search
from chat_server.reader.uploads import ConnectionFiles
from chat_server.replies import error_frame, fatal_frame
from chat_server.storage import HistoryError
from chat_server.tuning import Latch
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import (
    CancelFile,
    ChangeNick,
    FetchHistory,
    FileChunk,
    GetFile,
    GetStats,
    Hello,
    OfferFile,
    Ping,
    Pong,
    Quit,
    Register,
    Search,
    Typing,
    Unregister,
)
from shared.text import fold

if TYPE_CHECKING:
    from chat_server.reader.connection import Connection

log = logging.getLogger(__name__)


class HangUp(Exception):
    """End the connection: raised anywhere on the reader thread, caught once by its read loop.

    `reason` is logged and told to the others in the `signed_off`; `last` (an encoded frame, usually a fatal
    `error`) is sent after what is queued, before the close.
    """

    def __init__(self, reason: str, last: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.last = last


# -- The connection's own life -------------------------------------------------------------------------------


def log_in(connection: Connection, hello: Hello) -> None:
    """Hand the login to the history thread and wait for its decision before reading on.

    A client may pipeline requests behind its hello; answering any of them here (a `pong`, an error)
    before the history thread has queued the `welcome` would put them first on the wire, and after a
    refused hello they must not be answered at all (docs/protocol.md, "Connection life"). A refusal by
    the history thread (e.g. nick_taken) closes the connection: the reader hangs up with its reason.
    """
    connection.hello_received()
    services, client = connection.services, connection.client
    try:
        # scrypt runs here, on this connection's reader thread: never on the history thread.
        proof = services.gate.admit(client.peer, hello, connection.reader_db)
    except AccessRefused as refused:
        log.info("conn=%d event=login_refused code=%s", client.id, refused.code)
        services.tally.count("refusals", refused.code.value)
        raise HangUp(
            f"login refused: {refused.code}",
            error_frame(
                refused.code, refused.message, hello.ref, retry_after_ms=refused.retry_after_ms, fatal=True
            ),
        ) from None
    owner = proof is not None and proof.digest is not None  # the registered nick's password matched
    _claim_nick(connection, hello, owner)
    _submit_login(connection, Login(hello, proof))
    wait = client.nick_wait
    if wait is not None:
        # The nick's holder is leaving (chat_server.history.chat): wait for its logout, then ask once more.
        client.nick_wait = None
        wait.wait(services.config.nick_release_wait)
        client.login_settled = Latch()
        if not client.closed:
            _claim_nick(connection, hello, owner)
            _submit_login(connection, Login(hello, proof, retry=False))
    connection.hang_up_if_closed()  # refused (e.g. nick_taken): the history thread queued the error


def _claim_nick(connection: Connection, hello: Hello, owner: bool) -> None:
    """In cluster mode, claim the nick across the cluster first (chat_server.cluster.nicks; `owner`: the
    login gave the registered nick's password); a single server has nothing to claim."""
    nicks = connection.services.nicks
    if nicks is not None and (refusal := nicks.admit(hello, owner)) is not None:
        code, frame = refusal
        connection.services.tally.count("refusals", code.value)
        raise HangUp(f"login refused: {code} (cluster)", frame)


def _submit_login(connection: Connection, login: Login) -> None:
    services, client, ref = connection.services, connection.client, login.hello.ref
    if not services.history.submit(client, login):
        raise HangUp("server busy", fatal_frame(ErrorCode.SERVER_FULL, "server busy, try again later", ref))
    config = services.config
    if not client.login_settled.wait(config.history_wait + config.hello_timeout):
        raise HangUp("server busy", fatal_frame(ErrorCode.SERVER_FULL, "login not handled in time", ref))


def answer_ping(connection: Connection, ping: Ping) -> None:
    """Answer a `ping` with its `pong` (the token and the ref echoed)."""
    connection.client.send(encode(Pong(token=ping.token, ref=ping.ref)))


def take_pong(connection: Connection, pong: Pong) -> None:
    """A `pong`: any input counts as a sign of life (the read loop noted it); the pong has done its job."""


def end_on_quit(connection: Connection, request: Quit) -> None:
    """The client says goodbye: end the connection with its reason."""
    raise HangUp(request.reason or "quit")


# -- Requests answered here ----------------------------------------------------------------------------------


def fetch_history(connection: Connection, request: FetchHistory) -> None:
    """A page of history, from this reader's own SQLite read connection (chat_server.reader.pages)."""
    db = _history_db(connection, request.ref)
    if db is not None:
        services = connection.services
        client = connection.client
        client.send(pages.fetch_history(client, request, db, services.hub, services.config))


def search(connection: Connection, request: Search) -> None:
    """A page of search hits, from this reader's own SQLite read connection (chat_server.reader.search)."""
    db = _history_db(connection, request.ref)
    if db is not None:
        services = connection.services
        client = connection.client
        client.send(answer_search(client, request, db, services.hub, services.config, services.indexer))


def _history_db(connection: Connection, ref: int | None) -> sqlite3.Connection | None:
    """This reader's SQLite read connection; None when it cannot be opened (the client is then told
    `history_unavailable`, with `ref`)."""
    try:
        return connection.reader_db()
    except HistoryError as error:
        log.warning("conn=%d event=history_failed error=%s", connection.client.id, error)
        connection.client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, "history is unavailable", ref))
        return None


def relay_typing(connection: Connection, request: Typing) -> None:
    """Relay a `typing` to the room's other members, with this client's nick; never stored, never answered.

    Dropped silently when the client is not in the room, for a start within `typing_interval` of the last one
    relayed for this room, and for a stop with no relayed start before it (so stops cannot flood either).
    """
    client, hub = connection.client, connection.services.hub
    key = fold(request.room)
    with hub.lock:
        room = client.rooms.get(key)
        nick = client.nick
        rooms = set(client.rooms) if room is not None else set()
    if room is None or nick is None:
        return
    state = connection.typing_state()
    for gone in [gone for gone in state if gone not in rooms]:
        del state[gone]  # rooms left since: the table stays as small as the client's rooms
    now = connection.services.clock()
    last, open_start = state.get(key, (float("-inf"), False))
    if request.active:
        if now - last < connection.services.config.typing_interval:
            return
        state[key] = (now, True)
    else:
        if not open_start:
            return
        state[key] = (last, False)
    hub.publish(room, encode(Typing(room=room.name, active=request.active, nick=nick)), skip=client)


def answer_stats(connection: Connection, request: GetStats) -> None:
    """The admin's `/stats` (chat_server.reader.adminstats)."""
    connection.client.send(adminstats.answer_stats(connection.services, connection.client, request))


def change_nick(connection: Connection, request: ChangeNick) -> None:
    """Check the nick's password here (if one is given); the history thread decides (`Rename`).

    In cluster mode the new nick is first claimed across the cluster (chat_server.cluster.nicks)."""
    nicks = connection.services.nicks
    if nicks is not None and (refusal := nicks.rename(request.nick, request.ref)) is not None:
        connection.client.send(refusal)
        return

    def check(gate_request: ChangeNick, _key: str) -> Rename:
        proof = None
        if gate_request.password is not None:
            gate = connection.services.gate
            proof = gate.prove(
                connection.client.peer, gate_request.nick, gate_request.password, connection.reader_db
            )
        return Rename(gate_request, proof)

    _account_request(connection, request, check)


def register(connection: Connection, request: Register) -> None:
    """Hash the new password here (scrypt); the history thread stores it (`Enroll`)."""
    gate, address = connection.services.gate, connection.client.peer
    _account_request(connection, request, lambda r, key: gate.enroll(address, key, r, connection.reader_db))


def unregister(connection: Connection, request: Unregister) -> None:
    """Check the password here; the history thread removes the registration (`Unenroll`)."""
    gate, address = connection.services.gate, connection.client.peer
    _account_request(connection, request, lambda r, key: gate.unenroll(address, key, r, connection.reader_db))


A = TypeVar("A", ChangeNick, Register, Unregister)


def _account_request(
    connection: Connection, request: A, check: Callable[[A, str], Rename | Enroll | Unenroll]
) -> None:
    """Check passwords (and hash a new one) here, on the reader thread; hand only the result over.

    scrypt costs tens of milliseconds by design: on the history thread it would hold up all chat.
    """
    client = connection.client
    with connection.services.hub.lock:
        key = client.key or ""
    try:
        checked = check(request, key)
    except AccessRefused as refused:
        client.send(
            error_frame(refused.code, refused.message, request.ref, retry_after_ms=refused.retry_after_ms)
        )
        return
    connection.submit(checked, request.ref)


# -- Files ---------------------------------------------------------------------------------------------------

F = TypeVar("F", OfferFile, FileChunk, GetFile, CancelFile)


def offer_file(connection: Connection, request: OfferFile) -> None:
    """Start (or resume) an upload (chat_server.reader.uploads)."""
    _file_request(connection, request, ConnectionFiles.offer)


def file_chunk(connection: Connection, request: FileChunk) -> None:
    """Write one chunk of an upload."""
    _file_request(connection, request, ConnectionFiles.chunk)


def get_file(connection: Connection, request: GetFile) -> None:
    """Send one chunk of a stored file."""
    _file_request(connection, request, ConnectionFiles.get)


def cancel_file(connection: Connection, request: CancelFile) -> None:
    """Abandon an upload."""
    _file_request(connection, request, ConnectionFiles.cancel)


def _file_request(
    connection: Connection, request: F, action: Callable[[ConnectionFiles, F], bytes | None]
) -> None:
    """Run a file request on the connection's transfers; its refusals count against `flood_refusals`."""
    transfers = connection.transfers()
    refusal: bytes | None
    if transfers is None:
        refusal = error_frame(ErrorCode.FORBIDDEN, "file sharing is off on this server", request.ref)
    else:
        try:
            refusal = action(transfers, request)
        except FileRefused as refused:
            refusal = error_frame(refused.code, refused.message, request.ref)
        except HistoryError as error:
            log.warning("conn=%d event=files_history_failed error=%s", connection.id, error)
            refusal = error_frame(ErrorCode.HISTORY_UNAVAILABLE, "history is unavailable", request.ref)
    if refusal is not None:
        connection.budget.refuse(refusal, request.ref)
