"""The hub: who is online under which nick, which rooms exist, who is in each; and the fan-out seam.

Sessions: a registered nick may be logged in from several connections at once (`max_sessions_per_nick`).
Each connection is a `Client`; the sessions of one nick share one list (`Client.sessions`, the first is the
one `Hub.nicks` names) and one room table (`Client.rooms`), and every session is in each room's member list.
So fan-out needs no change for them: each session is a member like any other, gets every relay frame, and
the one that sent a message gets its ack in its place. What the others see is one member per nick: joins
and leaves apply to the nick (`enter`/`leave` put all its sessions in or out at once), and the room's people
(`people`: the first session of each nick) are what `room_state` lists and the room list counts.

Ownership: only the history thread (`chat_server.history.thread`) *changes* hub state, always under
`Hub.lock`; being the only writer, it may also read without the lock. Other threads (a reader serving
`FetchHistory` or `Search`, a reader relaying a `typing` with `publish`, `ChatServer.stats()`, tests) only
*read* it, under the lock. The lock is held for dictionary
and list operations only: never for I/O, never while calling out.

Fan-out goes through the `publish` methods: `Hub.publish(room, data, skip)` for one frame (joined, left,
topic...) and `Hub.publish_messages(room, run)` for a run of stored messages. Each takes the member snapshot
under the lock, releases it, and appends the same encoded bytes to each member's sendq. A later pub/sub
backplane that relays rooms between several server processes would wrap these methods (publish locally and
to the backplane; deliver what the backplane relays with the same local loop) without touching connection
code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shared.errors import ErrorCode
from shared.messages import NotifyLevel, ReadPosition
from shared.text import fold

from .replies import error_frame
from .sender.thread import SendQueue
from .tuning import Latch


@dataclass(slots=True)
class SessionAttention:
    """What an unregistered nick's session remembers of its attention (chat_server.history.attention)."""

    #: Read markers by conversation, the most recently moved last.
    read_markers: dict[str, ReadPosition] = field(default_factory=dict)
    #: Notification levels that are not the default, by conversation.
    levels: dict[str, NotifyLevel] = field(default_factory=dict)
    keywords: tuple[str, ...] = ()


