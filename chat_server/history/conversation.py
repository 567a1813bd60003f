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

Each request goes through the same three steps, and the steps are functions of this module that cluster mode
calls too (chat_server.cluster.conversation, where the change travels through the log between step 2 and 3):

1. *which message*: `Conversations.visible` (the requester can see it, and it is not deleted);
2. *the rule*: `check_edit`, `check_delete`, `check_react`, `check_unreact` (plain functions of the stored
   state and the request: they raise `Refused`);
3. *the change*: `store_edit`, `store_delete`, `store_reaction`, `store_deletion_entry` write it into the
   open transaction and return the frame that announces it.
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
from shared.text import fold

from .messaging import Messages, direct_recipients
from .moderation import Moderation

log = logging.getLogger(__name__)

#: Where an event belongs: its room's name, or (None and) the other end of the direct conversation as seen
#: from whoever made the change (the `to` of a `told`).
Where = tuple[str | None, str | None]
#: A stored entry's frame: an event, or the `moderated` entry of an operator's deletion.
Entry = Edited | Deleted | Reacted | Unreacted | Moderated


class Refused(Exception):
    """A conversation request is refused: `code` and `message` go back in an `error` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- The rules (both modes) --------------------------------------------------------------------------------


def check_live(target: Target) -> None:
    """Refuse a change of a deleted message."""
    if target.deleted is not None:
        raise Refused(ErrorCode.NO_SUCH_MESSAGE, f"message {target.id} was deleted")


def check_edit(target: Target, actor_key: str, muted: str | None, ts: int, window: float) -> None:
    """Only its author edits a message, not while muted in its room, within `window` s (0: always)."""
    if target.sender_key != actor_key:
        raise Refused(ErrorCode.FORBIDDEN, "only its author may edit a message")
    if muted is not None:
        raise Refused(ErrorCode.MUTED, muted)
    if window and ts - target.ts > window * 1000:
        raise Refused(ErrorCode.EDIT_WINDOW_CLOSED, f"a message may be edited for {window:g} s after sending")


def check_delete(target: Target, actor_key: str, operator: bool) -> bool:
    """Its author, or an `operator` of its room, deletes a message; True if it is an operator's deletion
    of someone else's message (a moderation action)."""
    if target.sender_key == actor_key:
        return False
    if not operator:
        raise Refused(ErrorCode.FORBIDDEN, "only its author or an operator of its room may delete a message")
    return True


def check_react(
    present: list[tuple[str, str, int]],
    actor_key: str,
    reaction: str,
    muted: str | None,
    limits: tuple[int, int],
) -> int | None:
    """May `actor_key` add `reaction` to a message that has the reactions `present` (`HistoryStore.
    reactions`)? `limits`: (`max_reactions_per_message`, `max_reactions_per_user`). Returns the id of the
    event that put it there already (nothing new to store), else None."""
    if muted is not None:
        raise Refused(ErrorCode.MUTED, muted)
    for existing, nick_key, event_id in present:
        if existing == reaction and nick_key == actor_key:
            return event_id
    per_message, per_user = limits
    distinct = {existing for existing, _key, _event in present}
    if reaction not in distinct and len(distinct) >= per_message:
        raise Refused(
            ErrorCode.TOO_MANY_REACTIONS, f"a message takes at most {per_message} different reactions"
        )
    if sum(1 for _r, nick_key, _e in present if nick_key == actor_key) >= per_user:
        raise Refused(ErrorCode.TOO_MANY_REACTIONS, f"you may put at most {per_user} reactions on a message")
    return None


def check_unreact(
    present: list[tuple[str, str, int]], actor_key: str, reaction: str, muted: str | None
) -> None:
    """One takes off only a reaction of one's own (not while muted in the room)."""
    if muted is not None:
        raise Refused(ErrorCode.MUTED, muted)
    if not any(existing == reaction and key == actor_key for existing, key, _e in present):
        raise Refused(ErrorCode.NO_SUCH_REACTION, f"you have not reacted {reaction} to it")


# -- The changes (both modes; `event_id`: the cluster's stream sequence, else None for the next id) --------


