"""Room and direct messages: the durable requests, held in the open transaction until the group commit.

`Messages` runs on the history thread only (called by `chat_server.history.chat.Chat`). A `say` or `tell` is
inserted into the open transaction and its deliveries (the `ack` to the sender, the `said`/`told` to the
others) wait in `_pending` until `flush()` commits the batch: nobody hears of a message that is not on disk,
and acks go out in id order. Every other request is a *barrier* that calls `flush()` first (see
chat_server.history.chat).

If SQLite fails, the whole open transaction is lost: every message held back in it is refused with
`history_unavailable` (never relayed unstored), and the failure is logged at most once a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from chat_server.hub import Client, Hub, Room, member_room
from chat_server.metrics import Tally
from chat_server.replies import error_frame
from chat_server.storage import HistoryError, HistoryStore, conversation_key
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Ack, Said, Say, Tell, Told
from shared.text import fold

from .moderation import Moderation

log = logging.getLogger(__name__)

# Log a failing history database at most this often (seconds), not once per message.
_HISTORY_LOG_INTERVAL = 60.0


@dataclass(slots=True)
class _Stored:
    """A durable request's deliveries, held back until its transaction commits."""

    #: None for a message another server of the cluster stored (chat_server.cluster): nobody here to ack.
    sender: Client | None
    ack: bytes
    ref: int | None
    relay: bytes | None = None
    room: Room | None = None  # fan out `relay` to this room (minus the sender) ...
    recipients: tuple[Client, ...] = ()  # ... or send it to these clients
    #: False for a delivery followed by the request's own answer (an event before its `ack`): a failed
    #: commit refuses the request once, on its answer.
    answers: bool = True
    #: A change of the hub and its announcements, made after the commit in its place among the deliveries
    #: (a record of the cluster's log that puts members out of a room: chat_server.cluster.moderation).
    then: Callable[[], None] | None = None


def direct_recipients(sender: Client, peer: Client | None) -> tuple[Client, ...]:
    """Who gets a direct message (or an event of a direct conversation) `sender` sends to `peer`'s nick:
    every session of `peer`, and `sender`'s other sessions; never `sender` itself (it gets its answer)."""
    everyone = [*(peer.sessions if peer is not None else ()), *sender.sessions]
    return tuple({session.id: session for session in everyone if session is not sender}.values())


