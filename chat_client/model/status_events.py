"""How the connection's events change the chat model: connected, disconnected, reconnecting, lag, closed;
and the server's errors and statistics reports.

Plain functions over `ChatModel` (chat_client.model.chat), called by its `apply`. "Disconnected" is told to
every buffer, and "reconnected" to each of them when the connection is back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chat_client.model import attention
from chat_client.model.admincommands import stats_lines
from chat_client.model.buffers import SERVER_KEY, Changes, ConnectionStatus, LineKind
from chat_client.net.errors import ClientError
from chat_client.net.events import Closed, Connected, Disconnected, LagMeasured, Reconnecting
from chat_client.net.reasons import describe_failure
from shared import Error, StatsReport
from shared.messages import SessionInfo, Sessions

if TYPE_CHECKING:  # chat imports this module: ChatModel is only an annotation here
    from chat_client.model.chat import ChatModel


def on_connected(model: ChatModel, event: Connected, changes: Changes) -> None:
    welcome = event.welcome
    model.set_nick(welcome.nick)
    model.status = ConnectionStatus.CONNECTED
    model.server_name = welcome.server
    model.reconnect_at = None
    model.status_reason = ""
    model.identity = event.identity
    model.away = None  # a new connection starts not away
    changes.status = True
    attention.on_welcome(model, welcome, changes)
    model.session_id, model.sessions = welcome.session, welcome.sessions
    # Every buffer that was told "disconnected" is told "reconnected"; the server buffer always hears.
    verb = "reconnected to" if event.resumed else "connected to"
    told, model.told_disconnected = model.told_disconnected, set()
    text = f"{verb} {welcome.server} as {welcome.nick}"
    for key in [SERVER_KEY, *(k for k in told if k != SERVER_KEY and k in model.buffers)]:
        model.add_line(changes, key, LineKind.NOTICE, text, count=False)
    changes.members |= told
    if event.identity is not None and (not event.resumed or event.identity.pinned_now):
        model.add_line(changes, SERVER_KEY, LineKind.NOTICE, event.identity.describe(), count=False)
    if welcome.motd and not event.resumed:
        model.add_line(changes, SERVER_KEY, LineKind.NOTICE, welcome.motd, count=False)
    if len(welcome.sessions) > 1:
        others = len(welcome.sessions) - 1
        text = f"{welcome.nick} is also logged in from {others} other session(s): /sessions lists them"
        model.add_line(changes, SERVER_KEY, LineKind.NOTICE, text, count=False)


def on_sessions(model: ChatModel, event: Sessions, changes: Changes) -> None:
    """Another session of our nick logged in or ended: say so where the user looks (the current buffer)."""
    before = {session.id for session in model.sessions}
    after = {session.id for session in event.sessions}
    for session in event.sessions:
        if session.id not in before:
            text = f"another session of yours logged in: {describe_session(session)}"
            model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)
    for session in model.sessions:
        if session.id not in after:
            text = f"a session of yours ended: {describe_session(session)}"
            model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)
    model.sessions = event.sessions
    changes.status = True


def describe_session(session: SessionInfo) -> str:
    """One session as `/sessions` and the notices show it: its number, its client, since when."""
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.since / 1000)) if session.since else "?"
    return f"#{session.id} {session.client or 'unknown client'}, since {since}"


def session_lines(model: ChatModel) -> list[str]:
    """What `/sessions` shows: every session of our nick, this one marked."""
    if not model.sessions:
        return ["no sessions known (not logged in)"]
    lines = [f"{model.nick} is logged in from {len(model.sessions)} session(s):"]
    for session in model.sessions:
        mark = " (this one)" if session.id == model.session_id else ""
        lines.append(f"  {describe_session(session)}{mark}")
    return lines


def on_disconnected(model: ChatModel, event: Disconnected, changes: Changes) -> None:
    model.status = ConnectionStatus.RECONNECTING if event.will_retry else ConnectionStatus.OFFLINE
    first, *more = event.reason.splitlines() or [""]
    model.status_reason = first
    changes.status = True
    # Every room and conversation says so (and "reconnected" when it is back: `on_connected`). A long
    # explanation (a changed server key) is several lines, each shown as one, where the user looks.
    for key in model.buffers:
        where_looking = key in (SERVER_KEY, model.current)
        for text in [f"disconnected: {first}", *(more if where_looking else [])]:
            model.add_line(changes, key, LineKind.ERROR, text, count=False)
        model.told_disconnected.add(key)
    changes.members |= set(model.buffers)  # the member lists grey out while offline
    for buffer in model.buffers.values():
        buffer.fetching = False
        buffer.backfill_anchor = None  # a later history page is news, not the join's backfill


def on_reconnecting(model: ChatModel, event: Reconnecting, changes: Changes) -> None:
    model.status = ConnectionStatus.RECONNECTING
    model.reconnect_at = model.clock() + event.delay
    model.status_reason = event.reason if event.server is None else f"{event.reason}; trying {event.server}"
    changes.status = True


def on_lag(model: ChatModel, event: LagMeasured, changes: Changes) -> None:
    model.lag = event.seconds
    changes.status = True


def on_closed(model: ChatModel, event: Closed, changes: Changes) -> None:
    model.status = ConnectionStatus.OFFLINE
    model.reconnect_at = None
    changes.status = True
    changes.members |= set(model.buffers)  # greyed out: nothing will update them now
    if event.error is not None:
        # The library's own errors are sentences; anything else (a bug) is not shown as Python's text.
        error = event.error
        why = str(error) if isinstance(error, ClientError) else describe_failure(error)
        model.status_reason = why
        model.add_line(changes, SERVER_KEY, LineKind.ERROR, f"connection closed: {why}", count=False)
        changes.alerts.append(f"connection closed: {why}")


def on_stats_report(model: ChatModel, event: StatsReport, changes: Changes) -> None:
    for text in stats_lines(event):
        model.add_line(changes, model.current, LineKind.NOTICE, text, count=False)


def on_error(model: ChatModel, event: Error, changes: Changes) -> None:
    text = f"{event.code}: {event.message}" if event.message else event.code
    model.add_line(changes, model.current, LineKind.ERROR, text, count=False)
    changes.alerts.append(text)
