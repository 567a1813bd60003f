"""`Router`: the one table that says which part of a `ChatClient` each message from the server goes to.

The run task (chat_client.net.runner) hands every incoming message to `Router.route`, one at a time. The
waiting requests see each message first (`Waiters`); then one `match` on the message's type sends it to
the part it concerns, and (unless it is a duplicate, or consumed, like `Ack`, `Ping` and file chunks) to
the caller as an event. The parts are passed in explicitly by `ChatClient`, which owns them: `Delivery`
the outbox's trip to the server, `FileTransfers` the file transfers, `ResumeState` what survives a reconnect,
`Liveness` the pings, `Credentials` who we log in as, `Crowd` who shares our rooms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chat_client.net.delivery import Delivery
from chat_client.net.events import Event
from chat_client.net.liveness import Liveness
from chat_client.net.login import Credentials
from chat_client.net.resume import DM_KEY, Crowd, ResumeState, room_key
from chat_client.net.session import Session
from chat_client.net.transfers import FileTransfers
from chat_client.net.waiters import Waiters
from shared import (
    Ack,
    FileData,
    FileDone,
    FileOffered,
    FileProgress,
    History,
    Joined,
    Left,
    Message,
    Moderated,
    NickChanged,
    Ok,
    Ping,
    Pong,
    Registration,
    RoomState,
    Said,
    Told,
    fold,
)
from shared import Error as ErrorFrame

log = logging.getLogger(__name__)


class Router:
    """Sends each message from the server to the part of the client it concerns; see the module docstring."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        waiters: Waiters,
        crowd: Crowd,
        liveness: Liveness,
        delivery: Delivery,
        resume: ResumeState,
        transfers: FileTransfers,
        emit: Callable[[Event], None],
    ) -> None:
        self._credentials = credentials
        self._waiters = waiters
        self._crowd = crowd
        self._liveness = liveness
        self._delivery = delivery
        self._resume = resume
        self._transfers = transfers
        self._emit = emit

    def _is_mine(self, nick: str) -> bool:
        return fold(nick) == fold(self._credentials.nick)

    def route(self, message: Message, session: Session) -> None:
        """Give `message` (read from `session`) to the part it concerns, and to the caller as an event."""
        self._waiters.answer(message)
        self._crowd.update(message, self._credentials.nick)
        match message:
            case Ping(token=token):
                self._liveness.on_ping(session, token)
            case Pong(token=token):
                self._liveness.on_pong(token)
            case Ok():
                pass  # a waiting request has seen it (its effect came as the broadcast before it)
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
                if self._is_mine(old):
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
        if not self._is_mine(item.nick):
            return False
        for entry in self._delivery.outbox:
            same_target = (
                entry.room is not None and isinstance(item, Said) and fold(entry.room) == fold(item.room)
            ) or (entry.peer is not None and isinstance(item, Told) and fold(entry.peer) == fold(item.to))
            if same_target and entry.text == item.text and entry.action == item.action:
                return True
        return False

    def file_stored(self, offer: FileOffered) -> None:
        """Our upload was stored: report it like a received offer, and never deliver its replay."""
        self._resume.note_own(_offer_key(offer), offer.id)
        self._emit(offer)


def _offer_key(offer: FileOffered) -> str:
    """The resume key of a file offer: its room's, or the direct messages'."""
    return room_key(offer.room) if offer.room is not None else DM_KEY
