"""`ClientCore`: the parts a `ChatClient` is made of, and how each message from the server reaches its owner.

`ChatClient` (chat_client.net.client) is built in three layers, each owning one thing: this class assembles
the parts and routes what the server sends (`_handle`); `ClientRunner` (chat_client.net.runner) adds the run
task that connects, logs in and reconnects; `ChatClient` adds the requests a caller makes. Each part owns one
thing: `Delivery` the outbox's trip to the server, `Transfers` the file transfers, `ResumeState` what
survives a reconnect, `Waiters` the requests awaiting answers, `Liveness` the pings, `Credentials` the
passwords to log in with, `EventQueue` the events for the caller.

Routing runs in the run task, one message at a time: the waiting requests see each message first; then it
goes to the part it concerns, and (unless it is a duplicate, or consumed, like `Ack`, `Ping` and file
chunks) to the caller as an event.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable

from chat_client.net.delivery import Delivery
from chat_client.net.errors import InvalidRequest
from chat_client.net.eventlog import log_event
from chat_client.net.eventqueue import EventQueue
from chat_client.net.events import Event
from chat_client.net.liveness import Liveness
from chat_client.net.login import Credentials
from chat_client.net.options import ClientOptions, ConnectionState
from chat_client.net.pacing import Pacer
from chat_client.net.resume import DM_KEY, Crowd, ResumeState, room_key
from chat_client.net.session import Endpoint, Session
from chat_client.net.transfers import Transfers
from chat_client.net.trust import ServerIdentity, TlsOptions
from chat_client.net.waiters import Waiters
from chat_client.settings import downloads_dir
from shared import (
    Ack,
    FileData,
    FileDone,
    FileOffered,
    FileProgress,
    History,
    Joined,
    Left,
    LocalProtocolError,
    Message,
    Moderated,
    NickChanged,
    Ping,
    Pong,
    Registration,
    RoomState,
    Said,
    Told,
    check_outgoing,
    fold,
)
from shared import Error as ErrorFrame
from shared.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)


class ClientCore:
    """The parts of a client and the routing of incoming messages to them; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        rooms: Iterable[str] | None = None,
        options: ClientOptions | None = None,
        password: str | None = None,
        nick_password: str | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        """`password`: the server's password, if it has one; `nick_password`: the nick's, if registered.

        Both are kept in memory only, to log in again after a reconnect.
        """
        self.endpoint = Endpoint(host, port)
        #: TLS with the server's key checked (pinned on first use); None: plaintext.
        self.tls = tls
        #: The verified key of the current (or last) TLS session.
        self.identity: ServerIdentity | None = None
        #: Our nick as the server knows it (updated by the welcome and by nick changes).
        self.nick = nick
        self.options = options or ClientOptions()
        self._first_rooms = tuple(rooms) if rooms is not None else None
        self._credentials = Credentials(password, nick_password)
        self._state = ConnectionState.IDLE
        self._session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._logged_in_once = False
        # The secret of the current session (from its welcome), sent in the hello of each reconnect.
        self._resume_token: str | None = None
        # Set by `reconnect_now()`: the next attempt starts at once. `_wake` ends the wait before it.
        self._retry_now = False
        self._wake: asyncio.Event | None = None
        self._events = EventQueue(self.options.event_queue_limit)
        self._resume = ResumeState()
        self._refs = itertools.count(1)
        self._waiters = Waiters()
        self._delivery = Delivery(
            self.options.outbox_limit,
            lambda: next(self._refs),
            self._emit,
            pacer=Pacer(self.options.pacing_slack, enabled=self.options.pacing),
        )
        self._liveness = Liveness(
            self._emit, multiple=self.options.ping_rtt_multiple, floor=self.options.ping_grace
        )
        self._crowd = Crowd()
        self._first_login: asyncio.Future[None] | None = None
        # The limits of the last session, kept for checking messages typed while offline.
        self._last_limits = DEFAULT_LIMITS
        self._transfers = Transfers(
            emit=self._emit,  # type: ignore[arg-type]
            stored=self._on_file_stored,
            next_ref=lambda: next(self._refs),
            nick=lambda: self.nick,
            downloads=lambda: self.options.downloads_dir or downloads_dir(),
            max_uploads=self.options.max_uploads,
            progress_interval=self.options.progress_interval,
            join_wait=self.options.request_timeout,
        )

    @property
    def limits(self) -> Limits:
        """The server's limits (the protocol defaults before the first login)."""
        return self._session.limits if self._session is not None else self._last_limits

    def _emit(self, event: Event) -> None:
        log_event(event, rooms=len(self._resume.rooms), outbox=len(self._delivery.outbox))
        self._events.emit(event)

    def _is_mine(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)

    def _check(self, message: Message) -> None:
        """Raise `InvalidRequest` if `message` breaks a rule of the protocol or of the server's limits."""
        try:
            check_outgoing(message, self.limits)
        except LocalProtocolError as error:
            raise InvalidRequest(error.code, error.message) from None

    # -- Incoming messages -------------------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        self._waiters.answer(message)
        self._crowd.update(message, self.nick)
        match message:
            case Ping(token=token):
                self._liveness.on_ping(self._session, token)
            case Pong(token=token):
                self._liveness.on_pong(token)
            case Ack():
                entry = self._delivery.on_ack(message)
                if entry is not None:
                    # Our own message's id: a later replay of the room must not deliver it back to us.
                    self._resume.note_own(
                        room_key(entry.room) if entry.room is not None else DM_KEY, message.id
                    )
            case ErrorFrame():
                if message.ref is not None:
                    self._credentials.refused(message.ref)
                if not (self._delivery.on_error(message) or self._transfers.route(message)):
                    self._emit(message)
            case FileProgress() | FileDone() | FileData():
                if not self._transfers.route(message):
                    log.debug("dropped a %s for no transfer of ours", message.TYPE)
            case FileOffered():
                self._transfers.learn(message)
                if self._resume.note(_offer_key(message), message.id):
                    self._emit(message)
            case Said():
                if self._resume.note(room_key(message.room), message.id):
                    self._emit(message)
            case Told():
                if self._resume.note(DM_KEY, message.id):
                    self._emit(message)
            case Moderated():
                # Stored like a message: counted for resume, delivered once. An invitation to a room we
                # are not in is not part of that room's stream.
                if message.action == "invite" or self._resume.note(room_key(message.room), message.id):
                    self._emit(message)
            case History():
                for item in message.messages:
                    if isinstance(item, FileOffered):
                        self._transfers.learn(item)
                self._emit(self._resume.filter_history(message, self._is_pending_echo))
            case Joined(room=room, nick=nick):
                if self._is_mine(nick):
                    self._resume.joined(room)
                    self._transfers.joined(room)
                self._emit(message)
            case RoomState(room=room, key=key) if key is not None:
                self._resume.remember_key(room, key)  # we are its operator: rejoin with it if need be
                self._emit(message)
            case Left(room=room, nick=nick):
                if self._is_mine(nick):
                    self._resume.forget(room)
                    self._transfers.left(room)
                self._emit(message)
            case NickChanged(old=old, new=new):
                if fold(old) == fold(self.nick):
                    self.nick = new
                    self._credentials.nick_changed(old, new)
                self._emit(message)
            case Registration(registered=registered, ref=ref):
                self._credentials.registration_answered(ref, registered)
                self._emit(message)
            case _:
                self._emit(message)

    def _is_pending_echo(self, item: Said | Told) -> bool:
        """True if a replayed message is our own, still unacknowledged, first attempt.

        Its ack (marked duplicate) follows the resend, so the message is reported once, through the outbox.
        """
        if fold(item.nick) != fold(self.nick):
            return False
        for entry in self._delivery.outbox:
            same_target = (
                entry.room is not None and isinstance(item, Said) and fold(entry.room) == fold(item.room)
            ) or (entry.peer is not None and isinstance(item, Told) and fold(entry.peer) == fold(item.to))
            if same_target and entry.text == item.text and entry.action == item.action:
                return True
        return False

    def _on_file_stored(self, offer: FileOffered) -> None:
        """Our upload was stored: report it like a received offer, and never deliver its replay."""
        self._resume.note_own(_offer_key(offer), offer.id)
        self._emit(offer)


def _offer_key(offer: FileOffered) -> str:
    """The resume key of a file offer: its room's, or the direct messages'."""
    return room_key(offer.room) if offer.room is not None else DM_KEY