class Messages:
    """Stores messages in the open transaction and delivers them after the commit (history thread only)."""

    def __init__(
        self,
        hub: Hub,
        store: HistoryStore,
        ts: Callable[[], int],
        moderation: Moderation,
        tally: Tally | None = None,
    ) -> None:
        self.hub = hub
        #: Counted once per batch and once per room run, never per recipient (chat_server.metrics).
        self.tally = tally if tally is not None else Tally()
        self.store = store
        self._ts = ts
        self._moderation = moderation
        self._pending: list[_Stored] = []
        #: The session standing for a registered nick none of whose sessions is connected, made for a direct
        #: message to it when the server keeps such nicks (chat_server.history.presence); else None.
        self.offline: Callable[[str], Client | None] = lambda _key: None
        self._history_logged_at = -_HISTORY_LOG_INTERVAL

    def servers(self) -> tuple[str, ...]:
        """The other servers of the same chat that `welcome` announces: none for a single server (a cluster
        server's are in chat_server.cluster.messaging)."""
        return ()

    # -- Group commit --------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit the open transaction, then deliver every held-back ack and message in order."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        tally = self.tally
        started = time.monotonic()
        try:
            self.store.commit()
        except HistoryError as error:
            self.history_failed(error, pending)
            return
        committed = time.monotonic()
        tally.commit_seconds.observe(committed - started)
        tally.fanout_from = committed  # the sender measures from here to the end of its next round
        run: list[tuple[Client | None, bytes, bytes]] = []  # consecutive messages of one room
        run_room: Room | None = None
        messages = deliveries = 0
        for stored in pending:
            if stored.relay is not None:
                messages += 1
            if stored.room is not None and stored.relay is not None:
                if stored.room is not run_room and run_room is not None:
                    deliveries += self.hub.publish_messages(run_room, run)
                    run = []
                run_room = stored.room
                run.append((stored.sender, stored.ack, stored.relay))
                continue
            if run_room is not None:
                deliveries += self.hub.publish_messages(run_room, run)
                run, run_room = [], None
            if stored.then is not None:
                stored.then()
                continue
            if stored.sender is not None:
                stored.sender.send(stored.ack)
            if stored.relay is not None:
                for recipient in stored.recipients:
                    recipient.send(stored.relay)
                deliveries += len(stored.recipients)
        if run_room is not None:
            deliveries += self.hub.publish_messages(run_room, run)
        tally.messages += messages
        tally.deliveries += deliveries
        tally.sample(committed)

    def after_commit(
        self,
        client: Client | None,
        frame: bytes,
        ref: int | None,
        relay: bytes | None = None,
        recipients: tuple[Client, ...] = (),
    ) -> None:
        """Hold `frame` for `client` (and `relay` for `recipients`) until the open transaction commits, like
        an ack: for another part's change written into the batch (a read marker, which the nick's other
        sessions hear of too; `client` is None for a change another server of the cluster asked for). If the
        commit fails, `client` is refused instead.

        If the write itself failed, call `write_failed` instead."""
        self._pending.append(_Stored(client, frame, ref, relay, recipients=recipients))

    def after_commit_do(self, action: Callable[[], None], client: Client | None, ref: int | None) -> None:
        """Run `action` after the open transaction commits, in its place among the held-back deliveries
        (it sends its own frames); if the commit fails, `client` (if any) is refused instead."""
        self._pending.append(_Stored(client, b"", ref, then=action))

    def write_failed(self, client: Client, error: HistoryError, ref: int | None) -> None:
        """Another part's write into the open transaction failed: the batch is lost, refuse it all."""
        self._failed_write(client, error, ref)

    def history_failed(self, error: HistoryError, pending: list[_Stored]) -> None:
        """Roll back the open transaction and refuse each of `pending`; log it at most once a minute."""
        self.store.rollback()
        now = time.monotonic()
        if now - self._history_logged_at >= _HISTORY_LOG_INTERVAL:
            self._history_logged_at = now
            log.error("event=history_failed error=%s (messages are refused until it recovers)", error)
        for stored in pending:
            if stored.answers and stored.sender is not None:
                stored.sender.send(
                    error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the message could not be stored", stored.ref)
                )

    # -- Messages (durable) --------------------------------------------------------------------------------

    def _answered_before(self, client: Client, request: Say | Tell, conversation: str) -> bool:
        """True if `request` reuses a `client_msg_id` of this sender in this conversation: a resend of the
        same message is acked with the original id (`duplicate`), a different message is refused."""
        if request.client_msg_id is None or client.key is None:
            return False
        found = self.store.find_previous(client.key, request.client_msg_id, conversation)
        if found is None:
            return False
        if (found.text, found.action, found.sha256) != (request.text, request.action, None):
            reused = f"client_msg_id {request.client_msg_id!r} was used for another message here"
            client.send(error_frame(ErrorCode.CLIENT_MSG_ID_REUSED, reused, request.ref))
            return True
        ack = Ack(
            id=found.id, ts=found.ts, client_msg_id=request.client_msg_id, duplicate=True, ref=request.ref
        )
        self._pending.append(_Stored(client, encode(ack), request.ref))
        return True

    def say(self, client: Client, request: Say) -> None:
        """Store a room message; its ack and its `said` wait for the commit."""
        room = member_room(client, request.room, request.ref)
        if room is None:
            return
        if (muted := self._moderation.silenced(client, room)) is not None:
            client.send(error_frame(ErrorCode.MUTED, muted, request.ref))
            return
        ts = self._ts()
        try:
            if request.reply_to is not None and not self._replies_within(client, request, room.key, None):
                return
            if self._answered_before(client, request, room.key):
                return
            message_id = self.store.add_room_message(
                room_key=room.key,
                room=room.name,
                sender=client.nick or "",
                sender_key=client.key or "",
                text=request.text,
                ts=ts,
                action=request.action,
                client_msg_id=request.client_msg_id,
                reply_to=request.reply_to,
            )
        except HistoryError as error:
            self._failed_write(client, error, request.ref)
            return
        room.last_id = message_id
        said = Said(
            id=message_id,
            room=room.name,
            nick=client.nick or "",
            text=request.text,
            ts=ts,
            action=request.action,
            reply_to=request.reply_to,
        )
        ack = Ack(id=message_id, ts=ts, client_msg_id=request.client_msg_id, ref=request.ref)
        self._pending.append(_Stored(client, encode(ack), request.ref, relay=encode(said), room=room))

    def tell(self, client: Client, request: Tell) -> None:
        """Store a direct message; its ack and its `told` wait for the commit."""
        recipient = self.hub.nicks.get(fold(request.to)) or self.offline(fold(request.to))
        if recipient is None or recipient.nick is None or recipient.key is None:
            client.send(error_frame(ErrorCode.NO_SUCH_NICK, f"{request.to!r} is not online", request.ref))
            return
        ts = self._ts()
        try:
            if request.reply_to is not None and not self._replies_within(
                client, request, None, recipient.key
            ):
                return
            if self._answered_before(client, request, conversation_key(None, recipient.key)):
                return
            message_id = self.store.add_direct_message(
                sender=client.nick or "",
                sender_key=client.key or "",
                recipient=recipient.nick,
                recipient_key=recipient.key,
                text=request.text,
                ts=ts,
                action=request.action,
                client_msg_id=request.client_msg_id,
                reply_to=request.reply_to,
            )
        except HistoryError as error:
            self._failed_write(client, error, request.ref)
            return
        told = Told(
            id=message_id,
            nick=client.nick or "",
            to=recipient.nick,
            text=request.text,
            ts=ts,
            action=request.action,
            reply_to=request.reply_to,
        )
        # The recipient's away message goes back to the sender with the ack (`away` is history-thread state).
        ack = Ack(
            id=message_id, ts=ts, client_msg_id=request.client_msg_id, ref=request.ref, away=recipient.away
        )
        # Every session of the recipient, and the sender's other sessions (their own message); the ack stands
        # in the told's place for the session that sent it (a note to self too).
        to = direct_recipients(client, recipient)
        self._pending.append(_Stored(client, encode(ack), request.ref, relay=encode(told), recipients=to))

    def hold(
        self,
        sender: Client | None,
        frame: bytes,
        ref: int | None,
        *,
        relay: bytes | None = None,
        room: Room | None = None,
        recipients: tuple[Client, ...] = (),
        answers: bool = True,
    ) -> None:
        """Hold a frame for `sender` (and `relay` for `room`'s other members, or for `recipients`) until the
        open transaction commits: the other parts' durable requests (chat_server.history.conversation).
        A `sender` of None (a change another server of the cluster asked for): `relay` goes to everyone."""
        self._pending.append(_Stored(sender, frame, ref, relay, room, recipients, answers))

    def failed_write(self, client: Client, error: HistoryError, ref: int | None) -> None:
        """A write of the open transaction failed: refuse every request held back in it, and this one."""
        self._failed_write(client, error, ref)

    def _replies_within(
        self, client: Client, request: Say | Tell, room_key: str | None, peer_key: str | None
    ) -> bool:
        """True if `request.reply_to` names a chat message of the same conversation (the room `room_key`,
        or the direct conversation with `peer_key`); else refuse the request with `no_such_message`."""
        target = self.store.target(request.reply_to or 0)
        if target is not None and target.chat:
            if room_key is not None and target.room_key == room_key:
                return True
            ends = {client.key, peer_key}
            if (
                room_key is None
                and target.room_key is None
                and {target.sender_key, target.recipient_key} == ends
            ):
                return True
        missing = f"no message {request.reply_to} in this conversation to reply to"
        client.send(error_frame(ErrorCode.NO_SUCH_MESSAGE, missing, request.ref))
        return False

    def _failed_write(self, client: Client, error: HistoryError, ref: int | None) -> None:
        # The whole open transaction is lost: every message held back in it is refused, not just this one.
        pending, self._pending = self._pending, []
        self.history_failed(error, [*pending, _Stored(client, b"", ref)])
