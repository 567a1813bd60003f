"""The connection's story in the log (``chat-client --log-file FILE``, or a library user's own logging).

One INFO line per step of the connection's life: connecting, logged in, disconnected (why), reconnecting
(when, which attempt), resumed (how many rooms rejoined, messages resent, missed messages replayed), closed;
and one for every refusal the server sent that no caller was waiting for. All at INFO, so a library user
who set up no logging sees nothing on standard error; the client itself never logs to the terminal
(chat_client/__main__.py).
"""

from __future__ import annotations

import logging

from chat_client.net.events import Closed, Connected, Disconnected, Event, Reconnecting
from shared import Error, History

log = logging.getLogger("chat_client.connection")


def log_event(event: Event, *, rooms: int, outbox: int) -> None:
    """Log `event` if it is a step of the connection's life; `rooms` and `outbox` are the client's counts
    when it happened (rooms to rejoin, messages waiting to be sent)."""
    match event:
        case Connected(welcome=welcome, resumed=False):
            log.info("logged in to %s as %s", welcome.server, welcome.nick)
        case Connected(welcome=welcome, resumed=True):
            log.info(
                "resumed on %s as %s: rejoining %d rooms, resending %d messages",
                welcome.server,
                welcome.nick,
                rooms,
                outbox,
            )
        case Disconnected(reason=reason, code=code, will_retry=will_retry):
            log.info(
                "disconnected: %s%s; %s",
                reason,
                f" ({code})" if code else "",
                "will reconnect" if will_retry else "not reconnecting",
            )
        case Reconnecting(delay=delay, attempt=attempt, reason=reason, server=server):
            where = f" to {server}" if server else ""
            log.info("reconnecting%s in %.1f s (attempt %d): %s", where, delay, attempt, reason)
        case History(room=room, direct=direct, messages=messages, more=more):
            where = "direct messages" if direct or room is None else room
            log.info("history of %s: %d messages%s", where, len(messages), " (more stored)" if more else "")
        case Error(code=code, message=message, fatal=fatal):
            log.info("server error %s%s: %s", code, " (fatal)" if fatal else "", message)
        case Closed(error=error):
            if error is None:
                log.info("closed")
            else:
                log.info("closed for good: %s", error)
        case _:
            pass
