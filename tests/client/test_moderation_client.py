"""Moderation in the client without a UI: parsing the commands, Tab completion of their nicks, and what the
model makes of `moderated` entries (live and from history), `ban_list` and operator flags."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from chat_client.model import commands as cmd
from chat_client.model.chat import ChatModel, LineKind
from chat_client.model.editing import complete
from chat_client.model.moderation import describe
from shared import (
    Ban,
    BanEntry,
    BanList,
    Deop,
    History,
    Invite,
    Joined,
    Kick,
    Left,
    ListBans,
    Member,
    Moderated,
    Mute,
    Op,
    RoomState,
    Said,
    SetMode,
    Unban,
    Unmute,
)

TS = 1_763_750_000_000


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/kick bob", Kick(room="den", nick="bob")),
        ("/kick bob way too loud", Kick(room="den", nick="bob", reason="way too loud")),
        ("/ban bob", Ban(room="den", nick="bob")),
        ("/ban bob 10m spam links", Ban(room="den", nick="bob", duration=600, reason="spam links")),
        ("/ban bob spam", Ban(room="den", nick="bob", reason="spam")),
        ("/ban -a bob 2h", Ban(room="den", nick="bob", by_address=True, duration=7200)),
        ("/unban bob", Unban(room="den", nick="bob")),
        ("/unban -a 127.0.0.2", Unban(room="den", address="127.0.0.2")),
        ("/bans", ListBans(room="den")),
        ("/mute bob 1d", Mute(room="den", nick="bob", duration=86400)),
        ("/mute bob 90 calm down", Mute(room="den", nick="bob", duration=90, reason="calm down")),
        ("/unmute bob", Unmute(room="den", nick="bob")),
        ("/op bob", Op(room="den", nick="bob")),
        ("/deop bob", Deop(room="den", nick="bob")),
        ("/invite carol", Invite(room="den", nick="carol")),
        ("/topiclock on", SetMode(room="den", topic_lock=True)),
        ("/inviteonly OFF", SetMode(room="den", invite_only=False)),
        ("/key s3cret", SetMode(room="den", key="s3cret")),
        ("/key -", SetMode(room="den", key="")),
    ],
)
def test_moderation_commands_build_their_requests(line: str, expected: object) -> None:
    """Each command builds its request for the current room."""
    command = cmd.parse(line)
    assert isinstance(command, cmd.ModerateCommand)
    assert command.request("den") == expected


def test_join_with_a_key_and_key_alone() -> None:
    assert cmd.parse("/join #den s3cret") == cmd.JoinCommand("den", "s3cret")
    assert cmd.parse("/key") == cmd.KeyCommand()


@pytest.mark.parametrize(
    "line",
    ["/kick", "/ban", "/ban -a", "/unban", "/unban -a", "/unban bob extra", "/op", "/op a b", "/topiclock",
     "/topiclock maybe", "/inviteonly", "/key a b", "/mute bob 0"],
)  # fmt: skip
def test_moderation_usage_errors(line: str) -> None:
    """A moderation command without its arguments says how it is written."""
    with pytest.raises(cmd.CommandError, match=r"usage|duration"):
        cmd.parse(line)


def test_help_lists_the_moderation_commands_and_tab_completes_their_nicks() -> None:
    text = "\n".join(cmd.help_text())
    for name in (
        "kick",
        "ban",
        "unban",
        "bans",
        "mute",
        "unmute",
        "op",
        "deop",
        "invite",
        "topiclock",
        "key",
    ):
        assert f"/{name}" in text
    assert cmd.help_text("ban")[0].startswith("/ban [-a] NICK [DURATION] [REASON]")
    result = complete("/kick bo", 8, nicks=["bob", "carol"], rooms=["den"])
    assert result is not None
    assert result.value == "/kick bob "
    result = complete("/ki", 3, nicks=[], rooms=[])
    assert result is not None
    assert result.value == "/kick "


def joined_model() -> ChatModel:
    """A model of alice in den (her room: she is its operator) with bob."""
    model = ChatModel("alice")
    model.apply(Joined(room="den", nick="alice", ts=TS, op=True))
    model.apply(RoomState(room="den", members=(Member(nick="alice", op=True), Member(nick="bob"))))
    return model


_ids = itertools.count(50)


def moderated(action: str, target: str | None = "bob", **fields: object) -> Moderated:
    """A moderation entry by alice in den, with an id of its own."""
    entry = Moderated(id=next(_ids), room="den", nick="alice", action=action, ts=TS, target=target)
    return dataclasses.replace(entry, **fields)


def texts(model: ChatModel) -> list[str]:
    return [line.text for line in model.buffers["#den"].lines]


def test_a_kick_shows_one_line_and_removes_the_member() -> None:
    model = joined_model()
    model.apply(moderated("kick", reason="spam"))
    model.apply(Left(room="den", nick="bob", ts=TS, reason="kicked by alice: spam"))
    assert texts(model)[-1] == "alice kicked bob (spam)"
    assert "bob left" not in "\n".join(texts(model))
    assert list(model.buffers["#den"].members) == ["alice"]


def test_op_and_modes_follow_the_entries() -> None:
    model = joined_model()
    buffer = model.buffers["#den"]
    model.apply(moderated("op"))
    assert buffer.members["bob"].op is True
    model.apply(moderated("deop"))
    assert buffer.members["bob"].op is False
    for action in ("lock_topic", "invite_only", "set_key"):
        model.apply(moderated(action, target=None))
    assert buffer.modes == {"topic_lock", "invite_only", "keyed"}
    model.apply(moderated("clear_key", target=None))
    assert buffer.modes == {"topic_lock", "invite_only"}
    assert texts(model)[-1] == "alice removed the room's key"


def test_history_replays_moderation_in_order_with_the_chat() -> None:
    model = ChatModel("carol")
    said = Said(id=49, room="den", nick="bob", text="buy pills", ts=TS)
    entry = Moderated(id=50, room="den", nick="alice", action="ban", ts=TS, target="bob", until=TS + 600_000)
    model.apply(History(room="den", messages=(said, entry)))
    lines = list(model.buffers["#den"].lines)
    assert [(line.kind, line.id) for line in lines] == [(LineKind.MESSAGE, 49), (LineKind.NOTICE, 50)]
    assert lines[1].text.startswith("alice banned bob until ")


def test_an_invitation_reaches_the_invited_outside_the_room() -> None:
    model = ChatModel("carol")
    model.apply(Moderated(id=51, room="den", nick="alice", action="invite", ts=TS, target="carol"))
    line = model.current_buffer.lines[-1]
    assert line.text == "alice invited you to den: /join den"
    assert line.mention
    assert "#den" not in model.buffers  # no buffer for a room carol is not in


def test_ban_list_and_untrusted_text_in_descriptions() -> None:
    model = joined_model()
    ban = BanEntry(nick="bob", by="alice", ts=TS, address="127.0.0.2", reason="spam")
    model.apply(BanList(room="den", bans=(ban,)))
    shown = [line.text for line in model.current_buffer.lines][-2:]
    assert shown[0] == "bans in den:"
    assert shown[1].startswith("  bob's address 127.0.0.2, by alice at ")
    assert shown[1].endswith("(spam)")
    hostile = Moderated(id=1, room="den", nick="alice", action="kick", ts=TS, target="bob", reason="[b]x\x1b")
    assert describe(hostile) == "alice kicked bob ([b]x\x1b)"  # stored as received; render makes it visible
    assert describe(moderated("frobnicate")) == "alice: frobnicate bob"  # an unknown action, shown as is
