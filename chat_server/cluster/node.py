"""Wiring cluster mode into a starting server: the link, the history thread's parts, and their routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from chat_server.history.accounts import Enroll, Rename, Unenroll
from chat_server.history.chat import Chat, Disconnect
from chat_server.history.thread import HistoryThread
from chat_server.hub import Client
from chat_server.replies import error_frame
from chat_server.routes import Bound
from chat_server.sender.thread import SendQueue
from shared.errors import ErrorCode
from shared.messages import (
    Ban,
    Delete,
    Deop,
    Edit,
    Invite,
    Kick,
    MarkRead,
    Mute,
    Op,
    React,
    Say,
    SetKeywords,
    SetMode,
    SetNotify,
    SetTopic,
    Tell,
    Unban,
    Unmute,
    Unreact,
)

from .accounts import SharedAccounts
from .attention import ClusterAttention
from .conversation import ClusterConversations
from .files import FileShared, SharedFiles
from .link import NatsLink, Published, Replicated
from .messaging import ClusterMessages
from .moderation import SharedModeration
from .nicks import NickLost
from .presence import ClusterPresence, Vanished
from .renames import SharedRenames

#: Requests that change state the servers do not share yet: refused in cluster mode with
#: `history_unavailable` (docs/cluster.md, "What works and what does not yet"). Empty now: the table is
#: where a new request type waits until its cluster part exists.
NOT_YET: dict[type, str] = {}


def _refuse(what: str) -> Callable[[Client, Any], None]:
    message = f"{what} is not available in cluster mode yet (docs/cluster.md)"

    def refuse(client: Client, request: Any) -> None:
        client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, message, getattr(request, "ref", None)))

    return refuse


def share_presence(chat: Chat, messages: ClusterMessages) -> ClusterPresence:
    """Make room membership, away messages and sign-offs go through the cluster's log."""
    presence = ClusterPresence(chat, messages)
    chat.rooms.shared = presence
    return presence


def cluster_routes(
    handlers: dict[type, Bound],
    chat: Chat,
    messages: ClusterMessages,
    presence: ClusterPresence,
    files: SharedFiles | None = None,
) -> dict[type, Bound]:
    """The history thread's handlers in cluster mode: what changes shared state goes to the log (each
    cluster part registers the appliers of its records with `messages`: `say`, `tell`, room membership and
    away states, the changes of registered nicks and their attention, the operators' requests, nick
    changes), the log's records and publish outcomes are applied, a file put into the object store gets its
    offer published (`files`, with file sharing on), and what is not shared yet is refused. `chat` holds the
    single server's parts the cluster parts reuse. A client's requests wait while one of its presence
    records is on its way (`presence`: chat_server.cluster.presence)."""
    routes = dict(handlers)
    accounts = SharedAccounts(chat.accounts, messages)
    routes[Enroll] = (accounts.enroll, handlers[Enroll][1])
    routes[Unenroll] = (accounts.unenroll, handlers[Unenroll][1])
    moderation = SharedModeration(chat.operators, messages, presence)
    shared: dict[type, Callable[[Client, Any], None]] = {
        Kick: moderation.kick,
        Ban: moderation.ban,
        Unban: moderation.unban,
        Mute: moderation.mute,
        Unmute: moderation.unmute,
        Op: moderation.op,
        Deop: moderation.deop,
        Invite: moderation.invite,
        SetMode: moderation.set_mode,
    }
    for kind, handler in shared.items():
        routes[kind] = (handler, handlers[kind][1])
    routes[Rename] = (SharedRenames(chat, messages, presence).rename, handlers[Rename][1])
    if files is not None:
        routes[FileShared] = (files.shared, False)
    routes[Say] = (messages.cluster_say, True)
    routes[Tell] = (messages.cluster_tell, True)
    attention = ClusterAttention(chat.attention, messages, chat.hub)
    routes[MarkRead] = (attention.mark_read, handlers[MarkRead][1])
    routes[SetNotify] = (attention.notify, handlers[SetNotify][1])
    routes[SetKeywords] = (attention.keywords, handlers[SetKeywords][1])
    conversations = ClusterConversations(messages, chat.conversations, chat.rooms, chat.moderation)
    routes[Edit] = (conversations.edit, True)
    routes[Delete] = (conversations.delete, True)
    routes[React] = (conversations.react, True)
    routes[Unreact] = (conversations.unreact, True)
    routes[SetTopic] = (conversations.set_topic, True)
    for kind, what in NOT_YET.items():
        routes[kind] = (_refuse(what), handlers[kind][1])
    routes = {kind: (presence.hold(handler), needs_login) for kind, (handler, needs_login) in routes.items()}
    routes[Disconnect] = (presence.disconnected(handlers[Disconnect][0]), handlers[Disconnect][1])
    routes[Replicated] = (presence.replicated(messages.apply), False)
    routes[Published] = (presence.published(messages.published), False)
    routes[NickLost] = (presence.nick_lost(messages.nick_lost), False)
    routes[Vanished] = (presence.vanished, False)
    presence.routes = routes
    return routes


def link_client() -> Client:
    """The `Client` the link's internal requests come from: it is never sent anything."""
    sendq = SendQueue(soft=1, hard=1, soft_seconds=1.0)
    return Client(0, "nats", sendq, lambda last, abort: None, b"")


def follow(link: NatsLink, history: HistoryThread, messages: ClusterMessages) -> None:
    """Start the log consumer after the local copy's position, handing its records to `history`."""
    client = link_client()
    link.follow(messages.applied, lambda request: history.submit(client, cast(Any, request)))
