"""One example of every message type: round-tripped by the tests and shown (as hex) in docs/protocol.md.

Run `python -m tests.protocol.examples` to print the hex of each example, ready to paste into the spec.
"""

from __future__ import annotations

from shared import (
    Ack,
    AwayChanged,
    Ban,
    BanEntry,
    BanList,
    CancelFile,
    ChangeNick,
    Delete,
    Deleted,
    Deop,
    Edit,
    Edited,
    Error,
    FetchHistory,
    Figure,
    FileChunk,
    FileData,
    FileDone,
    FileOffered,
    FileProgress,
    GetFile,
    GetStats,
    Hello,
    History,
    Invite,
    Join,
    Joined,
    Kick,
    Leave,
    Left,
    Limits,
    ListBans,
    ListRooms,
    MarkRead,
    Member,
    Message,
    Moderated,
    Mute,
    NickChanged,
    NotifyLevel,
    NotifySettings,
    OfferFile,
    Ok,
    Op,
    Ping,
    Pong,
    Quit,
    React,
    Reacted,
    Reaction,
    ReadMarker,
    Register,
    Registration,
    RoomList,
    RoomState,
    RoomSummary,
    Said,
    Say,
    Search,
    SearchHit,
    SearchResults,
    SetAway,
    SetKeywords,
    SetMode,
    SetNotify,
    SetTopic,
    SignedOff,
    SnippetPart,
    StatsReport,
    Tell,
    Told,
    TopicChanged,
    Typing,
    Unban,
    Unmute,
    Unreact,
    Unreacted,
    Unregister,
    Welcome,
    Who,
    encode,
)
from shared.messages import SessionInfo, Sessions

TS = 1_763_750_000_000  # 2025-11-21T18:33:20Z in milliseconds
#: The file of the file-transfer examples: 12 bytes, and their SHA-256.
FILE_BYTES = b"hello, file\n"
FILE_SHA256 = "b33f4304b9a6bd81704e55c473a4133a4922f034c1c489cb05428cc1140b042c"

CLIENT_EXAMPLES: list[Message] = [
    Hello(proto="mpchat", version=1, nick="alice", client="mpchat-tui/0.1", ref=1),
    Join(room="lobby", after=41, ref=2),
    Leave(room="lobby", reason="lunch"),
    Say(room="lobby", text="hello, world", client_msg_id="c-7", ref=3),
    Tell(to="bob", text="psst", ref=4),
    ChangeNick(nick="alice2"),
    Hello(
        proto="mpchat", version=1, nick="alice", password="club secret", nick_password="correct horse", ref=1
    ),
    ChangeNick(nick="alice", password="correct horse", ref=8),
    Register(password="correct horse", ref=10),
    Register(password="new horse", old_password="correct horse", ref=11),
    Unregister(password="new horse", ref=12),
    SetTopic(room="lobby", topic="Friday demo"),
    SetAway(message="back at 3"),
    ListRooms(ref=5),
    Who(room="lobby", ref=6),
    FetchHistory(room="lobby", before=100, limit=50, ref=7),
    Quit(reason="bye"),
    Ping(token=9),
    Pong(token=9),
    OfferFile(name="notes.txt", size=12, sha256=FILE_SHA256, room="lobby", client_msg_id="c-8", ref=11),
    FileChunk(upload=1, offset=0, data=FILE_BYTES, ref=11),
    GetFile(id=44, offset=0, ref=12),
    CancelFile(upload=1),
    Kick(room="lobby", nick="mallory", reason="spam", ref=11),
    Ban(room="lobby", nick="mallory", by_address=True, duration=3600, reason="spam", ref=12),
    Unban(room="lobby", nick="mallory", ref=13),
    ListBans(room="lobby", ref=14),
    Mute(room="lobby", nick="mallory", duration=600, ref=15),
    Unmute(room="lobby", nick="mallory", ref=16),
    Op(room="lobby", nick="bob", ref=17),
    Deop(room="lobby", nick="bob", ref=18),
    SetMode(room="lobby", topic_lock=True, key="s3cret", ref=19),
    Invite(room="lobby", nick="carol", ref=20),
    GetStats(nick="bob", ref=21),
    Search(query='deploy -"next week"', room="lobby", limit=20, ref=22),
    Typing(room="lobby"),
    Say(room="lobby", text="agreed", reply_to=42, ref=22),
    Edit(id=42, text="hello, world!", ref=23),
    Delete(id=42, ref=24),
    React(id=42, reaction="\U0001f44d", ref=25),
    Unreact(id=42, reaction="\U0001f44d", ref=26),
    MarkRead(room="lobby", id=42, ref=22),
    SetNotify(room="lobby", level="all", ref=23),
    SetKeywords(keywords=("deploy", "lunch"), ref=24),
]

