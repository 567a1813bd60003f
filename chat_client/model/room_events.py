"""How events about rooms and people change the chat model.

Joins, leaves, quits, nick changes, topics, away marks, room states and lists, moderation and ban lists,
registrations: each handler updates the members and modes of the buffers it concerns and adds the notice
lines that say what happened. Plain functions over `(model, event, changes)`, called by `ChatModel.apply`
(chat_client.model.chat).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chat_client.model.buffers import SERVER_KEY, Changes, LineKind, peer_key, room_key
from chat_client.model.moderation import REMOVALS, describe, describe_ban
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

if TYPE_CHECKING:  # chat imports this module: ChatModel is only an annotation here
    from chat_client.model.chat import ChatModel


def on_joined(model: ChatModel, event: Joined, changes: Changes) -> None:
    buffer = model.room(event.room)
    buffer.members[fold(event.nick)] = Member(nick=event.nick, op=event.op)
    buffer.colours.add(event.nick)
    changes.members.add(buffer.key)
    if model.is_me(event.nick):
        was_joined, buffer.joined = buffer.joined, True
        changes.buffers = True
        if buffer.key in model.switch_on_join or model.current == SERVER_KEY:
            model.switch_on_join.discard(buffer.key)
            model.switch(buffer.key)
        if not was_joined:
            model.add_line(changes, buffer.key, LineKind.NOTICE, f"you joined {event.room}", count=False)
            if buffer.oldest_id is None and buffer.lines:
                # The history the server sends next belongs before this line
                # (see _history_lines in chat_client.model.chat).
                buffer.backfill_anchor = buffer.lines[-1]
        return
    model.add_line(
        changes, buffer.key, LineKind.NOTICE, f"{event.nick} joined", ts=event.ts / 1000, count=False
    )


def on_left(model: ChatModel, event: Left, changes: Changes) -> None:
    key = room_key(event.room)
    buffer = model.buffers.get(key)
    if buffer is None:
        return
    reason = f" ({event.reason})" if event.reason else ""
    if model.is_me(event.nick):
        model.close_buffer(key)
        changes.buffers = True
        text = f"you left {event.room}{reason}"
        if (key, fold(event.nick)) in model.removed:
            # Put out by an operator: say so where the user is looking, not only in the server buffer.
            model.removed.discard((key, fold(event.nick)))
            model.add_line(changes, model.current, LineKind.ERROR, text, count=False)
            changes.alerts.append(text)
            return
        model.add_line(changes, SERVER_KEY, LineKind.NOTICE, text, count=False)
        return
    buffer.members.pop(fold(event.nick), None)
    buffer.colours.remove(event.nick)
    changes.members.add(key)
    if (key, fold(event.nick)) in model.removed:
        model.removed.discard((key, fold(event.nick)))
        return  # the kick or ban said it already
    model.add_line(
        changes, key, LineKind.NOTICE, f"{event.nick} left{reason}", ts=event.ts / 1000, count=False
    )


def on_signed_off(model: ChatModel, event: SignedOff, changes: Changes) -> None:
    reason = f" ({event.reason})" if event.reason else ""
    for buffer in list(model.buffers.values()):
        if buffer.members.pop(fold(event.nick), None) is not None:
            buffer.colours.remove(event.nick)
            changes.members.add(buffer.key)
            text = f"{event.nick} quit{reason}"
            model.add_line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)


def on_nick_changed(model: ChatModel, event: NickChanged, changes: Changes) -> None:
    if model.is_me(event.old):
        model.set_nick(event.new)
        changes.status = True
        model.add_line(changes, SERVER_KEY, LineKind.NOTICE, f"you are now known as {event.new}", count=False)
    text = f"{event.old} is now known as {event.new}"
    for buffer in list(model.buffers.values()):
        member = buffer.members.pop(fold(event.old), None)
        if member is not None:
            buffer.members[fold(event.new)] = Member(nick=event.new, away=member.away, op=member.op)
            buffer.colours.rename(event.old, event.new)
            changes.members.add(buffer.key)
            model.add_line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)
    old_key = peer_key(event.old)
    if old_key in model.buffers and fold(event.old) != fold(event.new):
        conversation = model.buffers.pop(old_key)
        conversation.key, conversation.name = peer_key(event.new), event.new
        model.buffers[conversation.key] = conversation
        if model.current == old_key:
            model.current = conversation.key
        changes.buffers = True
        model.add_line(changes, conversation.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)


def on_topic(model: ChatModel, event: TopicChanged, changes: Changes) -> None:
    buffer = model.room(event.room)
    buffer.topic = event.topic
    changes.topic.add(buffer.key)
    text = f"{event.nick} set the topic: {event.topic}" if event.topic else f"{event.nick} cleared the topic"
    model.add_line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)


def on_away(model: ChatModel, event: AwayChanged, changes: Changes) -> None:
    for buffer in model.buffers.values():
        key = fold(event.nick)
        if key in buffer.members:
            member = buffer.members[key]
            buffer.members[key] = Member(nick=member.nick, away=event.message, op=member.op)
            changes.members.add(buffer.key)
    if model.is_me(event.nick):
        model.away = event.message
        changes.status = True
        text = f"you are away: {event.message}" if event.message else "you are back"
        model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)


def on_room_state(model: ChatModel, event: RoomState, changes: Changes) -> None:
    buffer = model.room(event.room)
    buffer.topic = event.topic
    buffer.members = {fold(m.nick): m for m in event.members}
    buffer.colours.reset([m.nick for m in event.members])
    modes = {"topic_lock": event.topic_lock, "invite_only": event.invite_only, "keyed": event.keyed}
    buffer.modes = {name for name, on in modes.items() if on}
    buffer.key_secret = event.key
    changes.members.add(buffer.key)
    changes.topic.add(buffer.key)
    if buffer.key in model.listing_members:
        model.listing_members.discard(buffer.key)
        members = sorted(event.members, key=lambda m: (fold(m.nick), m.nick))  # /who lists them sorted
        names = ", ".join(("@" if m.op else "") + m.nick + (" (away)" if m.away else "") for m in members)
        text = f"in {event.room} ({len(members)}): {names}"
        model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)


def on_moderated(model: ChatModel, event: Moderated, changes: Changes) -> None:
    key = room_key(event.room)
    buffer = model.buffers.get(key)
    target = fold(event.target or "")
    if event.action == "invite" and model.is_me(event.target or "") and (buffer is None or not buffer.joined):
        text = f"{event.nick} invited you to {event.room}: /join {event.room}"
        model.add_line(
            changes, model.current, LineKind.NOTICE, text, nick=event.nick, ts=event.ts / 1000, direct=True
        )
        return
    if buffer is None:
        return
    member = buffer.members.get(target)
    if event.action in ("op", "deop") and member is not None:
        buffer.members[target] = Member(nick=member.nick, away=member.away, op=event.action == "op")
        changes.members.add(key)
    if event.action in REMOVALS and member is not None:
        model.removed.add((key, target))
    mode = _MODE_ACTIONS.get(event.action)
    if mode is not None:
        name, on = mode
        if on:
            buffer.modes.add(name)
        else:
            buffer.modes.discard(name)
        changes.topic.add(key)
    model.add_line(
        changes,
        key,
        LineKind.NOTICE,
        describe(event),
        ts=event.ts / 1000,
        message_id=event.id,
        count=False,
    )


def on_ban_list(model: ChatModel, event: BanList, changes: Changes) -> None:
    lines = [f"bans in {event.room}:" if event.bans else f"no bans in {event.room}"]
    lines += ["  " + describe_ban(ban) for ban in event.bans]
    if event.more:
        lines.append("  (more than fit in one reply)")
    for text in lines:
        model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)


def on_room_list(model: ChatModel, event: RoomList, changes: Changes) -> None:
    if not event.rooms:
        model.add_line(changes, model.current, LineKind.NOTICE, "no rooms on this server", count=False)
        return
    header = f"rooms on this server ({len(event.rooms)}), as name (members): topic"
    model.add_line(changes, model.current, LineKind.NOTICE, header, count=False)
    for summary in event.rooms:
        topic = f": {summary.topic}" if summary.topic else ""
        text = f"  {summary.name} ({summary.members}){topic}"
        model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)


def on_registration(model: ChatModel, event: Registration, changes: Changes) -> None:
    if event.registered:
        text = f"{event.nick} is registered: nobody can use it without your password"
    else:
        text = f"{event.nick} is no longer registered: anyone may use it when you are away"
    model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)


#: Moderation actions that change a room's modes: action -> (mode, on).
_MODE_ACTIONS = {
    "lock_topic": ("topic_lock", True),
    "unlock_topic": ("topic_lock", False),
    "invite_only": ("invite_only", True),
    "open": ("invite_only", False),
    "set_key": ("keyed", True),
    "clear_key": ("keyed", False),
}
