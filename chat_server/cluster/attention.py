"""A registered nick's read markers, notification levels and keywords in cluster mode: records of the log.

A registered nick keeps its attention in the history database (chat_server.history.attention), and in
cluster mode every server has its own copy of that database. So a change is a record of the log, as a
message is (chat_server.cluster.messaging): the server the request reached checks it as a single server does
(`Attention.check_mark`, `check_level`, `check_keywords`) and publishes it; every server applies it in
stream order into its copy (`DatabaseStore.move_for`, `set_level_for`, `set_keywords_for`, in the open
transaction) and tells the nick's sessions it has, after the commit: the requester gets its answer (with its
`ref`), the others the same frame without one. Then a client that fails over to another server, or a
session of the nick on another server, finds the markers and settings where it left them.

An unregistered nick's attention lives in its one session (`SessionStore`) and is never shared: its
requests take the single server's path unchanged.

Re-checked when applied: a marker only moves forward (the database's `WHERE excluded.id > id`), and a level
past `notify_levels_per_nick` is refused (two servers may each accept the last free slot; the log's order
decides which one keeps it, on every server alike).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chat_server.history.attention import Attention
from chat_server.hub import Client, Hub
from chat_server.replies import error_frame
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import MarkRead, NotifySettings, ReadMarker, SetKeywords, SetNotify

from .messaging import Awaiting, ClusterMessages


class ClusterAttention:
    """Routes a registered nick's `mark_read`, `notify` and `keywords` through the log (history thread)."""

    def __init__(self, attention: Attention, messages: ClusterMessages, hub: Hub) -> None:
        self.attention = attention
        self.messages = messages
        self.hub = hub
        messages.applies("read_marker", self._apply_marker)
        messages.applies("notify", self._apply_level)
        messages.applies("keywords", self._apply_keywords)

    # -- The routes (the server the request reached) -------------------------------------------------------

    def mark_read(self, client: Client, request: MarkRead) -> None:
        if client.account is None:
            self.attention.mark_read(client, request)
            return
        checked = self.attention.check_mark(client, request)
        if checked is None:
            return
        conversation, name = checked
        record = {
            "k": "read_marker",
            "account": client.account,
            "conversation": conversation,
            "name": name,
            "room": request.room is not None,
            "id": request.id,
        }
        self.messages.publish(record, Awaiting(client, request.ref))

    def notify(self, client: Client, request: SetNotify) -> None:
        if client.account is None:
            self.attention.notify(client, request)
            return
        checked = self.attention.check_level(client, request)
        if checked is None:
            return
        conversation, name, level = checked
        record = {
            "k": "notify",
            "account": client.account,
            "conversation": conversation,
            "name": name,
            "level": level,
        }
        self.messages.publish(record, Awaiting(client, request.ref))

    def keywords(self, client: Client, request: SetKeywords) -> None:
        if client.account is None:
            self.attention.keywords(client, request)
            return
        words = self.attention.check_keywords(client, request)
        if words is None:
            return
        record = {"k": "keywords", "account": client.account, "words": list(words)}
        self.messages.publish(record, Awaiting(client, request.ref))

    # -- Applying the log (every server) -------------------------------------------------------------------

    def _apply_marker(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        database = self.attention.in_database
        last_read = database.move_for(record["account"], record["conversation"], record["name"], record["id"])
        if record["room"]:
            answer = ReadMarker(room=record["name"], id=last_read)
        else:
            answer = ReadMarker(peer=record["name"], id=last_read)
        self._tell(record["account"], answer, waiting)

    def _apply_level(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        database = self.attention.in_database
        account, conversation, level = record["account"], record["conversation"], record["level"]
        refusal = self.attention.over_levels(database.levels_of(account), conversation, level)
        if refusal is not None:
            if waiting is not None:
                waiting.client.send(error_frame(ErrorCode.TOO_LONG, refusal, waiting.ref))
            return
        database.set_level_for(account, conversation, record["name"], level)
        self._tell(account, self._settings(account), waiting)

    def _apply_keywords(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        account = record["account"]
        self.attention.in_database.set_keywords_for(account, tuple(record["words"]))
        self._tell(account, self._settings(account), waiting)

    def _settings(self, account: str) -> NotifySettings:
        database = self.attention.in_database
        return NotifySettings(
            levels=tuple(database.levels_of(account).values()), keywords=database.keywords_of(account)
        )

    def _tell(self, account: str, answer: ReadMarker | NotifySettings, waiting: Awaiting | None) -> None:
        """After the commit: the requester (if it is here) gets `answer` with its `ref`, the nick's other
        sessions on this server the same without one."""
        holder = self.hub.nicks.get(account)
        sessions = tuple(holder.sessions) if holder is not None and holder.account == account else ()
        requester = waiting.client if waiting is not None else None
        others = tuple(session for session in sessions if session is not requester)
        relay = encode(answer) if others else None
        if waiting is not None:
            reply = encode(dataclasses.replace(answer, ref=waiting.ref))
            self.messages.after_commit(waiting.client, reply, waiting.ref, relay, others)
        elif relay is not None:
            self.messages.after_commit(None, b"", None, relay, others)