SERVER_EXAMPLES: list[Message] = [
    Welcome(
        version=1, nick="alice", server="mpchat on lanbox", ts=TS, limits=Limits(), ping_interval=60, ref=1
    ),
    Error(code="nick_taken", message="nick 'alice' is in use", fatal=True, ref=1),
    Ack(id=42, ts=TS, client_msg_id="c-7", ref=3),
    Ok(ref=8),
    ReadMarker(room="lobby", id=42, ref=22),
    NotifySettings(levels=(NotifyLevel(room="lobby", level="all"),), keywords=("deploy", "lunch"), ref=24),
    Sessions(
        sessions=(
            SessionInfo(id=7, client="mpchat-tui", since=TS),
            SessionInfo(id=12, client="mpchat", since=TS),
        ),
        ts=TS,
    ),
    Said(id=42, room="lobby", nick="alice", text="hello, world", ts=TS),
    Told(id=43, nick="alice", to="bob", text="psst", ts=TS),
    Joined(room="lobby", nick="alice", ts=TS),
    Left(room="lobby", nick="alice", ts=TS, reason="lunch"),
    SignedOff(nick="alice", ts=TS, reason="connection lost"),
    NickChanged(old="alice", new="alice2", ts=TS),
    Registration(nick="alice", registered=True, ref=10),
    Error(code="nick_registered", message="nick 'alice' is registered: give its password", fatal=True, ref=1),
    Error(code="too_many_attempts", message="too many wrong passwords; wait and retry", retry_after_ms=42000),
    TopicChanged(room="lobby", topic="Friday demo", nick="alice", ts=TS),
    AwayChanged(nick="alice", ts=TS, message="back at 3"),
    RoomList(rooms=(RoomSummary(name="lobby", topic="Friday demo", members=3),), ref=5),
    RoomState(
        room="lobby",
        topic="Friday demo",
        members=(Member(nick="alice", op=True), Member(nick="bob", away="brb")),
        ref=6,
    ),
    History(
        room="lobby", messages=(Said(id=42, room="lobby", nick="alice", text="hi", ts=TS),), more=True, ref=7
    ),
    Ping(token=10),
    Pong(token=10),
    Typing(room="lobby", active=False, nick="bob"),
    SearchResults(
        hits=(
            SearchHit(
                id=42,
                nick="alice",
                ts=TS,
                room="lobby",
                snippet=(
                    SnippetPart(text="we "),
                    SnippetPart(text="deploy", match=True),
                    SnippetPart(text=" at 3"),
                ),
            ),
        ),
        more=True,
        ref=22,
    ),
    FileProgress(upload=1, offset=0, ref=11),
    FileDone(upload=1, id=44, ts=TS, client_msg_id="c-8"),
    FileOffered(id=44, nick="alice", name="notes.txt", size=12, sha256=FILE_SHA256, ts=TS, room="lobby"),
    FileData(id=44, offset=0, size=12, data=FILE_BYTES, ref=12),
    Moderated(
        id=44,
        room="lobby",
        nick="alice",
        action="ban",
        ts=TS,
        target="mallory",
        reason="spam",
        until=TS + 3_600_000,
    ),
    BanList(
        room="lobby",
        bans=(
            BanEntry(
                nick="mallory", by="alice", ts=TS, address="192.0.2.7", until=TS + 3_600_000, reason="spam"
            ),
        ),
        ref=14,
    ),
    StatsReport(
        figures=(Figure(name="queued_bytes", value=0), Figure(name="sent_bytes_per_s", value=2.5)),
        nick="bob",
        ref=21,
    ),
    Edited(id=45, message_id=42, nick="alice", text="hello, world!", ts=TS, room="lobby"),
    Deleted(id=46, message_id=42, nick="alice", ts=TS, room="lobby"),
    Reacted(id=47, message_id=43, nick="bob", reaction="\U0001f44d", ts=TS, to="alice"),
    Unreacted(id=48, message_id=43, nick="bob", reaction="\U0001f44d", ts=TS, to="alice"),
    History(
        room="lobby",
        messages=(
            Said(
                id=42,
                room="lobby",
                nick="alice",
                text="hello, world!",
                ts=TS,
                edited=TS + 1000,
                reactions=(Reaction(reaction="\U0001f44d", nicks=("bob",)),),
                rev=47,
            ),
            Said(id=44, room="lobby", nick="bob", text="agreed", ts=TS, reply_to=42),
        ),
        events=(
            Edited(id=45, message_id=42, nick="alice", text="hello, world!", ts=TS + 1000, room="lobby"),
            Reacted(id=47, message_id=42, nick="bob", reaction="\U0001f44d", ts=TS + 2000, room="lobby"),
        ),
        ref=27,
    ),
]


def hex_block(message: Message) -> str:
    """The frame of `message` as the spec shows it: the header on one line, then 16 body bytes a line."""
    data = encode(message)
    lines = [data[:4].hex(" ") + "   # length " + str(len(data) - 4)]
    lines += [data[i : i + 16].hex(" ") for i in range(4, len(data), 16)]
    return "\n".join(lines)


def main() -> None:
    """Print each example as its frame in hex, for docs/protocol.md."""
    for message in CLIENT_EXAMPLES + SERVER_EXAMPLES:
        print(f"{message.TYPE}\n```hex\n{hex_block(message)}\n```\n")


if __name__ == "__main__":
    main()
