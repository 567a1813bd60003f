"""The table of answers and errors (each request's `answers` and `errors`, published as `x-answers` and
`x-errors` in docs/protocol.schema.json) held to the real server: every request type is sent, with a `ref`,
once where it succeeds and where feasible where it is refused; each frame that comes back with that `ref` must
be what the table says (one of its answers in order, or an `error` whose code the table lists), and a request
the table gives no direct answer gets none. tests/protocol/test_replies.py holds the same table to the
conformance transcripts and to docs/protocol.md."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable

from chat_server.server import ChatServer
from shared import (
    Ack,
    Ban,
    CancelFile,
    ChangeNick,
    Delete,
    Deop,
    Edit,
    Error,
    FetchHistory,
    FileChunk,
    FileProgress,
    GetFile,
    GetStats,
    Hello,
    Invite,
    Join,
    Kick,
    Leave,
    ListBans,
    ListRooms,
    MarkRead,
    Message,
    Mute,
    OfferFile,
    Op,
    Ping,
    Pong,
    React,
    Register,
    Say,
    Search,
    SetAway,
    SetKeywords,
    SetMode,
    SetNotify,
    SetTopic,
    Tell,
    Unban,
    Unmute,
    Unreact,
    Unregister,
    Who,
)
from shared.errors import ErrorCode
from shared.messages import PROTOCOL_NAME, PROTOCOL_VERSION
from shared.schema import SENT_BY_CLIENT, request_errors

from .client import ChatTestClient

ROOM = "replies"
#: Requests the table cannot be checked on: `quit` carries no `ref` (its answer is the end of the stream).
WITHOUT_REF = {"quit", "typing"}


class Asker:
    """Sends requests with fresh refs and checks what answers them against the table."""

    def __init__(self) -> None:
        self.refs = itertools.count(1000)
        self.asked: set[str] = set()
        self.refused: set[tuple[str, str]] = set()

    def _send(self, client: ChatTestClient, request: Message) -> int:
        ref = next(self.refs)
        client.send_unchecked(dataclasses.replace(request, ref=ref))  # type: ignore[misc]
        self.asked.add(request.TYPE)
        return ref

    def answered(self, client: ChatTestClient, request: Message, *expected: str) -> list[Message]:
        """Send `request`; its answers carrying the ref must be `expected`, in order, and in the table."""
        cls = type(request)
        assert expected, "use no_direct_answer for a request without answers"
        ref = self._send(client, request)
        got = [client.recv_until(lambda m, r=ref: getattr(m, "ref", None) == r) for _ in expected]
        assert [m.TYPE for m in got] == list(expected), f"{request.TYPE}: {got}"
        assert tuple(expected) == cls.ANSWERS[: len(expected)], f"{request.TYPE}: not its x-answers"
        return got

    def refused_with(self, client: ChatTestClient, request: Message, code: ErrorCode) -> None:
        """Send `request`; the first frame carrying its ref is an `error` with `code`, in the table."""
        ref = self._send(client, request)
        got = client.recv_until(lambda m: getattr(m, "ref", None) == ref)
        assert isinstance(got, Error), f"{request.TYPE}: expected error {code}, got {got!r}"
        assert got.code == code.value, f"{request.TYPE}: expected {code}, got {got.code} ({got.message})"
        assert code in request_errors(type(request)), f"{request.TYPE}: {code} is not in its x-errors"
        self.refused.add((request.TYPE, code.value))

    def no_direct_answer(self, client: ChatTestClient, request: Message) -> None:
        """Send `request`, then a `list_rooms` (handled after it, in order): nothing carried the first ref
        by the time the second is answered, and the table says there is no direct answer."""
        assert type(request).ANSWERS == (), f"{request.TYPE}: the table gives it answers"
        ref = self._send(client, request)
        barrier = next(self.refs)
        client.send(ListRooms(ref=barrier))
        client.recv_until(lambda m: getattr(m, "ref", None) == barrier)
        stray = [m for m in client.pending if getattr(m, "ref", None) == ref]
        assert stray == [], f"{request.TYPE} got a direct answer: {stray}"


def test_every_request_is_answered_as_the_table_says(
    server: ChatServer, login: Callable[..., ChatTestClient]
) -> None:
    """Each request type, sent to our server: its answers and refusals are those of its x-answers and
    x-errors (removing an entry from a request's `errors` or `answers` makes this fail)."""
    alice = login("alice", [ROOM])  # the first joiner: the room's operator
    bob = login("bob", [ROOM])
    carol = login("carol", [])
    ask = Asker()

    # Connection and chat.
    ask.answered(alice, Ping(token=5), "pong")
    ask.no_direct_answer(alice, Pong(token=5))
    ask.refused_with(
        alice, Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="x"), ErrorCode.ALREADY_LOGGED_IN
    )
    ask.answered(alice, Say(room=ROOM, text="hello"), "ack")
    ask.refused_with(alice, Say(room="elsewhere", text="hello"), ErrorCode.NOT_IN_ROOM)
    ask.refused_with(alice, Say(room=ROOM, text="\x1b[2J"), ErrorCode.INVALID_TEXT)
    ask.answered(alice, Tell(to="bob", text="psst"), "ack")
    ask.refused_with(alice, Tell(to="ghost", text="psst"), ErrorCode.NO_SUCH_NICK)
    ask.answered(alice, FetchHistory(room=ROOM), "history")

    # Conversations: replies, edits, deletions, reactions (section 6.3).
    (said,) = ask.answered(bob, Say(room=ROOM, text="edit me"), "ack")
    assert isinstance(said, Ack)
    ask.answered(alice, Say(room=ROOM, text="a reply", reply_to=said.id), "ack")
    ask.refused_with(alice, Say(room=ROOM, text="a reply", reply_to=10**9), ErrorCode.NO_SUCH_MESSAGE)
    ask.refused_with(alice, Tell(to="bob", text="a reply", reply_to=said.id), ErrorCode.NO_SUCH_MESSAGE)
    ask.answered(bob, Edit(id=said.id, text="edited"), "ack")
    ask.refused_with(alice, Edit(id=said.id, text="not mine"), ErrorCode.FORBIDDEN)
    ask.refused_with(carol, Edit(id=said.id, text="not seen"), ErrorCode.NO_SUCH_MESSAGE)
    ask.answered(alice, React(id=said.id, reaction="\U0001f44d"), "ack")
    ask.refused_with(alice, React(id=said.id, reaction="nope"), ErrorCode.INVALID_REACTION)
    ask.refused_with(carol, React(id=said.id, reaction=":x:"), ErrorCode.NO_SUCH_MESSAGE)
    ask.answered(alice, Unreact(id=said.id, reaction="\U0001f44d"), "ack")
    ask.refused_with(alice, Unreact(id=said.id, reaction="\U0001f44d"), ErrorCode.NO_SUCH_REACTION)
    ask.refused_with(bob, Delete(id=10**9), ErrorCode.NO_SUCH_MESSAGE)
    ask.answered(bob, Delete(id=said.id), "ack")
    ask.refused_with(alice, FetchHistory(room="elsewhere"), ErrorCode.NOT_IN_ROOM)
    ask.refused_with(alice, FetchHistory(), ErrorCode.INVALID_FIELD)
    ask.answered(alice, Search(query="hello"), "search_results")
    ask.refused_with(alice, Search(query="hello", room="elsewhere"), ErrorCode.NOT_IN_ROOM)
    ask.refused_with(alice, Search(query="x" * 300), ErrorCode.TOO_LONG)
    ask.refused_with(alice, Search(query="-hello"), ErrorCode.INVALID_FIELD)

    # Rooms.
    ask.answered(alice, Join(room="second"), "room_state", "history")
    ask.answered(alice, Leave(room="second"), "ok")
    ask.refused_with(alice, Leave(room="second"), ErrorCode.NOT_IN_ROOM)
    ask.answered(alice, SetTopic(room=ROOM, topic="Friday demo"), "ok")
    ask.refused_with(alice, SetTopic(room="elsewhere", topic="x"), ErrorCode.NOT_IN_ROOM)
    ask.answered(carol, Who(room=ROOM), "room_state")
    ask.refused_with(carol, Who(room="nosuchroom"), ErrorCode.NO_SUCH_ROOM)
    ask.answered(carol, ListRooms(), "room_list")
    ask.answered(alice, SetAway(message="brb"), "ok")

    # Attention.
    ask.answered(alice, MarkRead(room=ROOM, id=1), "read_marker")
    ask.answered(alice, MarkRead(peer="bob", id=1), "read_marker")
    ask.refused_with(carol, MarkRead(room=ROOM, id=1), ErrorCode.NOT_IN_ROOM)
    ask.refused_with(alice, MarkRead(room=ROOM, id=2**53 - 1), ErrorCode.INVALID_FIELD)
    ask.answered(alice, SetNotify(room=ROOM, level="all"), "notify_settings")
    ask.refused_with(alice, SetNotify(level="all"), ErrorCode.INVALID_FIELD)
    ask.answered(alice, SetKeywords(keywords=("deploy",)), "notify_settings")
    ask.refused_with(alice, SetKeywords(keywords=tuple(f"w{n}" for n in range(33))), ErrorCode.TOO_LONG)

    # Nicks and accounts.
    ask.refused_with(alice, ChangeNick(nick="bob"), ErrorCode.NICK_TAKEN)
    ask.answered(carol, ChangeNick(nick="carol2"), "ok")
    ask.refused_with(carol, Unregister(password="pw"), ErrorCode.NOT_REGISTERED)
    ask.refused_with(carol, Register(password=""), ErrorCode.INVALID_FIELD)
    ask.answered(carol, Register(password="pw"), "registration")
    ask.refused_with(carol, Register(password="new"), ErrorCode.NICK_REGISTERED)
    ask.answered(carol, Unregister(password="pw"), "registration")
    ask.refused_with(alice, GetStats(), ErrorCode.NOT_ADMIN)

    # Moderation (alice is the room's operator).
    ask.refused_with(bob, Kick(room=ROOM, nick="alice"), ErrorCode.NOT_OPERATOR)
    ask.refused_with(carol, ListBans(room=ROOM), ErrorCode.NOT_IN_ROOM)
    ask.refused_with(alice, Kick(room=ROOM, nick="ghost"), ErrorCode.NO_SUCH_NICK)
    ask.refused_with(alice, Ban(room=ROOM, nick="bob", duration=0), ErrorCode.INVALID_FIELD)
    ask.refused_with(alice, Unban(room=ROOM, nick="ghost"), ErrorCode.NO_SUCH_NICK)
    ask.answered(alice, ListBans(room=ROOM), "ban_list")
    ask.answered(alice, Mute(room=ROOM, nick="bob"), "ack")
    ask.refused_with(bob, Say(room=ROOM, text="let me speak"), ErrorCode.MUTED)
    ask.answered(alice, Unmute(room=ROOM, nick="bob"), "ack")
    ask.refused_with(alice, Unmute(room=ROOM, nick="bob"), ErrorCode.NO_SUCH_NICK)
    ask.answered(alice, Op(room=ROOM, nick="bob"), "ack")
    ask.answered(alice, Deop(room=ROOM, nick="bob"), "ack")
    ask.refused_with(alice, Deop(room=ROOM, nick="bob"), ErrorCode.NO_SUCH_NICK)
    ask.refused_with(alice, Invite(room=ROOM, nick="bob"), ErrorCode.ALREADY_IN_ROOM)
    ask.answered(alice, SetMode(room=ROOM, invite_only=True), "room_state")
    ask.refused_with(carol, Join(room=ROOM), ErrorCode.INVITE_ONLY)
    ask.answered(alice, SetMode(room=ROOM, invite_only=False, key="s3cret"), "room_state")
    ask.refused_with(carol, Join(room=ROOM), ErrorCode.BAD_KEY)
    ask.answered(alice, Ban(room=ROOM, nick="carol2"), "ack")
    ask.refused_with(carol, Join(room=ROOM, key="s3cret"), ErrorCode.BANNED)
    ask.answered(alice, Kick(room=ROOM, nick="bob"), "ack")
    ask.answered(alice, Invite(room=ROOM, nick="bob"), "ack")
    ask.answered(alice, Unban(room=ROOM, nick="carol2"), "ack")

    # Files.
    data = b"hello, file\n"
    digest = hashlib.sha256(data).hexdigest()
    ask.refused_with(alice, GetFile(id=999_999), ErrorCode.NO_SUCH_FILE)
    ask.refused_with(alice, CancelFile(upload=77), ErrorCode.NO_SUCH_FILE)
    ask.refused_with(alice, FileChunk(upload=77, offset=0, data=data), ErrorCode.NO_SUCH_FILE)
    offer = OfferFile(name="notes.txt", size=len(data), sha256=digest, room=ROOM)
    ask.refused_with(alice, dataclasses.replace(offer, room="elsewhere"), ErrorCode.NOT_IN_ROOM)
    ask.refused_with(alice, dataclasses.replace(offer, size=10**15), ErrorCode.FILE_TOO_LARGE)
    (progress,) = ask.answered(alice, offer, "file_progress")
    assert isinstance(progress, FileProgress)
    upload = progress.upload
    ask.refused_with(alice, FileChunk(upload=upload, offset=3, data=data), ErrorCode.BAD_OFFSET)
    (confirmed,) = ask.answered(alice, FileChunk(upload=upload, offset=0, data=data[:5]), "file_progress")
    assert isinstance(confirmed, FileProgress)
    assert confirmed.offset == 5
    ask.answered(alice, CancelFile(upload=upload), "ok")

    unasked = set(SENT_BY_CLIENT) - WITHOUT_REF - ask.asked
    assert unasked == set(), f"requests this test never sent: {sorted(unasked)}"