def where(target: Target, actor_key: str, room: Room | None) -> Where:
    """The conversation of an event `actor_key` makes about `target` (`room`: the target's room)."""
    if room is not None:
        return room.name, None
    if actor_key == target.sender_key:
        return None, target.recipient or target.sender
    return None, target.sender


def store_edit(
    store: HistoryStore,
    target: Target,
    actor: str,
    text: str,
    ts: int,
    at: Where,
    *,
    keep: bool,
    event_id: int | None = None,
) -> Edited:
    """Replace `target`'s text and store the `edited` event (`keep`: the old text goes to the revisions)."""
    store.edit_message(target, text, ts, keep=keep)
    event_id = store.add_event(target, kind="edited", actor=actor, ts=ts, event_id=event_id)
    return Edited(id=event_id, message_id=target.id, nick=actor, text=text, ts=ts, room=at[0], to=at[1])


def store_delete(
    store: HistoryStore,
    target: Target,
    actor: str,
    ts: int,
    at: Where,
    *,
    keep: bool,
    event_id: int | None = None,
) -> Deleted:
    """Make `target` a tombstone and store the `deleted` event."""
    store.delete_message(target, ts, keep=keep)
    event_id = store.add_event(target, kind="deleted", actor=actor, ts=ts, event_id=event_id)
    return Deleted(id=event_id, message_id=target.id, nick=actor, ts=ts, room=at[0], to=at[1])


def store_deletion_entry(
    store: HistoryStore,
    room: Room,
    actor: str,
    author: str,
    reason: str | None,
    ts: int,
    entry_id: int | None = None,
) -> Moderated:
    """Store an operator's deletion of `author`'s message as the room's `moderated` entry (action delete)."""
    entry_id = store.add_moderation(
        room_key=room.key,
        room=room.name,
        actor=actor,
        action="delete",
        target=author,
        reason=reason,
        until=None,
        ts=ts,
        entry_id=entry_id,
    )
    return Moderated(
        id=entry_id, room=room.name, nick=actor, action="delete", ts=ts, target=author, reason=reason
    )


