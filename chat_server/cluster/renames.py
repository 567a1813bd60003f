"""Nick changes across the cluster: the new nick is claimed in the nick bucket, then a record changes it.

A `nick` request reaches the history thread only after the connection's reader thread claimed the new nick
in the cluster's nick bucket (`NickLeases.rename`, chat_server.cluster.nicks: an atomic create, as for a
login), so no other server can give it away meanwhile: the decision that must come *before* anything is
written is the bucket's, as the design says (docs/cluster.md). Then the change goes the way of every change
of shared state, with the log between the rule and the change:

1. `SharedRenames.rename` (the origin) checks the request as a single server does (`Chat`: the sessions
   rule, the registered nick's password, the local holder); a refusal is answered at once. Otherwise it
   publishes a ``nick`` record naming the old and new nick and the rooms the nick is in, and answers nothing
   yet: the client keeps its old nick.
2. Every server applies the record in stream order (`_apply`). The origin makes the change there: it checks
   again what an earlier record or a local login may have changed (a registration of the new nick, a
   session that took the nick here), gives the client the new nick in the hub, and after the commit tells the
   client, its other sessions and everyone sharing a room with it (`nick_changed`), then answers `ok`. Every
   other server tells its own members of the record's rooms.
3. If the log cannot take the record, the requester gets `history_unavailable` ("the nick change was not
   stored", chat_server.cluster.messaging) and keeps its old nick; the new nick's claim in the bucket is
   released by the bucket's next round, as every nick not held here (so is the old nick after a change, and
   a claimed nick the check refused).

The same nick again (letter for letter) changes nothing anywhere: it is answered at once, as on a single
server. A change of letter case only is a record like any change (every server shows the nick anew), and
renames all the nick's sessions.
"""

from __future__ import annotations

import logging
from typing import Any

from chat_server.history.accounts import Proof, Rename, Standing
from chat_server.history.chat import Chat
from chat_server.hub import Client
from chat_server.replies import answer, error_frame
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import NickChanged
from shared.text import fold

from .messaging import Awaiting, ClusterMessages
from .presence import ClusterPresence

log = logging.getLogger(__name__)


class SharedRenames:
    """The cluster's route of `nick` (history thread), and the applier of its records."""

    def __init__(self, chat: Chat, messages: ClusterMessages, roster: ClusterPresence) -> None:
        self.chat = chat
        self.messages = messages
        #: The cluster's roster: every server renames the nick's seats as it applies the record.
        self.roster = roster
        self.hub = messages.hub
        #: The password proofs of the nick changes this server published, by the record's token: checked
        #: again when the record is applied (a registration of the nick may come first in the log).
        self._proofs: dict[int, Proof | None] = {}
        #: A client's last nick change published and not applied yet: (its token, the new nick). A change
        #: sent right after it names that nick as the old one, so every server renames the right nick.
        self._renaming: dict[Client, tuple[int, str]] = {}
        messages.applies("nick", self._apply)

    def rename(self, client: Client, request: Rename) -> None:
        """Check a nick change as a single server does, then publish it (the client keeps its nick until the
        record is applied)."""
        change = request.request
        pending = self._renaming.get(client)
        old = pending[1] if pending is not None else client.nick
        if old is None or (change.nick == old and pending is None):
            self.chat.rename(client, request)  # the same nick: nothing shared changes
            return
        self.chat.flush()  # a barrier, as on a single server: what the client sent before comes first
        checked = self._check(client, change.nick, request.proof, change.ref)
        if isinstance(checked, bytes):
            client.send(checked)
            return
        record: dict[str, Any] = {"k": "nick", "old": old, "new": change.nick, "rooms": sorted(client.rooms)}
        self.messages.publish(record, Awaiting(client, change.ref))
        self._proofs[record["t"]] = request.proof
        self._renaming[client] = (record["t"], change.nick)

    def _check(self, client: Client, nick: str, proof: Proof | None, ref: int | None) -> Standing | bytes:
        """The single server's rules for `client` taking `nick` (chat_server.history.chat): how it stands
        with the nick (free, or its own registered nick), or the error frame refusing it."""
        if len(client.sessions) > 1 and fold(nick) != client.key:
            others = len(client.sessions) - 1
            message = f"{client.nick} has {others} other session(s): end them before changing the nick"
            return error_frame(ErrorCode.FORBIDDEN, message, ref)
        standing = self.chat._claim(client, nick, proof, ref)  # registered nicks: the single server's check
        holder = self.hub.holder(nick)
        if not isinstance(standing, bytes) and holder is not None and holder is not client:
            return error_frame(ErrorCode.NICK_TAKEN, f"nick {nick!r} is in use", ref)
        return standing

    def _apply(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        self.roster.renamed(fold(record["old"]), fold(record["new"]), record["new"])
        if waiting is not None:
            self._change(record, waiting)
            return
        if record["o"] == self.messages.origin:
            return  # this server's, answered already (read again after a rollback)
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

    def _change(self, record: dict[str, Any], waiting: Awaiting) -> None:
        """The origin applies its own record: the client takes the new nick now, as on a single server (if
        nothing applied since, or a login here, made the rules refuse it)."""
        client, ref, new = waiting.client, waiting.ref, record["new"]
        proof = self._proofs.pop(record["t"], None)
        if self._renaming.get(client, (None, ""))[0] == record["t"]:
            del self._renaming[client]  # its last change in flight is applied
        if client.key is None or self.hub.nicks.get(client.key) is not client:
            return  # gone meanwhile: nobody to rename or answer
        checked = self._check(client, new, proof, ref)
        if isinstance(checked, bytes):
            self.messages.hold(client, checked, ref)
            return
        old = client.nick  # the record's, unless a nick change published before this one was applied since
        self.hub.register(client, new)  # free here: checked just now, on this thread
        with self.hub.lock:
            for session in client.sessions:  # a change of letter case: the nick's other sessions too
                session.nick = client.nick
        self.chat.accounts.settle(client, checked)
        log.info("conn=%d event=nick old=%r new=%r", client.id, old, new)
        changed = encode(NickChanged(old=old or record["old"], new=new, ts=record["ts"]))

        def announce() -> None:
            self.hub.send_all(self.hub.neighbours(client), changed)
            answer(client, ref)

        self.messages.after_commit_do(announce, client, ref)
