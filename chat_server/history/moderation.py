"""Moderation: who may do what in a room (operators, server admins), and the join, speech and topic gates.

`Moderation` runs on the history thread only (asked by `chat_server.history.chat`, `chat_server.history.rooms`
and `chat_server.history.messaging`), so it reads the hub without the lock. The rules themselves live in
`chat_server.history.rules`; the operators' requests that change them in `chat_server.history.operators`.

Who is an operator of a room (docs/security.md, "Moderation"):

* a server admin: a nick listed in the config's `admins`, once its password was verified (`Client.account`);
* the connection that found the room empty with no stored operator (the room's creator), while connected;
* whoever an operator promotes with `op`: stored for a registered, verified nick, else for that connection.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub, Room
from chat_server.storage import HistoryError, HistoryStore
from shared.errors import ErrorCode
from shared.text import fold

from .rules import Restriction, RoomRules, RulesBook

log = logging.getLogger(__name__)


class Moderation:
    """Who may do what in a room, and the join, speech and topic gates (history thread only)."""

    def __init__(
        self,
        hub: Hub,
        store: HistoryStore,
        config: ServerConfig,
        clock: Callable[[], int],
    ) -> None:
        self.hub = hub
        self.store = store
        self.config = config
        self.clock = clock  # the chat's timestamps (ms), which never go backwards
        self.book = RulesBook(store, clock())
        self.admins = frozenset(fold(nick) for nick in config.admins)
        #: Makes a room's creator its operator (`entered`): stored at once here; in cluster mode the stored
        #: right goes through the log (chat_server.cluster.moderation).
        self.crown: Callable[[RoomRules, Client], None] = self._crown

    # -- Queries -------------------------------------------------------------------------------------------

    def is_admin(self, client: Client) -> bool:
        """True for a server admin whose registered nick's password was verified."""
        return client.account is not None and client.account in self.admins

    def is_operator(self, client: Client, room_key: str) -> bool:
        """True if `client` has operator rights in the room `room_key`."""
        if self.is_admin(client):
            return True
        rules = self.book.rooms.get(room_key)
        if rules is None:
            return False
        return client.id in rules.session_ops or (client.account is not None and client.account in rules.ops)

    def operator_test(self, room_key: str) -> Callable[[Client], bool]:
        """A fast `is_operator` for the members of one room (a `room_state` asks it for every member)."""
        rules = self.book.rooms.get(room_key)
        admins = self.admins
        if rules is None or not (rules.ops or rules.session_ops):
            if not admins:
                return _never
            return lambda client: client.account is not None and client.account in admins
        ops, session_ops = rules.ops, rules.session_ops
        return lambda client: (
            client.id in session_ops
            or (client.account is not None and (client.account in ops or client.account in admins))
        )

    def rules(self, room_key: str) -> RoomRules | None:
        """The rules of a room, if it has any."""
        return self.book.rooms.get(room_key)

    # -- Gates ---------------------------------------------------------------------------------------------

    def admission(
        self, client: Client, room_key: str, name: str, key: str | None
    ) -> tuple[ErrorCode, str] | None:
        """Why `client` may not join the room (code, message), or None if they may."""
        rules = self.book.rooms.get(room_key)
        if rules is None or self.is_admin(client):
            return None
        now = self.clock()
        operator = self.is_operator(client, room_key)
        ban = rules.bans.get(client.key or "")
        if ban is None and not operator:
            ban = rules.address_bans.get(client.peer)  # operators are exempt from address bans
        if ban is not None and ban.in_force(now):
            return ErrorCode.BANNED, f"you are banned from {name}{_ending(ban, now)}"
        if operator or self._invited(client, rules):
            return None
        if rules.invite_only:
            return ErrorCode.INVITE_ONLY, f"{name} is invite-only: an operator must /invite you"
        if rules.join_key is not None and not hmac.compare_digest(
            (key or "").encode(), rules.join_key.encode()
        ):
            wrong = "a key" if key is None else "the right key"
            return ErrorCode.BAD_KEY, f"{name} needs {wrong}: /join {name} KEY"
        return None

    def entered(self, client: Client, room: Room, was_empty: bool) -> None:
        """`client` joined `room`: the first into an empty room without stored operators becomes operator."""
        rules = self.book.get(room.key)
        if not was_empty or rules.ops:
            return
        self.crown(rules, client)

    def _crown(self, rules: RoomRules, client: Client) -> None:
        try:
            self.book.grant(rules, "op", client.id, client.account)
            self.store.commit()
        except HistoryError as error:
            self.failed(error)  # the session right stands; only the stored one is lost

    def silenced(self, client: Client, room: Room) -> str | None:
        """Why `client` may not speak in `room` (a mute in force), or None."""
        rules = self.book.rooms.get(room.key)
        if rules is None or not rules.mutes:
            return None
        mute = rules.mutes.get(client.key or "")
        now = self.clock()
        if mute is None or not mute.in_force(now):
            return None
        return f"you are muted in {room.name}{_ending(mute, now)}"

    def topic_locked(self, client: Client, room: Room) -> bool:
        """True if the room's topic is locked and `client` is not one of its operators."""
        rules = self.book.rooms.get(room.key)
        return rules is not None and rules.topic_lock and not self.is_operator(client, room.key)

    def closed(self, client: Client, room: Room) -> bool:
        """True if `room` has a key or is invite-only and `client` is not one of its operators."""
        rules = self.book.rooms.get(room.key)
        closed = rules is not None and (rules.invite_only or rules.join_key is not None)
        return closed and not self.is_operator(client, room.key)

    def left(self, room: Room) -> None:
        """Someone left `room`: if the hub forgot it (empty, nothing stored), its session rights end too.

        So a room that comes back is created anew (its next joiner is its operator), and rooms created and
        left in a loop leave nothing behind.
        """
        if room.key not in self.hub.rooms:
            self.book.room_gone(room.key)

    def forget(self, client: Client) -> None:
        """`client` disconnected: its session rights end."""
        self.book.forget_session(client.id)

    def moved(self, old: Client, new: Client) -> None:
        """`new` resumed `old`'s session (`resume_token`): the session rights move to it."""
        self.book.move_session(old.id, new.id)

    def failed(self, error: HistoryError) -> None:
        """Storing a rule failed: roll back, and reload the rules as they are stored."""
        self.store.rollback()
        self.book.reload()
        log.error("event=moderation_not_stored error=%s", error)

    def _invited(self, client: Client, rules: RoomRules) -> bool:
        return client.id in rules.session_invited or (
            client.account is not None and client.account in rules.invited
        )


def _never(_client: Client) -> bool:
    return False


def _ending(restriction: Restriction, now: int) -> str:
    """' for 5 more minutes (reason)' style tail of a ban or mute message."""
    tail = ""
    if restriction.until is not None:
        seconds = max(1, (restriction.until - now + 999) // 1000)
        tail += f" for {_duration(seconds)} more"
    if restriction.reason:
        tail += f" ({restriction.reason})"
    return tail


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
