"""What a client remembers across reconnects so that nothing is missed and nothing is shown twice.

* The rooms it is in: rejoined after every login.
* Per room (and for direct messages), the newest message id seen: the reconnect's `hello` asks the server for
  what came after it in every room (`hello.after`, `hello.rooms`) and in the direct messages
  (`hello.direct_after`), so resuming costs no join token however many rooms there are. A keyed room is
  rejoined with `Join(after=..., key=...)` instead (the login does not join keyed rooms).
* A server that predates `hello.after` (the protocol's version cannot tell) joins the rooms with a plain
  backfill: a resumed room's login answer that says older messages exist without saying how many were
  skipped (`more` without `skipped`) is such a backfill, and the client then resumes that room, and the direct
  messages, the old way (`Join(after=...)`, `FetchHistory(direct=True, after=...)`).
* Per room, the ids recently delivered (bounded): a message that arrives twice, say live and again in the
  replay, is delivered once. The client's own acknowledged messages are recorded too, so a replay does not
  hand them back.

Pure bookkeeping: no I/O. `ChatClient` asks it what to send after a login and what to drop from a replay.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from shared import (
    FetchHistory,
    History,
    Join,
    Joined,
    Left,
    Message,
    NickChanged,
    RoomState,
    Said,
    SignedOff,
    Told,
    fold,
)

#: How many message ids per room are remembered to drop duplicates.
SEEN_IDS_PER_ROOM = 2048
#: The key of the direct messages (no room name folds to it: "@" is not allowed in names).
DM_KEY = "@"
#: In place of a request's ref: a resume answered within the login (`hello.after`, `hello.direct_after`),
#: whose frames carry no ref.
IN_LOGIN = -1
#: In place of a request's ref: a resume sent again the old way, without a ref, after a server ignored
#: `hello.after` (never checked for that again).
RESENT = -2


@dataclass(frozen=True)
class LoginResume:
    """What a reconnect's `hello` asks for: the rooms to join, each room's last id, the last direct id."""

    rooms: tuple[str, ...] = ()
    after: dict[str, int] = field(default_factory=dict)
    direct_after: int | None = None


class RecentIds:
    """The last `size` ids seen in one room: a set for lookups, a deque for the eviction order."""

    def __init__(self, size: int = SEEN_IDS_PER_ROOM) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size

    def __contains__(self, item: int) -> bool:
        return item in self._ids

    def add(self, item: int) -> bool:
        """Remember `item`; return False if it was already known."""
        if item in self._ids:
            return False
        self._ids.add(item)
        self._order.append(item)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class ResumeState:
    """Joined rooms, last ids and recently seen ids (see the module docstring)."""

    def __init__(self) -> None:
        self._rooms: dict[str, str] = {}  # fold(room) -> room name, for every joined room
        self._last_id: dict[str, int] = {}  # fold(room) or DM_KEY -> newest message id seen
        self._seen: dict[str, RecentIds] = {}
        self._join_refs: dict[str, int] = {}  # fold(room) -> ref of the join whose history is awaited
        self._resume_refs: set[int] = set()
        self._keys: dict[str, str] = {}  # fold(room) -> the room's key, to rejoin a keyed room
        self._asked = LoginResume()  # what the last reconnect's hello asked for
        self._resends: list[Message] = []  # resumes to send again the old way (a server ignored hello.after)
        self._login_after: dict[str, int] = {}  # fold(room) -> the `after` the login asked, until it answers
        self._login_direct_after: int | None = None  # the `direct_after` the login asked

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms joined (and to rejoin)."""
        return tuple(self._rooms.values())

    def joined(self, room: str) -> None:
        """We are in `room` (the server said so, or we will join it at the next login)."""
        self._rooms.setdefault(fold(room), room)
        self._rooms[fold(room)] = room

    def remember_key(self, room: str, key: str | None) -> None:
        """`room`'s key (given to join it, or shown to us as its operator), for rejoining; None forgets it."""
        if key:
            self._keys[fold(room)] = key
        else:
            self._keys.pop(fold(room), None)

    def forget(self, room: str) -> None:
        """We left `room`: stop rejoining it and drop what we knew about it."""
        key = fold(room)
        for table in (self._rooms, self._last_id, self._seen, self._join_refs, self._keys):
            table.pop(key, None)

    def expect_join_reply(self, room: str, ref: int) -> None:
        """A join of `room` with request `ref` was sent: its history is a join reply."""
        self._join_refs[fold(room)] = ref

    def session_ended(self) -> None:
        """Answers to the old connection's joins will never come."""
        self._join_refs.clear()
        self._login_after.clear()
        self._resends.clear()

    def login_resume(self) -> LoginResume:
        """What a reconnect's `hello` asks for: every room but the keyed ones (`rooms`), each after the last
        id seen in it (`after`), and the direct messages after the last one seen (`direct_after`)."""
        rooms = tuple(room for key, room in self._rooms.items() if key not in self._keys)
        after = {room: self._last_id[fold(room)] for room in rooms if fold(room) in self._last_id}
        self._asked = LoginResume(rooms, after, self._last_id.get(DM_KEY))
        return self._asked

    def after_login(
        self, next_ref: Callable[[], int], *, resumed: bool, dm_backfill: int
    ) -> Iterator[Message]:
        """The requests that catch up after a login. After a reconnect whose `hello` came from
        `login_resume`, the login itself answers the rooms it listed and the direct messages (frames without a
        ref); a keyed room is rejoined after its last id. After the first login: the direct backfill."""
        asked = self._asked if resumed else LoginResume()
        self._asked = LoginResume()
        listed = {fold(room) for room in asked.rooms}
        if resumed:
            for key, room in self._rooms.items():
                if key in listed:
                    self._join_refs[key] = IN_LOGIN
                    continue
                ref = next_ref()
                self._join_refs[key] = ref
                self._resume_refs.add(ref)
                yield Join(room=room, after=self._last_id.get(key), key=self._keys.get(key), ref=ref)
        self._login_after = {fold(room): last for room, last in asked.after.items()}
        self._login_direct_after = asked.direct_after
        if asked.direct_after is not None:
            self._join_refs[DM_KEY] = IN_LOGIN
            return
        last_dm = self._last_id.get(DM_KEY)
        if last_dm is not None or dm_backfill > 0:
            ref = next_ref()
            self._resume_refs.add(ref)
            limit = None if last_dm is not None else dm_backfill
            yield FetchHistory(direct=True, after=last_dm, limit=limit, ref=ref)

    def take_resends(self) -> list[Message]:
        """Resumes to send again the old way, because the server ignored `hello.after` (see the docstring)."""
        resends, self._resends = self._resends, []
        return resends

    def note(self, key: str, message_id: int) -> bool:
        """Record a delivered message id; False if it was delivered before (a duplicate to drop)."""
        if not self._seen.setdefault(key, RecentIds()).add(message_id):
            return False
        if message_id > self._last_id.get(key, -1):
            self._last_id[key] = message_id
        return True

    def note_own(self, key: str, message_id: int) -> None:
        """Record the id of our own acknowledged message, so no replay delivers it back to us.

        It counts as seen for the resume too: in a room where we spoke last, the rejoin must still ask for
        what came after it (without an `after`, the server would send only its default backfill, and more
        missed messages than that would be lost without a word).
        """
        self._seen.setdefault(key, RecentIds()).add(message_id)
        if message_id > self._last_id.get(key, -1):
            self._last_id[key] = message_id

    def filter_history(self, history: History, is_pending_echo: Callable[[Said | Told], bool]) -> History:
        """Drop from a join's or resume's history what was already delivered or is our own pending message.

        A page asked for explicitly (`fetch_history`) is handed over whole: its ids are only learnt.
        """
        key = DM_KEY if history.direct else fold(history.room or "")
        join_ref = self._join_refs.get(key)
        is_join_reply = (
            (history.room is not None or history.direct)
            and join_ref is not None
            and history.ref in (join_ref, None)
        )
        if is_join_reply:
            del self._join_refs[key]
            if join_ref == IN_LOGIN and history.room is not None and self._resend_login_resume(key, history):
                # Nothing of this backfill is delivered: the resume sent again brings it all, in order.
                return replace(history, messages=(), events=None)
        if not (is_join_reply or history.ref in self._resume_refs):
            for item in history.messages:
                self.note(key, item.id)
            for event in history.events or ():
                self.note(key, event.id)
            return history
        self._resume_refs.discard(history.ref or IN_LOGIN)
        kept = tuple(
            item
            for item in history.messages
            if not (isinstance(item, Said | Told) and is_pending_echo(item)) and self.note(key, item.id)
        )
        # Events delivered live already are dropped from the replay like messages (each comes once).
        events = tuple(event for event in history.events or () if self.note(key, event.id))
        if len(kept) == len(history.messages) and len(events) == len(history.events or ()):
            return history
        return replace(history, messages=kept, events=events or None)

    def _resend_login_resume(self, key: str, history: History) -> bool:
        """True if a room the login resumed (`hello.after`) got a plain backfill, older messages left unsaid
        (`more` without `skipped`): the server ignored `after`, and that room, and the direct messages, are
        resumed again the old way."""
        after = self._login_after.pop(key, None)
        if after is None or not history.more or history.skipped:
            return False
        self._join_refs[key] = RESENT
        self._resends.append(Join(room=history.room or "", after=after))
        direct_after, self._login_direct_after = self._login_direct_after, None
        if direct_after is not None and self._join_refs.get(DM_KEY) == IN_LOGIN:
            self._join_refs[DM_KEY] = RESENT
            self._resends.append(FetchHistory(direct=True, after=direct_after))
        return True


