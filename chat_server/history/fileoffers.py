"""Storing a completed upload's offer: the one step of a file transfer done on the history thread.

The reader thread has written the file, checked its SHA-256 and moved it into place
(`chat_server.reader.uploads`); it submits a `StoreFile`. The history thread, which owns all chat state and
the SQLite writer, then stores the offer as an ordinary message (same id sequence as `said` and `told`, so it
appears in backfill, resume and paging) plus its `file_offers` row, renews the file's `files` row, commits,
and only then answers the uploader `file_done` and sends `file_offered` (encoded once) to the room's other
members or the recipient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from chat_server.files import Reservation
from chat_server.hub import Client, Hub, Room
from chat_server.replies import error_frame
from chat_server.storage import HistoryError, HistoryStore, conversation_key
from chat_server.tuning import Latch
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import FileDone, FileOffered

from .messaging import direct_recipients

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreFile:
    """Internal request: an upload is complete and its file in place; store its offer."""

    upload: int
    name: str
    size: int
    sha256: str
    room_key: str | None
    #: A direct offer's recipient, (nick as shown, key), as found when the offer was made.
    recipient: tuple[str, str] | None
    client_msg_id: str | None
    ref: int | None
    reservation: Reservation


@dataclass(frozen=True, slots=True)
class Settle:
    """Internal request: set `done` once it is applied, i.e. after every request the connection sent before.

    A reader thread answers file requests itself, so a `join` it submitted just before a `file_get` may not be
    applied yet; before refusing for want of membership it settles (`Connection._settle`) and checks again.
    """

    done: Latch


#: Why a client may not speak in a room (a mute in force), or None: `Moderation.silenced`.
Silenced = Callable[[Client, Room], str | None]


def store_file_offer(
    hub: Hub, store: HistoryStore, client: Client, request: StoreFile, ts: int, silenced: Silenced
) -> None:
    """Store the offer, commit, then tell the uploader and the audience (history thread; after a flush).

    A room's offer is a message in the room: refused like `say` if the uploader is no longer a member
    (`not_in_room`) or is muted there (`muted`); the file then stays only until the next sweep.
    """
    try:
        _store(hub, store, client, request, ts, silenced)
    finally:
        request.reservation.finish()  # recorded (or failed): the sweeper may judge the file by its row now


def checked_offer(
    hub: Hub, store: HistoryStore, client: Client, request: StoreFile, silenced: Silenced
) -> tuple[Room | None, Client | None] | None:
    """Check an offer as `say` is checked: (its room or None, the direct recipient's session or None), or
    None once it is answered: a duplicate `client_msg_id` (`file_done {duplicate}` or
    `client_msg_id_reused`), a room left (`not_in_room`) or a mute (`muted`). Raises `HistoryError`.

    The single server stores what passes (`store_file_offer`); in cluster mode it goes to the log
    (chat_server.cluster.files)."""
    key = client.key
    assert key is not None
    if request.client_msg_id is not None:
        conversation = conversation_key(request.room_key, request.recipient and request.recipient[1])
        found = store.find_previous(key, request.client_msg_id, conversation)
        if found is not None and (found.text, found.sha256, found.size) != (
            request.name,
            request.sha256,
            request.size,
        ):
            reused = f"client_msg_id {request.client_msg_id!r} was used for another message here"
            client.send(error_frame(ErrorCode.CLIENT_MSG_ID_REUSED, reused, request.ref))
            return None
        if found is not None:
            done = FileDone(
                upload=request.upload,
                id=found.id,
                ts=found.ts,
                client_msg_id=request.client_msg_id,
                duplicate=True,
            )
            client.send(encode(done))
            return None
    if request.room_key is not None:
        room = client.rooms.get(request.room_key)
        if room is None:
            client.send(error_frame(ErrorCode.NOT_IN_ROOM, "you left the room", request.ref))
            return None
        if (muted := silenced(client, room)) is not None:
            client.send(error_frame(ErrorCode.MUTED, muted, request.ref))
            return None
        return room, None
    assert request.recipient is not None
    return None, hub.nicks.get(request.recipient[1])


def _store(
    hub: Hub, store: HistoryStore, client: Client, request: StoreFile, ts: int, silenced: Silenced
) -> None:
    key, nick = client.key, client.nick
    if key is None or nick is None:
        return  # the connection ended meanwhile; the file stays until the sweep (the re-offer is free)
    try:
        checked = checked_offer(hub, store, client, request, silenced)
        if checked is None:
            return
        room, recipient = checked
        if room is not None:
            message_id = store.add_room_message(
                room_key=room.key,
                room=room.name,
                sender=nick,
                sender_key=key,
                text=request.name,
                ts=ts,
                action=False,
                client_msg_id=request.client_msg_id,
            )
        else:
            assert request.recipient is not None
            to_nick, to_key = request.recipient
            message_id = store.add_direct_message(
                sender=nick,
                sender_key=key,
                recipient=to_nick,
                recipient_key=to_key,
                text=request.name,
                ts=ts,
                action=False,
                client_msg_id=request.client_msg_id,
            )
        store.add_file_offer(message_id, request.size, request.sha256)
        store.save_file(request.sha256, request.size, ts, key)
        store.commit()
    except HistoryError as error:
        store.rollback()
        log.error("conn=%d event=file_offer_failed error=%s", client.id, error)
        client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the offer could not be stored", request.ref))
        return
    log.info("conn=%d event=file_stored id=%d size=%d", client.id, message_id, request.size)
    client.send(
        encode(FileDone(upload=request.upload, id=message_id, ts=ts, client_msg_id=request.client_msg_id))
    )
    offered = FileOffered(
        id=message_id,
        nick=nick,
        name=request.name,
        size=request.size,
        sha256=request.sha256,
        ts=ts,
        room=room.name if room is not None else None,
        to=request.recipient[0] if request.recipient is not None else None,
    )
    frame = encode(offered)
    if room is not None:
        room.last_id = message_id
        hub.publish(room, frame, skip=client)
    else:
        hub.send_all(
            direct_recipients(client, recipient), frame
        )  # the peer's sessions, and the sender's others
