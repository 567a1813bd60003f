"""The frames about a nick's sessions: a registered nick may be logged in from several connections at once.

Every session of a nick receives the rooms' messages and the nick's direct messages; what one session sends
reaches the others as a `said`/`told` whose `nick` is their own. `welcome.sessions` lists the nick's sessions
at login (this one included, `welcome.session` naming it), and `sessions` tells every session of the nick
the new list whenever one comes or goes.
"""

from __future__ import annotations

from shared import schema as check
from shared.schema import Message, Sender, message, record, wire

SERVER = Sender.SERVER


@record
class SessionInfo(Message):
    """One session (connection) of a nick: its id, the client it named in its `hello`, and since when
    (milliseconds since the Unix epoch) it is logged in."""

    id: int = wire(check.uint, default=0)
    client: str | None = wire(check.reason, default=None)
    since: int = wire(check.uint, default=0)


# -- Notifications: server to client -----------------------------------------------------------------------


@message("sessions", SERVER)
class Sessions(Message):
    """The nick's sessions, whole, sent to each of them when one logs in or ends (never to the one whose
    `welcome` already lists them). A session learns from it that a sibling came or went."""

    sessions: tuple[SessionInfo, ...] = wire(check.list_of(check.nested(SessionInfo)), default=())
    ts: int = wire(check.uint, default=0)