def room_key(room: str) -> str:
    """The key of a room in the resume state."""
    return fold(room)


class Crowd:
    """Who else is in our rooms, as far as we heard: the size of the crowd that reconnects with us.

    The reconnect window grows with it (chat_client.net.backoff): after a server restart everyone in these
    rooms comes back at the same time. Pure bookkeeping from `room_state`, `joined`, `left`, `signed_off` and
    `nick` frames; it survives reconnects (the rooms are the same people until told otherwise).
    """

    def __init__(self) -> None:
        self._rooms: dict[str, set[str]] = {}  # fold(room) -> folded nicks of its members

    def peers(self, me: str) -> int:
        """How many people other than `me` share at least one room with us."""
        everyone: set[str] = set().union(*self._rooms.values()) if self._rooms else set()
        everyone.discard(fold(me))
        return len(everyone)

    def update(self, message: Message, me: str) -> None:
        """Learn from one frame from the server."""
        match message:
            case RoomState(room=room, members=members):
                self._rooms[fold(room)] = {fold(member.nick) for member in members}
            case Joined(room=room, nick=nick):
                self._rooms.setdefault(fold(room), set()).add(fold(nick))
            case Left(room=room, nick=nick):
                if fold(nick) == fold(me):
                    self._rooms.pop(fold(room), None)
                else:
                    self._rooms.get(fold(room), set()).discard(fold(nick))
            case SignedOff(nick=nick):
                for nicks in self._rooms.values():
                    nicks.discard(fold(nick))
            case NickChanged(old=old, new=new):
                for nicks in self._rooms.values():
                    if fold(old) in nicks:
                        nicks.discard(fold(old))
                        nicks.add(fold(new))
            case _:
                pass
