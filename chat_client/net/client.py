"""`ChatClient`: an asyncio chat client that logs in, reconnects, resumes and delivers, for UIs and bots.

    async with ChatClient("127.0.0.1", 7878, "echo") as client:
        await client.join("lobby")
        await client.say("lobby", "hello")
        async for event in client.events():
            ...

This module is what a caller can ask: the properties, the events, the requests (join, say, moderate...) and
the file transfers. What the client does on its own is in the layers below: `ClientRunner`
(chat_client.net.runner: the run task, the thread model, the resume and the stop order) and `ClientCore`
(chat_client.net.core: the parts and the routing of incoming messages).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

from chat_client.net.errors import ClientClosed, ClientError, FilesUnsupported, NotConnected
from chat_client.net.events import Event
from chat_client.net.filework import check_offer, upload_size
from chat_client.net.options import ConnectionState
from chat_client.net.outbox import OutboxEntry
from chat_client.net.progress import TransferInfo
from chat_client.net.runner import ClientRunner
from chat_client.net.savename import safe_name
from chat_client.net.transfers import Transfer
from chat_client.net.waiters import answer_to
from shared import (
    Ack,
    AwayChanged,
    BanList,
    ChangeNick,
    FetchHistory,
    FileOffered,
    FilePolicy,
    GetStats,
    History,
    Join,
    Leave,
    Left,
    ListBans,
    ListRooms,
    Message,
    ModerationRequest,
    NickChanged,
    Register,
    Registration,
    RoomList,
    RoomState,
    Say,
    SetAway,
    SetMode,
    SetTopic,
    StatsReport,
    Tell,
    TopicChanged,
    Unregister,
    Who,
    fold,
)

log = logging.getLogger("chat_client.connection")


class ChatClient(ClientRunner):
    """A chat connection that keeps itself alive: see the module docstring for what it does.

    Built with `ClientCore`'s arguments: host, port, nick, and optionally the first rooms, the options,
    the server's and the nick's passwords, and TLS.
    """

    async def connect(self) -> None:
        """Connect and log in; after that the client reconnects by itself (see `ClientRunner.connect`)."""
        log.info("connecting to %s as %s", self.endpoint, self.nick)
        try:
            await super().connect()
        except Exception as error:
            log.info("cannot log in to %s as %s: %s", self.endpoint, self.nick, error)
            raise

    # -- Properties --------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Connecting, connected, reconnecting or closed."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while logged in."""
        return self._session is not None

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms this client is in (and rejoins after a reconnect)."""
        return self._resume.rooms

    @property
    def server_name(self) -> str | None:
        """The name the server gave in its welcome, once logged in."""
        return self._session.welcome.server if self._session is not None else None

    @property
    def outbox(self) -> tuple[OutboxEntry, ...]:
        """The messages still waiting for the server's acknowledgement, oldest first."""
        return tuple(self._delivery.outbox)

    @property
    def lag(self) -> float | None:
        """The round-trip time of the last ping, in seconds (None until measured)."""
        return self._liveness.lag

    @property
    def pings_answered(self) -> int:
        """How many of the server's pings this client answered (a liveness statistic)."""
        return self._liveness.pings_answered

    # -- Events ------------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Yield every event until (and including) the final `Closed`."""
        while not self._events.closed_seen:
            for event in await self.next_events():
                yield event

    async def next_events(self, limit: int = 1000) -> list[Event]:
        """Wait for at least one event and return up to `limit` of those ready (empty once closed).

        Taking a batch lets a UI render a burst in one go instead of one refresh per message.
        """
        return await self._events.next_batch(limit)

    async def wait_delivered(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged or refused; False if `timeout` passed first."""
        return await self._delivery.wait_delivered(timeout)

    async def drain(self, idle_timeout: float) -> bool:
        """Wait until every queued message is acknowledged or refused, for as long as the server keeps
        acknowledging them (paced, a long outbox takes a while): False once none was settled for
        `idle_timeout` seconds (the server is gone, or stopped answering)."""
        return await self._delivery.drain(idle_timeout)

    async def wait_outbox_room(self, idle_timeout: float | None = None) -> bool:
        """Wait until the outbox has room for another message; False if none was settled for
        `idle_timeout` seconds (None: wait as long as it takes)."""
        return await self._delivery.wait_room(idle_timeout)

    @property
    def delivery_counts(self) -> tuple[int, int, int]:
        """Messages sent through the outbox in this client's life: (queued, acknowledged, refused)."""
        delivery = self._delivery
        return delivery.added, delivery.acknowledged, delivery.failed

    # -- Requests ----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or self._state is ConnectionState.CLOSED:
            raise ClientClosed("the client is closed")

    async def _request(
        self, message: Message, match: Callable[[Message], bool], wait: bool
    ) -> Message | None:
        """Send `message`; if `wait`, return the answer `match` picks, or raise `ServerError`."""
        self._check_open()
        session = self._session
        if session is None:
            raise NotConnected("not connected to the server")
        return await self._waiters.request(
            session, message, match, wait=wait, timeout=self.options.request_timeout
        )

    async def join(self, room: str, *, key: str | None = None, wait: bool = True) -> RoomState | None:
        """Join `room` (created if new) and, if `wait`, return its state (topic and members).

        `key`: the room's key, if an operator set one. While disconnected the room is only remembered, and
        joined at the next login (without a key: give it again then).
        """
        self._check_open()
        ref = next(self._refs)
        request = Join(room=room, key=key, ref=ref)
        self._check(request)
        self._resume.remember_key(room, key)
        if self._session is None:
            self._resume.joined(room)
            return None
        self._resume.expect_join_reply(room, ref)
        reply = await self._request(request, answer_to(RoomState, ref, room), wait)
        return reply if isinstance(reply, RoomState) else None

    async def leave(self, room: str, reason: str | None = None, *, wait: bool = True) -> None:
        """Leave `room` (and stop rejoining it)."""
        self._check_open()
        request = Leave(room=room, reason=reason, ref=next(self._refs))
        self._check(request)
        if self._session is None:
            self._resume.forget(room)
            return
        key = fold(room)
        await self._request(
            request, lambda m: isinstance(m, Left) and self._is_mine(m.nick) and fold(m.room) == key, wait
        )

    async def say(self, room: str, text: str, *, action: bool = False, wait: bool = False) -> OutboxEntry:
        """Send `text` to `room` through the outbox, and return its entry.

        The message is delivered once even across reconnects, in order, paced to the rate limits the server
        announced (so a loop of `say` calls is never refused for its rate). With `wait`, return only once
        the server stored it (the entry is then `ACKNOWLEDGED`), or raise `ServerError` if it refused it.
        When `outbox_limit` messages are already waiting: while connected, wait for room; offline, raise
        `OutboxFull`.
        """
        self._check(Say(room=room, text=text, action=action, client_msg_id="x"))
        await self._outbox_room()
        return await self._delivery.submit(self._delivery.add(text=text, action=action, room=room), wait=wait)

    async def tell(self, nick: str, text: str, *, action: bool = False, wait: bool = False) -> OutboxEntry:
        """Send a direct message to `nick` through the outbox (see `say`)."""
        self._check(Tell(to=nick, text=text, action=action, client_msg_id="x"))
        await self._outbox_room()
        return await self._delivery.submit(self._delivery.add(text=text, action=action, peer=nick), wait=wait)

    async def _outbox_room(self) -> None:
        """While connected, wait for room in a full outbox (the pacing empties it at the server's rate);
        offline, a full outbox raises `OutboxFull` at once (nothing will empty it before the reconnect)."""
        self._check_open()
        if self._delivery.full and self._session is not None:
            await self._delivery.wait_room()
            self._check_open()

    async def change_nick(self, nick: str, *, password: str | None = None, wait: bool = True) -> None:
        """Change our nick (kept for later reconnects); `password` if the new nick is registered.

        A refusal (`nick_taken`, `nick_registered` for a missing or wrong password) raises `ServerError`.
        """
        request = ChangeNick(nick=nick, password=password, ref=next(self._refs))
        self._check(request)
        self._credentials.changing_nick(nick, password)
        await self._request(request, lambda m: isinstance(m, NickChanged) and fold(m.new) == fold(nick), wait)

    async def register(
        self, password: str, *, old_password: str | None = None, wait: bool = True
    ) -> Registration | None:
        """Register our nick with `password` (or change it: `old_password` is then the current one).

        From then on this client logs in again with that password after a reconnect. A refusal (e.g.
        `nick_registered` for a wrong old password) raises `ServerError`.
        """
        ref = next(self._refs)
        request = Register(password=password, old_password=old_password, ref=ref)
        self._check(request)
        self._credentials.registering(ref, password)
        reply = await self._request(request, answer_to(Registration, ref, None), wait)
        return reply if isinstance(reply, Registration) else None

    async def unregister(self, password: str, *, wait: bool = True) -> Registration | None:
        """Drop the registration of our nick (`password` is its current password)."""
        ref = next(self._refs)
        request = Unregister(password=password, ref=ref)
        self._check(request)
        self._credentials.registering(ref, None)
        reply = await self._request(request, answer_to(Registration, ref, None), wait)
        return reply if isinstance(reply, Registration) else None

    async def set_topic(self, room: str, topic: str, *, wait: bool = True) -> None:
        """Set `room`'s topic ("" clears it)."""
        request = SetTopic(room=room, topic=topic, ref=next(self._refs))
        self._check(request)
        key = fold(room)
        await self._request(request, lambda m: isinstance(m, TopicChanged) and fold(m.room) == key, wait)

    async def set_away(self, message: str | None, *, wait: bool = True) -> None:
        """Mark us away with `message`, or back with None."""
        request = SetAway(message=message or None, ref=next(self._refs))
        self._check(request)
        await self._request(request, lambda m: isinstance(m, AwayChanged) and self._is_mine(m.nick), wait)

    async def who(self, room: str, *, wait: bool = True) -> RoomState | None:
        """Ask for `room`'s topic and members."""
        ref = next(self._refs)
        reply = await self._request(Who(room=room, ref=ref), answer_to(RoomState, ref, room), wait)
        return reply if isinstance(reply, RoomState) else None

    async def list_rooms(self, *, wait: bool = True) -> RoomList | None:
        """Ask for the list of rooms."""
        ref = next(self._refs)
        reply = await self._request(ListRooms(ref=ref), answer_to(RoomList, ref, None), wait)
        return reply if isinstance(reply, RoomList) else None

    async def stats(self, nick: str | None = None, *, wait: bool = True) -> StatsReport | None:
        """Ask for the server's figures, or for those of `nick`'s connection (server admins only)."""
        ref = next(self._refs)
        reply = await self._request(GetStats(nick=nick, ref=ref), answer_to(StatsReport, ref, None), wait)
        return reply if isinstance(reply, StatsReport) else None

    async def moderate(self, request: ModerationRequest, *, wait: bool = True) -> Message | None:
        """Send a moderation request (`Kick`, `Ban`, `Unban`, `ListBans`, `Mute`, `Unmute`, `Op`, `Deop`,
        `SetMode`, `Invite`; its `ref` is set here) and, if `wait`, return the answer: the `Ack` of the stored
        action, the `BanList` for `ListBans`, the `RoomState` for `SetMode`. A refusal (e.g. `not_operator`)
        raises `ServerError`.
        """
        ref = next(self._refs)
        request = replace(request, ref=ref)
        self._check(request)
        if isinstance(request, ListBans):
            answer = answer_to(BanList, ref, request.room)
        elif isinstance(request, SetMode):
            answer = answer_to(RoomState, ref, request.room)
        else:
            answer = answer_to(Ack, ref, None)
        return await self._request(request, answer, wait)

    async def fetch_history(
        self,
        room: str | None = None,
        *,
        peer: str | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
        wait: bool = True,
        forward: bool = False,
    ) -> History | None:
        """Fetch stored messages of `room`, or the direct messages (with `peer`, or all when room is None).

        One page of the range between `after` and `before`: its newest messages, or with `forward` its
        oldest (`History.more` says whether the range goes on past the page that way; `fetch_forward` pages
        through it all).
        """
        ref = next(self._refs)
        request = FetchHistory(
            room=room,
            direct=room is None,
            peer=peer,
            before=before,
            after=after,
            limit=limit,
            forward=forward or None,
            ref=ref,
        )
        self._check(request)
        reply = await self._request(request, answer_to(History, ref, room), wait)
        return reply if isinstance(reply, History) else None

    async def fetch_forward(
        self,
        room: str | None = None,
        *,
        after: int,
        before: int | None = None,
        peer: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[History]:
        """Page forward, oldest first, through the stored messages after id `after` (and before `before`):
        yields each page until the server says the range holds no more (`more` false).

        This is how a gap is filled, e.g. the messages a resume reported as `History.skipped`: `after` = the
        last id seen before it, `before` = the first id the resume gave. Each page is also delivered as a
        `History` event, like any page. Raises like `fetch_history` (`NotConnected`, `ServerError`...).
        """
        while True:
            page = await self.fetch_history(
                room, peer=peer, after=after, before=before, limit=limit, forward=True
            )
            if page is None:  # not reachable with wait=True; keeps the type checker honest
                return
            yield page
            if not page.more or not page.messages:
                return
            after = page.messages[-1].id

    # -- Files -------------------------------------------------------------------------------------------

    @property
    def transfers(self) -> tuple[TransferInfo, ...]:
        """Every file transfer of this run (running and ended), oldest first."""
        return self._transfers.infos()

    @property
    def file_policy(self) -> FilePolicy | None:
        """What the server takes (chunk size, window, largest file); None offline or if it takes no files."""
        return self._session.welcome.files if self._session is not None else None

    @property
    def files_supported(self) -> bool | None:
        """Whether the server takes files (None while no session has said)."""
        if self._session is None:
            return None
        return self._session.welcome.files is not None

    def file_offer(self, offer_id: int) -> FileOffered | None:
        """The file offer with this message id, if the client has seen it (live, in history, or ours)."""
        return self._transfers.offer(offer_id)

    def transfer(self, number: int) -> Transfer | None:
        """The transfer with this number (as shown in `TransferInfo.number`)."""
        return self._transfers.get(number)

    async def send_file(
        self, path: str | Path, *, room: str | None = None, to: str | None = None
    ) -> Transfer:
        """Offer the file at `path` to `room` or to nick `to`, and upload it in the background.

        Returns at once with the `Transfer` (its `wait()` returns when the offer is stored); progress comes
        as `TransferUpdate` events. While offline, the upload waits for the connection. Raises
        `TransferError` (``unreadable``) if `path` is not a readable file, `FilesUnsupported` if the server
        takes no files, `InvalidRequest` for a bad room or nick.
        """
        self._check_open()
        if (room is None) == (to is None):
            raise ClientError("send_file needs exactly one of room and to")
        source = Path(path).expanduser()
        size = await asyncio.to_thread(upload_size, source)
        name = safe_name(source.name, "file")
        check_offer(name, size, room=room, to=to, limits=self.limits)
        if self.files_supported is False:
            raise FilesUnsupported("this server takes no files")
        return self._transfers.start_upload(source, size, name, room=room, to=to)

    def get_file(self, offer_id: int, folder: str | Path | None = None) -> Transfer:
        """Download the file offered as message `offer_id` into `folder` (default: the downloads folder).

        Returns at once with the `Transfer`; its `wait()` returns the final `TransferInfo` (whose `path` is
        the saved file) once the SHA-256 matched, or raises `ChecksumMismatch` (nothing is kept) or another
        `TransferError`. Raises `UnknownFile` for an offer the client has not seen.
        """
        self._check_open()
        if self.files_supported is False:
            raise FilesUnsupported("this server takes no files")
        return self._transfers.start_download(offer_id, Path(folder).expanduser() if folder else None)

    async def wait_transfers(self, idle_timeout: float) -> bool:
        """Wait until every transfer has ended; False if none made progress for `idle_timeout` seconds."""
        return await self._transfers.wait_all(idle_timeout)

    def cancel_transfer(self, number: int) -> bool:
        """Cancel a transfer (an upload's partial copy on the server and a download's partial file go too).

        False if there is no running transfer with this number.
        """
        return self._transfers.cancel(number)
