"""Wiring cluster mode into a starting server: the link, the history thread's parts, and their routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from chat_server.history.accounts import Enroll, Rename, Unenroll
from chat_server.history.chat import Chat, Disconnect
from chat_server.history.fileoffers import StoreFile
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
    Mute,
    Op,
    React,
    Say,
    SetMode,
    SetTopic,
    Tell,
    Unban,
    Unmute,
    Unreact,
)

from .conversation import ClusterConversations
from .link import NatsLink, Published, Replicated
from .messaging import ClusterMessages
from .nicks import NickLost
from .presence import ClusterPresence, Vanished

#: Requests that change state the servers do not share yet: refused in cluster mode with
#: `history_unavailable` (docs/cluster.md, "What works and what does not yet").
NOT_YET: dict[type, str] = {
    Kick: "moderation",
    Ban: "moderation",
    Unban: "moderation",
    Mute: "moderation",
    Unmute: "moderation",
    Op: "moderation",
    Deop: "moderation",
    Invite: "moderation",
    SetMode: "moderation",
    Rename: "changing nick",
    Enroll: "registering nicks",
    Unenroll: "registering nicks",
    StoreFile: "file sharing",
}


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
    handlers: dict[type, Bound], chat: Chat, messages: ClusterMessages, presence: ClusterPresence
) -> dict[type, Bound]:
    """The history thread's handlers in cluster mode: what changes shared state goes to the log (each
    cluster part registers the appliers of its records with `messages`), the log's records and publish
    outcomes are applied, and what is not shared yet is refused. `chat` holds the single server's parts
    the cluster parts reuse. A client's requests wait while one of its presence records is on its way
    (`presence`: chat_server.cluster.presence)."""
    routes = dict(handlers)
    routes[Say] = (messages.cluster_say, True)
    routes[Tell] = (messages.cluster_tell, True)
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