class Client:
    """One connection as the chat sees it: nick, rooms, away message, and the send queue its frames go to.

    Chat fields (`nick`, `rooms`, `away`) are changed only by the history thread, under `Hub.lock`.
    """

    __slots__ = (
        "absent",
        "account",
        "agent",
        "attention",
        "away",
        "close",
        "closed",
        "ending",
        "id",
        "input_waiting",
        "key",
        "logged_out",
        "login_settled",
        "nick",
        "nick_wait",
        "overflow",
        "peer",
        "resume_token",
        "rooms",
        "sendq",
        "sessions",
        "since",
    )

    def __init__(
        self,
        conn_id: int,
        peer: str,
        sendq: SendQueue,
        close: Callable[[bytes | None, bool], None],
        overflow: bytes,
        input_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        self.id = conn_id
        self.peer = peer
        self.sendq = sendq
        #: Called (from any thread) to end the connection: send `last` (after everything queued, or instead
        #: of it when `abort` is true), then close.
        self.close = close
        #: The frame sent (instead of everything queued) to a client dropped for `sendq_exceeded`.
        self.overflow = overflow
        self.nick: str | None = None
        self.key: str | None = None  # fold(nick): the identity
        # the registered nick's key (shared.text.fold) once its password was verified; None otherwise
        self.account: str | None = None
        #: The rooms of the nick: one dict shared by all its sessions.
        self.rooms: dict[str, Room] = {}
        #: Every session of the nick, this one included, the oldest first: one list shared by all of them.
        self.sessions: list[Client] = [self]
        #: The client program named in the `hello` (for `welcome.sessions`), and when the login was welcomed.
        self.agent: str | None = None
        self.since = 0
        #: True for the session an always-on nick keeps while none of its sessions is connected (it has no
        #: connection: its send queue is closed; chat_server.history.presence).
        self.absent = False
        self.away: str | None = None
        #: The secret given in this session's `welcome`: a login that shows it replaces this connection.
        self.resume_token: str | None = None
        #: An unregistered nick's read markers and notification settings, kept for its session (history
        #: thread only; a registered nick's are stored: chat_server.history.attention).
        self.attention = SessionAttention()
        #: Set once the login is decided (welcome or refusal queued) or the connection is closing. The
        #: reader waits for it after `hello`, so nothing pipelined behind the hello is answered before it.
        self.login_settled = Latch()
        #: True once the connection is closing (set before `login_settled` is set by a close).
        self.closed = False
        #: True once the reader has stopped reading (its client quit or closed): a `Disconnect` follows.
        self.ending = False
        #: Whether input from the client is waiting unread (any thread; the end of stream counts).
        self.input_waiting = input_waiting
        #: Set by the history thread once this client's `Disconnect` is applied (its nick is free); created
        #: only when a login waits for that (history thread), so an idle connection does not pay for it.
        self.logged_out: Latch | None = None
        #: Set by the history thread when this client's login found its nick held by a client that may be
        #: leaving: the reader waits for that one's `logged_out` and asks once more (`Login.retry`).
        self.nick_wait: Latch | None = None

    def send(self, data: bytes) -> None:
        """Queue one encoded frame for this client; a client over its queue limit is dropped."""
        if not self.sendq.put(data):
            self.close(self.overflow, True)

    def send_numbered(self, data: bytes) -> int:
        """`send`, returning the frame's number in the send queue (`SendQueue.put_numbered`)."""
        within, number = self.sendq.put_numbered(data)
        if not within:
            self.close(self.overflow, True)
        return number

    def send_many(self, frames: list[bytes]) -> None:
        """Queue several encoded frames, in order, with one append."""
        if not self.sendq.put_many(frames):
            self.close(self.overflow, True)

    def __repr__(self) -> str:
        return f"<Client conn={self.id} nick={self.nick!r}>"


@dataclass(eq=False)
class Room:
    """A room: its shown name, topic, members, and whether it outlives its last member."""

    key: str
    name: str
    topic: str = ""
    #: Newest stored message id (0: none). A room with history or a topic stays listed when empty.
    last_id: int = 0
    members: list[Client] = field(default_factory=list)
    #: In cluster mode, how many nicks are in the room on the cluster's other servers (they are not
    #: `Client`s here: their own server delivers to them; chat_server.cluster.presence). 0 on a single server.
    elsewhere: int = 0

    @property
    def persistent(self) -> bool:
        """True if the room stays listed with no members (it has a topic or stored messages)."""
        return bool(self.topic) or self.last_id > 0


def people(room: Room) -> list[Client]:
    """The members of `room` as the others see them: one per nick (its first session), in order of arrival."""
    return [member for member in room.members if member.sessions[0] is member]


def people_count(room: Room) -> int:
    """How many nicks are in `room` (a nick with several sessions counts once; in cluster mode, with the
    nicks on the other servers)."""
    return sum(1 for member in room.members if member.sessions[0] is member) + room.elsewhere


def member_room(client: Client, name: str, ref: int | None) -> Room | None:
    """The room `name` if `client` is in it; else None, after telling `client` so (history thread)."""
    room = client.rooms.get(fold(name))
    if room is None:
        client.send(error_frame(ErrorCode.NOT_IN_ROOM, f"you are not in {name!r}", ref))
    return room


class Hub:
    """Rooms and nicks of this server process, and the one seam room fan-out goes through."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rooms: dict[str, Room] = {}
        self.nicks: dict[str, Client] = {}

    # -- Queries (any thread) ------------------------------------------------------------------------------

    def online(self) -> int:
        """How many nicks are logged in (an always-on nick none of whose sessions is connected: not)."""
        with self.lock:
            return sum(1 for client in self.nicks.values() if not client.absent)

    # -- Changes (history thread only) ---------------------------------------------------------------------

    def add_room(self, key: str, name: str, topic: str = "", last_id: int = 0) -> Room:
        """Create (or return the existing) room with this key."""
        with self.lock:
            room = self.rooms.get(key)
            if room is None:
                room = self.rooms[key] = Room(key=key, name=name, topic=topic, last_id=last_id)
            return room

    def enter(self, client: Client, room: Room) -> None:
        """Make `client`'s nick (every session of it) a member of `room`."""
        with self.lock:
            room.members.extend(client.sessions)
            client.rooms[room.key] = room

    def leave(self, client: Client, room: Room) -> None:
        """Take `client`'s nick (every session of it) out of `room`; forget the room if it is empty and has
        nothing to keep."""
        with self.lock:
            for session in client.sessions:
                room.members.remove(session)
            del client.rooms[room.key]
            if not room.members and not room.elsewhere and not room.persistent:
                self.rooms.pop(room.key, None)

    def count_elsewhere(self, room: Room, change: int) -> None:
        """In cluster mode: `change` more (or fewer) nicks are in `room` on other servers; forget the room if
        it is empty everywhere and has nothing to keep."""
        with self.lock:
            room.elsewhere += change
            if not room.members and not room.elsewhere and not room.persistent:
                self.rooms.pop(room.key, None)

    def attach(self, client: Client, holder: Client) -> None:
        """Make `client` one more session of `holder`'s nick: same nick, account, away message and rooms."""
        with self.lock:
            client.nick, client.key, client.account, client.away = (
                holder.nick,
                holder.key,
                holder.account,
                holder.away,
            )
            client.sessions = holder.sessions
            client.sessions.append(client)
            client.rooms = holder.rooms
            for room in client.rooms.values():
                room.members.append(client)

    def detach(self, client: Client) -> None:
        """Take `client` out of its nick's sessions (others remain): out of each room, and out of `nicks`."""
        with self.lock:
            client.sessions.remove(client)
            for room in client.rooms.values():
                room.members.remove(client)
            if client.key is not None and self.nicks.get(client.key) is client:
                self.nicks[client.key] = client.sessions[0]
            client.sessions, client.rooms = [client], {}
            client.key, client.resume_token = None, None

    def register(self, client: Client, nick: str) -> bool:
        """Give `client` the nick `nick`, unless another client holds it (under case folding)."""
        key = fold(nick)
        with self.lock:
            holder = self.nicks.get(key)
            if holder is not None and holder is not client:
                return False
            if client.key is not None and client.key != key:
                del self.nicks[client.key]
            self.nicks[key] = client
            client.nick, client.key = nick, key
            return True

    def holder(self, nick: str) -> Client | None:
        """The client holding `nick` (under case folding), if any (history thread)."""
        return self.nicks.get(fold(nick))

    def replace(self, old: Client, new: Client) -> None:
        """Give `new` everything `old` holds: its nick, its place in each of its rooms, its away message.

        For the others nothing changes: `new` takes `old`'s place in each member list, so nobody sees a
        departure or an arrival. `old` is left with no nick and no rooms (its later `Disconnect` is silent).
        """
        with self.lock:
            for room in old.rooms.values():
                room.members[room.members.index(old)] = new
            new.rooms, old.rooms = old.rooms, {}
            new.sessions = old.sessions
            new.sessions[new.sessions.index(old)] = new
            old.sessions = [old]
            if old.key is not None and self.nicks.get(old.key) is old:
                self.nicks[old.key] = new
            new.nick, new.key, new.away = old.nick, old.key, old.away
            new.resume_token = old.resume_token
            old.key, old.resume_token = None, None

    def unregister(self, client: Client) -> None:
        """Forget `client`'s nick (it stays in no room: call `leave` for each first)."""
        with self.lock:
            if client.key is not None and self.nicks.get(client.key) is client:
                del self.nicks[client.key]

    # -- Fan-out: the seam ---------------------------------------------------------------------------------

    def publish(self, room: Room, data: bytes, skip: Client | None = None) -> None:
        """Deliver one encoded frame to every member of `room` except `skip`."""
        with self.lock:
            members = tuple(room.members)
        for member in members:
            if member is not skip:
                member.send(data)

    def publish_messages(self, room: Room, run: list[tuple[Client | None, bytes, bytes]]) -> int:
        """Deliver consecutive stored messages of one room: `run` holds (sender, ack, relay) in id order.

        Each member gets every message's relay frame, except that a sender gets its ack in the place of its
        own message (a sender of None: another server's message, everyone gets the relay). One append per
        member for the whole run: the sender then writes the run to each member
        with one system call. Returns the relay frames delivered (for the counters: one multiplication).
        """
        with self.lock:
            members = tuple(room.members)
        if len(run) == 1:
            sender, ack, relay = run[0]
            for member in members:
                member.send(ack if member is sender else relay)
            return max(0, len(members) - 1)
        # Members who sent nothing in the run (nearly all of them) share one list of relay frames: put_many
        # copies the references, so the loop allocates nothing per recipient.
        relays = [relay for _sender, _ack, relay in run]
        senders = {sender for sender, _ack, _relay in run}
        for member in members:
            if member in senders:
                member.send_many([ack if sender is member else relay for sender, ack, relay in run])
            else:
                member.send_many(relays)
        return max(0, len(members) * len(run) - len(run))  # each message reaches every member but its sender

    def neighbours(self, client: Client) -> list[Client]:
        """Every session of `client`'s nick and everyone sharing at least one room with it, each once."""
        with self.lock:
            seen = {session.id: session for session in client.sessions}
            for room in client.rooms.values():
                for member in room.members:
                    seen.setdefault(member.id, member)
        return list(seen.values())

    def summaries(self) -> list[tuple[str, str, int]]:
        """(name, topic, member count) of every listed room, sorted by folded name (a nick counts once,
        however many sessions it has)."""
        with self.lock:
            rooms = [(room.key, room.name, room.topic, people_count(room)) for room in self.rooms.values()]
        return [(name, topic, count) for _key, name, topic, count in sorted(rooms)]

    def send_all(self, clients: Iterable[Client], data: bytes) -> None:
        """Deliver one encoded frame to each of `clients`."""
        for client in clients:
            client.send(data)
