"""History pages on request (`fetch_history`), served on the asking connection's reader thread.

Each reader thread uses its own SQLite read connection (opened by its `Connection` when first needed), so a
long page never waits for, or delays, the history thread; WAL mode lets these reads run while it writes.
"""

from __future__ import annotations

import logging
import sqlite3

from chat_server import storage
from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub
from chat_server.replies import REPLY_MARGIN, error_frame
from chat_server.storage import HistoryError
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import FetchHistory, History
from shared.text import fold

log = logging.getLogger(__name__)


def fetch_history(
    client: Client, request: FetchHistory, db: sqlite3.Connection, hub: Hub, config: ServerConfig
) -> bytes:
    """Answer a `FetchHistory` (reader thread): the encoded `history` or `error` frame."""
    ref = request.ref
    if (request.room is None) == (not request.direct):
        return error_frame(ErrorCode.INVALID_FIELD, "give exactly one of 'room' and 'direct'", ref)
    if request.room is not None and request.peer is not None:
        return error_frame(ErrorCode.INVALID_FIELD, "'peer' goes with 'direct', not with 'room'", ref)
    limit = min(config.backfill if request.limit is None else request.limit, config.max_backfill)
    max_bytes = config.max_frame - REPLY_MARGIN
    try:
        if request.room is not None:
            key = fold(request.room)
            with hub.lock:
                room = client.rooms.get(key)
            if room is None:
                return error_frame(ErrorCode.NOT_IN_ROOM, f"you are not in {request.room!r}", ref)
            page = storage.room_page(
                db,
                key,
                before=request.before,
                after=request.after,
                limit=limit,
                max_bytes=max_bytes,
                forward=bool(request.forward),
            )
            reply = History(
                room=room.name,
                messages=page.messages,
                more=page.more,
                skipped=page.skipped,
                ref=ref,
                events=page.events,
            )
        else:
            with hub.lock:
                owner = client.key
            peer = None if request.peer is None else fold(request.peer)
            page = storage.direct_page(
                db,
                owner or "",
                peer,
                before=request.before,
                after=request.after,
                limit=limit,
                max_bytes=max_bytes,
                forward=bool(request.forward),
            )
            reply = History(
                direct=True,
                peer=request.peer,
                messages=page.messages,
                more=page.more,
                skipped=page.skipped,
                ref=ref,
                events=page.events,
            )
    except HistoryError as error:
        log.warning("conn=%d event=history_failed error=%s", client.id, error)
        return error_frame(ErrorCode.HISTORY_UNAVAILABLE, "history is unavailable", ref)
    return encode(reply)