def store_reaction(
    store: HistoryStore,
    target: Target,
    actor: str,
    reaction: str,
    ts: int,
    at: Where,
    *,
    added: bool,
    event_id: int | None = None,
) -> Reacted | Unreacted:
    """Put `actor`'s `reaction` on `target` (`added`) or take it off, and store the event that says so."""
    kind = "reacted" if added else "unreacted"
    event_id = store.add_event(target, kind=kind, actor=actor, ts=ts, text=reaction, event_id=event_id)
    if added:
        store.add_reaction(target.id, reaction, actor, event_id)
    else:
        store.remove_reaction(target.id, reaction, fold(actor))
    frame = Reacted if added else Unreacted
    return frame(
        id=event_id, message_id=target.id, nick=actor, reaction=reaction, ts=ts, room=at[0], to=at[1]
    )


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
        try:
            target, room = self.visible(client, request.id)
            ts = self._ts()
            check_edit(target, client.key or "", self.muted(client, room), ts, self.config.edit_window)
            at = where(target, client.key or "", room)
            edited = store_edit(
                self.store, target, client.nick or "", request.text, ts, at, keep=self.config.keep_edits
            )
            self._deliver(client, target, room, [edited], ts, request.ref)
        except Refused as refused:
            client.send(error_frame(refused.code, refused.message, request.ref))
        except HistoryError as error:
            self._messages.failed_write(client, error, request.ref)

    def delete(self, client: Client, request: Delete) -> None:
        """Delete a message: one's own, or as an operator of its room anyone's there."""
        try:
            target, room = self.visible(client, request.id)
            operator = room is not None and self._moderation.is_operator(client, room.key)
            moderated = check_delete(target, client.key or "", operator)
            ts = self._ts()
            actor = client.nick or ""
            at = where(target, client.key or "", room)
            frames: list[Entry] = [
                store_delete(self.store, target, actor, ts, at, keep=self.config.keep_edits)
            ]
            if moderated and room is not None:
                # An operator's deletion is a moderation action: stored and announced as such.
                frames.append(
                    store_deletion_entry(self.store, room, actor, target.sender, request.reason, ts)
                )
                log.info(
                    "conn=%d event=moderation room=%r actions=[('delete', %r)]",
                    client.id,
                    room.name,
                    target.sender,
                )
            self._deliver(client, target, room, frames, ts, request.ref)
        except Refused as refused:
            client.send(error_frame(refused.code, refused.message, request.ref))
        except HistoryError as error:
            self._messages.failed_write(client, error, request.ref)

    def react(self, client: Client, request: React) -> None:
        """Add a reaction to a message."""
        try:
            target, room = self.visible(client, request.id)
            present = self.store.reactions(target.id)
            muted = self.muted(client, room)
            already = check_react(present, client.key or "", request.reaction, muted, self.reaction_limits())
            if already is not None:
                # Already there: nothing new is stored; the answer names the event that put it there.
                if request.ref is not None:
                    ack = Ack(id=already, ts=self.store.event_ts(already), duplicate=True, ref=request.ref)
                    self._messages.hold(client, encode(ack), request.ref)
                return
            self._change_reaction(client, target, room, request.reaction, request.ref, added=True)
        except Refused as refused:
            client.send(error_frame(refused.code, refused.message, request.ref))
        except HistoryError as error:
            self._messages.failed_write(client, error, request.ref)

    def unreact(self, client: Client, request: Unreact) -> None:
        """Take one's reaction off a message."""
        try:
            target, room = self.visible(client, request.id)
            present = self.store.reactions(target.id)
            check_unreact(present, client.key or "", request.reaction, self.muted(client, room))
            self._change_reaction(client, target, room, request.reaction, request.ref, added=False)
        except Refused as refused:
            client.send(error_frame(refused.code, refused.message, request.ref))
        except HistoryError as error:
            self._messages.failed_write(client, error, request.ref)

    # -- Step 1 and the rules' inputs (cluster mode asks them too) ----------------------------------------

    def visible(self, client: Client, message_id: int) -> tuple[Target, Room | None]:
        """The chat message `message_id` if the client may see it (a member of its room, or one end of its
        direct conversation), not deleted, and its room; else `no_such_message`."""
        target = self.store.target(message_id)
        room: Room | None = None
        if target is not None and target.chat:
            if target.room_key is not None:
                room = client.rooms.get(target.room_key)
                visible = room is not None
            else:
                visible = target.participant(client.key or "")
            if visible:
                check_live(target)
                return target, room
        raise Refused(ErrorCode.NO_SUCH_MESSAGE, f"no message {message_id} that you can see")

    def muted(self, client: Client, room: Room | None) -> str | None:
        """Why `client` may not change things in `room` (a mute in force), or None (also in a DM)."""
        return None if room is None else self._moderation.silenced(client, room)

    def reaction_limits(self) -> tuple[int, int]:
        """(`max_reactions_per_message`, `max_reactions_per_user`) of this server's config."""
        return self.config.max_reactions_per_message, self.config.max_reactions_per_user

    # -- Delivery (after the commit, with the batch) -------------------------------------------------------

    def _change_reaction(
        self,
        client: Client,
        target: Target,
        room: Room | None,
        reaction: str,
        ref: int | None,
        *,
        added: bool,
    ) -> None:
        ts = self._ts()
        at = where(target, client.key or "", room)
        frame = store_reaction(self.store, target, client.nick or "", reaction, ts, at, added=added)
        self._deliver(client, target, room, [frame], ts, ref)

    def _deliver(
        self,
        client: Client,
        target: Target,
        room: Room | None,
        frames: list[Entry],
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
        for index, frame in enumerate(frames):
            data = encode(frame)
            # A failed commit refuses the request once: on its ack, or without a ref on its last frame.
            answers = ref is None and index == last
            self._messages.hold(client, data, ref, relay=data, room=room, recipients=others, answers=answers)
            if room is not None:
                room.last_id = frame.id
        if ref is not None:
            self._messages.hold(client, encode(Ack(id=frames[last].id, ts=ts, ref=ref)), ref)
