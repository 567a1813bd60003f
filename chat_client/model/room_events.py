"""`RoomEvents`: how events about rooms and people change the chat model.

Joins, leaves, quits, nick changes, topics, away marks, room states and lists, moderation and ban lists,
registrations: each handler updates the members and modes of the buffers it concerns and adds the notice
lines that say what happened. A layer of `ChatModel` (chat_client.model.chat); the buffers are `ModelState`'s.
"""

from __future__ import annotations

from chat_client.model.buffers import SERVER_KEY, Changes, LineKind, peer_key, room_key
from chat_client.model.moderation import REMOVALS, describe, describe_ban
from chat_client.model.state import ModelState
from shared import (
    AwayChanged,
    BanList,
    Joined,
    Left,
    Member,
    Moderated,
    NickChanged,
    Registration,
    RoomList,
    RoomState,
    SignedOff,
    TopicChanged,
    fold,
)


class RoomEvents(ModelState):
    """The handlers of room and people events; see the module docstring."""

    def _on_joined(self, event: Joined, changes: Changes) -> None:
        buffer = self.room(event.room)
        buffer.members[fold(event.nick)] = Member(nick=event.nick, op=event.op)
        buffer.colours.add(event.nick)
        changes.members.add(buffer.key)
        if self._is_me(event.nick):
            was_joined, buffer.joined = buffer.joined, True
            changes.buffers = True
            if buffer.key in self._switch_on_join or self.current == SERVER_KEY:
                self._switch_on_join.discard(buffer.key)
                self.switch(buffer.key)
            if not was_joined:
                self._line(changes, buffer.key, LineKind.NOTICE, f"you joined {event.room}", count=False)
                if buffer.oldest_id is None and buffer.lines:
                    # The history the server sends next belongs before this line (see _history_lines).
                    buffer.backfill_anchor = buffer.lines[-1]
            return
        self._line(
            changes, buffer.key, LineKind.NOTICE, f"{event.nick} joined", ts=event.ts / 1000, count=False
        )

    def _on_left(self, event: Left, changes: Changes) -> None:
        key = room_key(event.room)
        buffer = self.buffers.get(key)
        if buffer is None:
            return
        reason = f" ({event.reason})" if event.reason else ""
        if self._is_me(event.nick):
            self.close_buffer(key)
            changes.buffers = True
            text = f"you left {event.room}{reason}"
            if (key, fold(event.nick)) in self._removed:
                # Put out by an operator: say so where the user is looking, not only in the server buffer.
                self._removed.discard((key, fold(event.nick)))
                self._line(changes, self.current, LineKind.ERROR, text, count=False)
                changes.alerts.append(text)
                return
            self._line(changes, SERVER_KEY, LineKind.NOTICE, text, count=False)
            return
        buffer.members.pop(fold(event.nick), None)
        buffer.colours.remove(event.nick)
        changes.members.add(key)
        if (key, fold(event.nick)) in self._removed:
            self._removed.discard((key, fold(event.nick)))
            return  # the kick or ban said it already
        self._line(
            changes, key, LineKind.NOTICE, f"{event.nick} left{reason}", ts=event.ts / 1000, count=False
        )

    def _on_signed_off(self, event: SignedOff, changes: Changes) -> None:
        reason = f" ({event.reason})" if event.reason else ""
        for buffer in list(self.buffers.values()):
            if buffer.members.pop(fold(event.nick), None) is not None:
                buffer.colours.remove(event.nick)
                changes.members.add(buffer.key)
                text = f"{event.nick} quit{reason}"
                self._line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)

    def _on_nick_changed(self, event: NickChanged, changes: Changes) -> None:
        if self._is_me(event.old):
            self._set_nick(event.new)
            changes.status = True
            self._line(changes, SERVER_KEY, LineKind.NOTICE, f"you are now known as {event.new}", count=False)
        text = f"{event.old} is now known as {event.new}"
        for buffer in list(self.buffers.values()):
            member = buffer.members.pop(fold(event.old), None)
            if member is not None:
                buffer.members[fold(event.new)] = Member(nick=event.new, away=member.away, op=member.op)
                buffer.colours.rename(event.old, event.new)
                changes.members.add(buffer.key)
                self._line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)
        old_key = peer_key(event.old)
        if old_key in self.buffers and fold(event.old) != fold(event.new):
            conversation = self.buffers.pop(old_key)
            conversation.key, conversation.name = peer_key(event.new), event.new
            self.buffers[conversation.key] = conversation
            if self.current == old_key:
                self.current = conversation.key
            changes.buffers = True
            self._line(changes, conversation.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)

    def _on_topic(self, event: TopicChanged, changes: Changes) -> None:
        buffer = self.room(event.room)
        buffer.topic = event.topic
        changes.topic.add(buffer.key)
        text = (
            f"{event.nick} set the topic: {event.topic}" if event.topic else f"{event.nick} cleared the topic"
        )
        self._line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)

    def _on_away(self, event: AwayChanged, changes: Changes) -> None:
        for buffer in self.buffers.values():
            key = fold(event.nick)
            if key in buffer.members:
                member = buffer.members[key]
                buffer.members[key] = Member(nick=member.nick, away=event.message, op=member.op)
                changes.members.add(buffer.key)
        if self._is_me(event.nick):
            self.away = event.message
            changes.status = True
            text = f"you are away: {event.message}" if event.message else "you are back"
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_room_state(self, event: RoomState, changes: Changes) -> None:
        buffer = self.room(event.room)
        buffer.topic = event.topic
        buffer.members = {fold(m.nick): m for m in event.members}
        buffer.colours.reset([m.nick for m in event.members])
        modes = {"topic_lock": event.topic_lock, "invite_only": event.invite_only, "keyed": event.keyed}
        buffer.modes = {name for name, on in modes.items() if on}
        buffer.key_secret = event.key
        changes.members.add(buffer.key)
        changes.topic.add(buffer.key)
        if buffer.key in self._listing_members:
            self._listing_members.discard(buffer.key)
            members = sorted(event.members, key=lambda m: (fold(m.nick), m.nick))  # /who lists them sorted
            names = ", ".join(("@" if m.op else "") + m.nick + (" (away)" if m.away else "") for m in members)
            text = f"in {event.room} ({len(members)}): {names}"
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_moderated(self, event: Moderated, changes: Changes) -> None:
        key = room_key(event.room)
        buffer = self.buffers.get(key)
        target = fold(event.target or "")
        if (
            event.action == "invite"
            and self._is_me(event.target or "")
            and (buffer is None or not buffer.joined)
        ):
            text = f"{event.nick} invited you to {event.room}: /join {event.room}"
            self._line(
                changes, self.current, LineKind.NOTICE, text, nick=event.nick, ts=event.ts / 1000, direct=True
            )
            return
        if buffer is None:
            return
        member = buffer.members.get(target)
        if event.action in ("op", "deop") and member is not None:
            buffer.members[target] = Member(nick=member.nick, away=member.away, op=event.action == "op")
            changes.members.add(key)
        if event.action in REMOVALS and member is not None:
            self._removed.add((key, target))
        mode = _MODE_ACTIONS.get(event.action)
        if mode is not None:
            name, on = mode
            if on:
                buffer.modes.add(name)
            else:
                buffer.modes.discard(name)
            changes.topic.add(key)
        self._line(
            changes,
            key,
            LineKind.NOTICE,
            describe(event),
            ts=event.ts / 1000,
            message_id=event.id,
            count=False,
        )

    def _on_ban_list(self, event: BanList, changes: Changes) -> None:
        lines = [f"bans in {event.room}:" if event.bans else f"no bans in {event.room}"]
        lines += ["  " + describe_ban(ban) for ban in event.bans]
        if event.more:
            lines.append("  (more than fit in one reply)")
        for text in lines:
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_room_list(self, event: RoomList, changes: Changes) -> None:
        if not event.rooms:
            self._line(changes, self.current, LineKind.NOTICE, "no rooms on this server", count=False)
            return
        header = f"rooms on this server ({len(event.rooms)}), as name (members): topic"
        self._line(changes, self.current, LineKind.NOTICE, header, count=False)
        for summary in event.rooms:
            topic = f": {summary.topic}" if summary.topic else ""
            text = f"  {summary.name} ({summary.members}){topic}"
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_registration(self, event: Registration, changes: Changes) -> None:
        if event.registered:
            text = f"{event.nick} is registered: nobody can use it without your password"
        else:
            text = f"{event.nick} is no longer registered: anyone may use it when you are away"
        self._line(changes, self.current, LineKind.NOTICE, text, count=False)


#: Moderation actions that change a room's modes: action -> (mode, on).
_MODE_ACTIONS = {
    "lock_topic": ("topic_lock", True),
    "unlock_topic": ("topic_lock", False),
    "invite_only": ("invite_only", True),
    "open": ("invite_only", False),
    "set_key": ("keyed", True),
    "clear_key": ("keyed", False),
}
