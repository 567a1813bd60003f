"""Edits, deletions and reactions: events of a conversation, stored and delivered like messages.

`Conversations` runs on the history thread only (a part, like `Messages`: the routing table binds the
`edit`, `delete`, `react` and `unreact` rows to it). Each change is stored in the open transaction as an
*event* row of the conversation (its own id from the message sequence; chat_server.storage) together with
the new state of the message it changes, and its deliveries wait in `Messages`' group commit like a `say`'s:
after the commit, the event frame goes to the room (or to both ends of the direct conversation, the
requester included), then the requester gets its `ack` (with the event's id; only when the request carried a
`ref`). So nobody hears of a change that is not on disk, and the changes reach everyone in id order, among
the messages. A refusal is an `error` frame at once and changes nothing.

The rules (docs/server.md, "Conversations"): only its author edits a message, within `edit_window` seconds
of sending it (0: always); its author or an operator of its room (a server admin included) deletes it; a
message takes at most `max_reactions_per_message` different reactions, at most `max_reactions_per_user`
of them from one nick; a nick muted in the room cannot edit or react. An operator's deletion of someone
else's message is also stored and announced as a `moderated` entry (action ``delete``). The rate limits
(`rate_edits`, `rate_reactions`) are spent by the reader before a request gets here (chat_server.routes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub, Room
from chat_server.replies import error_frame
from chat_server.storage import HistoryError, HistoryStore, Target
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Ack, Delete, Deleted, Edit, Edited, Moderated, React, Reacted, Unreact, Unreacted
from shared.schema import Message

from .messaging import Messages, direct_recipients
from .moderation import Moderation

log = logging.getLogger(__name__)


class Refused(Exception):
    """A conversation request is refused: `code` and `message` go back in an `error` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Conversations:
    """Applies edits, deletions and reactions (history thread only)."""

    def __init__(
        self,
        hub: Hub,
        store: HistoryStore,
        config: ServerConfig,
        ts: Callable[[], int],
        messages: Messages,
        moderation: Moderation,
    ) -> None:
        self.hub = hub
        self.store = store
        self.config = config
        self._ts = ts
        self._messages = messages
        self._moderation = moderation

    # -- Requests (each a row of the routing table) -------------------------------------------------------

    def edit(self, client: Client, request: Edit) -> None:
        """Replace the text of the client's own message."""
        self._handle(client, request, self._edit)

    def delete(self, client: Client, request: Delete) -> None:
        """Delete a message: one's own, or as an operator of its room anyone's there."""
        self._handle(client, request, self._delete)

    def react(self, client: Client, request: React) -> None:
        """Add a reaction to a message."""
        self._handle(client, request, self._react)

    def unreact(self, client: Client, request: Unreact) -> None:
        """Take one's reaction off a message."""
        self._handle(client, request, self._unreact)

    # -- The work ------------------------------------------------------------------------------------------

    def _handle(
        self,
        client: Client,
        request: Edit | Delete | React | Unreact,
        apply: Callable[[Client, Target, Room | None, Edit | Delete | React | Unreact], None],
    ) -> None:
        try:
            target, room = self._target(client, request.id)
            apply(client, target, room, request)
        except Refused as refused:
            client.send(error_frame(refused.code, refused.message, request.ref))
        except HistoryError as error:
            self._messages.failed_write(client, error, request.ref)

    def _target(self, client: Client, message_id: int) -> tuple[Target, Room | None]:
        """The chat message `message_id` if the client may see it (a member of its room, or one end of its
        direct conversation), not deleted; else `no_such_message`."""
        target = self.store.target(message_id)
        room: Room | None = None
        if target is not None and target.chat:
            if target.room_key is not None:
                room = client.rooms.get(target.room_key)
                visible = room is not None
            else:
                visible = target.participant(client.key or "")
            if visible and target.deleted is None:
                return target, room
            if visible:
                raise Refused(ErrorCode.NO_SUCH_MESSAGE, f"message {message_id} was deleted")
        raise Refused(ErrorCode.NO_SUCH_MESSAGE, f"no message {message_id} that you can see")

    def _not_muted(self, client: Client, room: Room | None) -> None:
        if room is not None and (muted := self._moderation.silenced(client, room)) is not None:
            raise Refused(ErrorCode.MUTED, muted)

    def _edit(self, client: Client, target: Target, room: Room | None, request: object) -> None:
        assert isinstance(request, Edit)
        if target.sender_key != client.key:
            raise Refused(ErrorCode.FORBIDDEN, "only its author may edit a message")
        self._not_muted(client, room)
        ts = self._ts()
        window = self.config.edit_window
        if window and ts - target.ts > window * 1000:
            raise Refused(
                ErrorCode.EDIT_WINDOW_CLOSED, f"a message may be edited for {window:g} s after sending"
            )
        self.store.edit_message(target, request.text, ts, keep=self.config.keep_edits)
        event_id = self.store.add_event(target, kind="edited", actor=client.nick or "", ts=ts)
        room_name, to = self._where(client, target, room)
        edited = Edited(
            id=event_id,
            message_id=target.id,
            nick=client.nick or "",
            text=request.text,
            ts=ts,
            room=room_name,
            to=to,
        )
        self._deliver(client, target, room, [(event_id, edited)], ts, request.ref)

    def _delete(self, client: Client, target: Target, room: Room | None, request: object) -> None:
        assert isinstance(request, Delete)
        own = target.sender_key == client.key
        if not own and (room is None or not self._moderation.is_operator(client, room.key)):
            raise Refused(
                ErrorCode.FORBIDDEN, "only its author or an operator of its room may delete a message"
            )
        ts = self._ts()
        actor = client.nick or ""
        self.store.delete_message(target, ts, keep=self.config.keep_edits)
        event_id = self.store.add_event(target, kind="deleted", actor=actor, ts=ts)
        room_name, to = self._where(client, target, room)
        frames: list[tuple[int, Message]] = [
            (event_id, Deleted(id=event_id, message_id=target.id, nick=actor, ts=ts, room=room_name, to=to))
        ]
        if not own and room is not None:
            # An operator's deletion is a moderation action: stored and announced as such.
            entry_id = self.store.add_moderation(
                room_key=room.key,
                room=room.name,
                actor=actor,
                action="delete",
                target=target.sender,
                reason=request.reason,
                until=None,
                ts=ts,
            )
            moderated = Moderated(
                id=entry_id,
                room=room.name,
                nick=actor,
                action="delete",
                ts=ts,
                target=target.sender,
                reason=request.reason,
            )
            frames.append((entry_id, moderated))
            log.info(
                "conn=%d event=moderation room=%r actions=[('delete', %r)]",
                client.id,
                room.name,
                target.sender,
            )
        self._deliver(client, target, room, frames, ts, request.ref)

    def _react(self, client: Client, target: Target, room: Room | None, request: object) -> None:
        assert isinstance(request, React)
        self._not_muted(client, room)
        present = self.store.reactions(target.id)
        key = client.key or ""
        for reaction, nick_key, event_id in present:
            if reaction == request.reaction and nick_key == key:
                # Already there: nothing new is stored; the answer names the event that put it there.
                if request.ref is not None:
                    ack = Ack(id=event_id, ts=self.store.event_ts(event_id), duplicate=True, ref=request.ref)
                    self._messages.hold(client, encode(ack), request.ref)
                return
        distinct = {reaction for reaction, _key, _event in present}
        if request.reaction not in distinct and len(distinct) >= self.config.max_reactions_per_message:
            limit = self.config.max_reactions_per_message
            raise Refused(
                ErrorCode.TOO_MANY_REACTIONS, f"a message takes at most {limit} different reactions"
            )
        if sum(1 for _r, nick_key, _e in present if nick_key == key) >= self.config.max_reactions_per_user:
            limit = self.config.max_reactions_per_user
            raise Refused(ErrorCode.TOO_MANY_REACTIONS, f"you may put at most {limit} reactions on a message")
        ts = self._ts()
        actor = client.nick or ""
        event_id = self.store.add_event(target, kind="reacted", actor=actor, ts=ts, text=request.reaction)
        self.store.add_reaction(target.id, request.reaction, actor, event_id)
        room_name, to = self._where(client, target, room)
        reacted = Reacted(
            id=event_id,
            message_id=target.id,
            nick=actor,
            reaction=request.reaction,
            ts=ts,
            room=room_name,
            to=to,
        )
        self._deliver(client, target, room, [(event_id, reacted)], ts, request.ref)

    def _unreact(self, client: Client, target: Target, room: Room | None, request: object) -> None:
        assert isinstance(request, Unreact)
        self._not_muted(client, room)
        key = client.key or ""
        if not any(r == request.reaction and k == key for r, k, _e in self.store.reactions(target.id)):
            raise Refused(ErrorCode.NO_SUCH_REACTION, f"you have not reacted {request.reaction} to it")
        ts = self._ts()
        actor = client.nick or ""
        event_id = self.store.add_event(target, kind="unreacted", actor=actor, ts=ts, text=request.reaction)
        self.store.remove_reaction(target.id, request.reaction, key)
        room_name, to = self._where(client, target, room)
        unreacted = Unreacted(
            id=event_id,
            message_id=target.id,
            nick=actor,
            reaction=request.reaction,
            ts=ts,
            room=room_name,
            to=to,
        )
        self._deliver(client, target, room, [(event_id, unreacted)], ts, request.ref)

    # -- Delivery (after the commit, with the batch) -------------------------------------------------------

    @staticmethod
    def _where(client: Client, target: Target, room: Room | None) -> tuple[str | None, str | None]:
        """The event's conversation: its room's name, or the other end of the direct conversation as seen
        from the client (the `to` of a `told`)."""
        if room is not None:
            return room.name, None
        if client.key == target.sender_key:
            return None, target.recipient or target.sender
        return None, target.sender

    def _deliver(
        self,
        client: Client,
        target: Target,
        room: Room | None,
        frames: list[tuple[int, Message]],
        ts: int,
        ref: int | None,
    ) -> None:
        """Queue the event frames for everyone in the conversation (the client included), then the client's
        `ack` with the id of the last stored entry; all of it goes out after the commit."""
        others: tuple[Client, ...] = ()
        if room is None:
            other_key = target.recipient_key if client.key == target.sender_key else target.sender_key
            others = direct_recipients(client, self.hub.nicks.get(other_key or ""))
        last = len(frames) - 1
        for index, (entry_id, frame) in enumerate(frames):
            data = encode(frame)
            # A failed commit refuses the request once: on its ack, or without a ref on its last frame.
            answers = ref is None and index == last
            self._messages.hold(client, data, ref, relay=data, room=room, recipients=others, answers=answers)
            if room is not None:
                room.last_id = entry_id
        if ref is not None:
            self._messages.hold(client, encode(Ack(id=frames[last][0], ts=ts, ref=ref)), ref)
