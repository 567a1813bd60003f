"""The routing table: for each request type, the thread that handles it, the rate bucket it draws from, and
its handler. Every request the server answers is a row of `ROUTES`; nothing else decides where a request goes.

How a request travels (docs/walkthrough.md follows one `say`):

1. its reader thread decodes it and looks its type up here, once (`Connection._handle`,
   chat_server.reader.connection);
2. it spends the row's bucket (`Budget.spend`, chat_server.reader.connection): a request over the rate
   *waits* for its token (fakelag), except that the slow join and nick buckets refuse (`rate_limited`);
3. a `READER` row's handler runs there and then, on the reader thread, with the `Connection`; a `HISTORY`
   row's request is queued for the history thread (`HistoryThread.submit`, chat_server.history.thread),
   which calls the row's handler with the `Client` and the request. A history handler is a method of one of
   the history thread's parts (`Chat`, `Messages`, `Conversations`, `Rooms`, `Operators`, `Attention`):
   `bind_history` binds each row to its part once, at start, so a request costs one dictionary lookup on
   each thread.

Adding a request type: its message class (shared/messages/), one row here and its handler, one client
method, one command, the docs (docs/protocol.md).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chat_server.history.accounts import Enroll, Rename, Unenroll
from chat_server.history.attention import Attention
from chat_server.history.chat import Chat, Disconnect, Login
from chat_server.history.conversation import Conversations
from chat_server.history.fileoffers import Settle, StoreFile
from chat_server.history.messaging import Messages
from chat_server.history.operators import Operators
from chat_server.history.rooms import Rooms
from chat_server.reader import requests
from shared.messages import (
    Ban,
    CancelFile,
    ChangeNick,
    Delete,
    Deop,
    Edit,
    FetchHistory,
    FileChunk,
    GetFile,
    GetStats,
    Hello,
    Invite,
    Join,
    Kick,
    Leave,
    ListBans,
    ListRooms,
    MarkRead,
    Mute,
    OfferFile,
    Op,
    Ping,
    Pong,
    Quit,
    React,
    Register,
    Say,
    Search,
    SetAway,
    SetKeywords,
    SetMode,
    SetNotify,
    SetTopic,
    Tell,
    Typing,
    Unban,
    Unmute,
    Unreact,
    Unregister,
    Who,
)

if TYPE_CHECKING:
    from chat_server.hub import Client
    from chat_server.reader.connection import Connection


class Thread(enum.Enum):
    """Which thread runs a request's handler."""

    #: The connection's own reader thread: no shared state, or shared state read under its lock.
    READER = "reader"
    #: The one history thread: every change to the shared chat state, in one order.
    HISTORY = "history"


class Cost(enum.Enum):
    """Which of the connection's rate limits a request draws from (the routing table's third column; the
    limits are announced in `welcome.rates`)."""

    #: The connection's own life (`hello`, `ping`, `pong`, `quit`): never limited.
    FREE = "free"
    #: File transfer requests: bounded by the transfer window and the quotas instead; refusals count
    #: against `flood_refusals`.
    TRANSFER = "transfer"
    #: One request token (`rate_messages`, `rate_burst`); a request over it waits (fakelag).
    REQUESTS = "requests"
    #: A request token and the text's UTF-8 bytes (`rate_bytes`); both wait. Kept in order behind one
    #: refused as "server busy" (`MessageOrder`).
    TEXT = "text_bytes"
    #: A request token, then a join token (`rate_joins`): over it, refused with `rate_limited`.
    JOINS = "joins"
    #: A request token, then a nick token (`rate_nicks`): over it, refused with `rate_limited`.
    NICKS = "nicks"
    #: A request token, then a search token (`rate_searches`): over it, refused with `rate_limited`.
    SEARCHES = "searches"
    #: A request token, then an edit token (`rate_edits`): over it, refused with `rate_limited`.
    EDITS = "edits"
    #: A request token, then a reaction token (`rate_reactions`): over it, refused with `rate_limited`.
    REACTIONS = "reactions"


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the table."""

    thread: Thread
    #: What the request costs: which of the connection's rate buckets it draws from.
    cost: Cost
    #: READER: ``handler(connection, request)``. HISTORY: ``handler(part, client, request)``, an unbound
    #: method of one of the history thread's parts (bound once by `bind_history`).
    handler: Callable[..., None]


M = TypeVar("M")


def reader(kind: type[M], cost: Cost, handler: Callable[[Connection, M], None]) -> tuple[type, Route]:
    """A row handled on the connection's reader thread."""
    return kind, Route(Thread.READER, cost, handler)


def history(kind: type[M], cost: Cost, handler: Callable[[Any, Client, M], None]) -> tuple[type, Route]:
    """A row handled on the history thread."""
    return kind, Route(Thread.HISTORY, cost, handler)


