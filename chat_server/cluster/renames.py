"""Nick changes across the cluster: the new nick is claimed in the nick bucket, then a record tells the rest.

A `nick` request reaches the history thread only after the connection's reader thread claimed the new nick
in the cluster's nick bucket (`NickLeases.rename`, chat_server.cluster.nicks: an atomic create, as for a
login), so no other server can give it away meanwhile: the decision that must come *before* anything is
written is the bucket's, as the design says (docs/cluster.md). Then `SharedRenames.rename` lets the single
server's code decide and apply it on this server (`Chat.rename`: the sessions rule, the registered nick's
password, the local holder), and, if the nick changed, publishes a ``nick`` record naming the old and new
nick and the rooms the nick is in. Every other server applies it by telling its own members of those rooms
(the single server's `nick_changed` frame). The old nick's lease is released by the bucket's next round (it
is no longer held here), and a claimed nick the history thread then refused is released the same way.
"""

from __future__ import annotations

from typing import Any

from chat_server.history.accounts import Rename
from chat_server.history.chat import Chat
from chat_server.hub import Client
from shared.codec import encode
from shared.messages import NickChanged

from .messaging import Awaiting, ClusterMessages


class SharedRenames:
    """The cluster's route of `nick` (history thread), and the applier of its records."""

    def __init__(self, chat: Chat, messages: ClusterMessages) -> None:
        self.chat = chat
        self.messages = messages
        self.hub = messages.hub
        messages.applies("nick", self._apply)

    def rename(self, client: Client, request: Rename) -> None:
        """Change the nick here as a single server does; then tell the other servers' members."""
        old = client.nick
        self.chat.rename(client, request)
        if client.nick == old or old is None:
            return  # refused (or nothing changed): nothing to tell
        record = {"k": "nick", "old": old, "new": client.nick, "rooms": sorted(client.rooms)}
        self.messages.publish(record, None)

    def _apply(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        if record["o"] == self.messages.origin:
            return  # this server announced it when it made the change
        rooms = [room for key in record["rooms"] if (room := self.hub.rooms.get(key)) is not None]
        if not rooms:
            return
        changed = encode(NickChanged(old=record["old"], new=record["new"], ts=record["ts"]))

        def announce() -> None:
            with self.hub.lock:
                members = {member.id: member for room in rooms for member in room.members}
            for member in members.values():
                member.send(changed)

        self.messages.after_commit_do(announce, None, None)