FREE, TRANSFER, REQUESTS, TEXT = Cost.FREE, Cost.TRANSFER, Cost.REQUESTS, Cost.TEXT
JOINS, NICKS, EDITS, REACTIONS, SEARCHES = Cost.JOINS, Cost.NICKS, Cost.EDITS, Cost.REACTIONS, Cost.SEARCHES

#: Every request the server handles: type -> (thread, cost, handler).
ROUTES: dict[type, Route] = dict(
    [
        # The connection's own life (chat_server.reader.requests).
        reader(Hello, FREE, requests.log_in),
        reader(Ping, FREE, requests.answer_ping),
        reader(Pong, FREE, requests.take_pong),
        reader(Quit, FREE, requests.end_on_quit),
        # Chat (chat_server.history.messaging); history pages are read on the reader
        # (chat_server.reader.pages).
        history(Say, TEXT, Messages.say),
        history(Tell, TEXT, Messages.tell),
        reader(FetchHistory, REQUESTS, requests.fetch_history),
        # Search reads the index on the reader too (chat_server.reader.search); typing is relayed from there,
        # never stored (chat_server.reader.requests.relay_typing).
        reader(Search, SEARCHES, requests.search),
        reader(Typing, REQUESTS, requests.relay_typing),
        # Edits, deletions and reactions: events of the conversation (chat_server.history.conversation).
        history(Edit, EDITS, Conversations.edit),
        history(Delete, EDITS, Conversations.delete),
        history(React, REACTIONS, Conversations.react),
        history(Unreact, REACTIONS, Conversations.unreact),
        # Rooms (chat_server.history.rooms).
        history(Join, JOINS, Rooms.join),
        history(Leave, REQUESTS, Rooms.leave),
        history(SetTopic, REQUESTS, Rooms.set_topic),
        history(Who, REQUESTS, Rooms.who),
        history(ListRooms, REQUESTS, Rooms.list_rooms),
        # People: the reader checks passwords (scrypt), the history thread decides (chat_server.history.chat).
        reader(ChangeNick, NICKS, requests.change_nick),
        reader(Register, NICKS, requests.register),
        reader(Unregister, NICKS, requests.unregister),
        history(SetAway, REQUESTS, Chat.set_away),
        # Attention: read markers (chat_server.history.attention).
        history(MarkRead, REQUESTS, Attention.mark_read),
        history(SetNotify, REQUESTS, Attention.notify),
        history(SetKeywords, REQUESTS, Attention.keywords),
        # Moderation (chat_server.history.operators).
        history(Kick, REQUESTS, Operators.kick),
        history(Ban, REQUESTS, Operators.ban),
        history(Unban, REQUESTS, Operators.unban),
        history(ListBans, REQUESTS, Operators.list_bans),
        history(Mute, REQUESTS, Operators.mute),
        history(Unmute, REQUESTS, Operators.unmute),
        history(Op, REQUESTS, Operators.op),
        history(Deop, REQUESTS, Operators.deop),
        history(Invite, REQUESTS, Operators.invite),
        history(SetMode, REQUESTS, Operators.set_mode),
        # Files: the reader moves the bytes (chat_server.reader.uploads).
        reader(OfferFile, REQUESTS, requests.offer_file),
        reader(FileChunk, TRANSFER, requests.file_chunk),
        reader(GetFile, TRANSFER, requests.get_file),
        reader(CancelFile, TRANSFER, requests.cancel_file),
        # The admin's figures (chat_server.reader.adminstats).
        reader(GetStats, REQUESTS, requests.answer_stats),
        # Internal requests: a reader submits them to continue what it began (never on the wire; a nick
        # request's bucket was spent by the request it continues). FREE ones are applied before login too.
        history(Login, FREE, Chat.login),
        history(Disconnect, FREE, Chat.disconnect),
        history(StoreFile, FREE, Chat.store_file),
        history(Settle, FREE, Chat.settle),
        history(Rename, NICKS, Chat.rename),
        history(Enroll, NICKS, Chat.enroll),
        history(Unenroll, NICKS, Chat.unenroll),
    ]
)

#: A history row bound to its part: (the bound handler, whether the client must be logged in).
Bound = tuple[Callable[[Any, Any], None], bool]


def bind_history(parts: Iterable[object], routes: dict[type, Route] = ROUTES) -> dict[type, Bound]:
    """Bind each history row's handler to the part (`Chat`, `Messages`...) whose class defines it.

    Done once when the server starts; raises `LookupError` for a handler no part defines.
    """
    parts = list(parts)
    bound: dict[type, Bound] = {}
    for kind, route in routes.items():
        if route.thread is not Thread.HISTORY:
            continue
        name = route.handler.__name__
        owner = next((p for p in parts if getattr(type(p), name, None) is route.handler), None)
        if owner is None:
            raise LookupError(f"no part of the history thread defines the handler of {kind.__name__}")
        bound[kind] = (getattr(owner, name), route.cost is not Cost.FREE)
    return bound
