"""The model's side of conversations without a server: the two rules that keep a message from being shown
stale or twice whatever order pages and live events come in (docs/protocol.md, section 6.3), the quote of
a reply, the commands' parsing, and the plain mode's lines."""

from __future__ import annotations

import pytest

from chat_client.model import commands as cmd
from chat_client.model.chat import ChatModel, UpdateKind, reactions_summary, room_key
from chat_client.plain.linemode import format_line, format_update
from shared import DELETED_TEXT, Deleted, Edited, History, Reacted, Reaction, Said, Unreacted

TS = 1_763_750_000_000
ROOM = "lobby"


def said(message_id: int, text: str, nick: str = "alice", **state: object) -> Said:
    return Said(id=message_id, room=ROOM, nick=nick, text=text, ts=TS, **state)  # type: ignore[arg-type]


def model_with(*items: Said) -> ChatModel:
    model = ChatModel("bob")
    model.apply(History(room=ROOM, messages=items))
    return model


def line(model: ChatModel, message_id: int):  # type: ignore[no-untyped-def]
    found = model.buffers[room_key(ROOM)].find(message_id)
    assert found is not None
    return found


def test_a_live_event_changes_the_line_in_place() -> None:
    model = model_with(said(10, "helo"))
    changes = model.apply(Edited(id=11, message_id=10, nick="alice", text="hello", ts=TS + 5000, room=ROOM))
    shown = line(model, 10)
    assert (shown.text, shown.edited, shown.rev) == ("hello", (TS + 5000) / 1000, 11)
    assert [u.kind for u in changes.updated] == [UpdateKind.EDITED]
    assert room_key(ROOM) in changes.redraw
    assert len(model.buffers[room_key(ROOM)].lines) == 1  # in place: no second line


def test_an_event_older_than_the_shown_state_is_skipped() -> None:
    """Rule 2: a page showed message 10 as of event 50; a late event 40 (an older edit) changes nothing."""
    model = model_with(said(10, "third text", edited=TS, rev=50))
    changes = model.apply(Edited(id=40, message_id=10, nick="alice", text="second text", ts=TS, room=ROOM))
    assert line(model, 10).text == "third text"
    assert changes.updated == []


def test_a_page_older_than_the_shown_state_is_skipped_and_a_newer_one_applies() -> None:
    """Rule 1: a message entry replaces the line only when its rev is not smaller."""
    model = model_with(said(10, "hello"))
    model.apply(Reacted(id=20, message_id=10, nick="carol", reaction="👍", ts=TS, room=ROOM))
    model.apply(History(room=ROOM, messages=(said(10, "hello"),)))  # read before the reaction: rev absent
    assert reactions_summary(line(model, 10)) == "👍 1"
    newer = said(
        10, "hello!", edited=TS, rev=30, reactions=(Reaction(reaction="👍", nicks=("carol", "dan")),)
    )
    changes = model.apply(History(room=ROOM, messages=(newer,)))
    assert (line(model, 10).text, reactions_summary(line(model, 10))) == ("hello!", "👍 2")
    assert [u.kind for u in changes.updated] == [UpdateKind.REFRESHED]


def test_events_in_a_page_apply_once() -> None:
    model = model_with(said(10, "a"))
    page = History(
        room=ROOM,
        messages=(),
        events=(
            Reacted(id=11, message_id=10, nick="carol", reaction="🎉", ts=TS, room=ROOM),
            Reacted(id=12, message_id=10, nick="dan", reaction="🎉", ts=TS, room=ROOM),
            Unreacted(id=13, message_id=10, nick="carol", reaction="🎉", ts=TS, room=ROOM),
        ),
    )
    model.apply(page)
    model.apply(page)  # the same page again (a replay): nothing doubles
    assert line(model, 10).reactions == (Reaction(reaction="🎉", nicks=("dan",)),)


def test_a_deletion_leaves_a_tombstone_and_the_reply_quote_says_so() -> None:
    model = model_with(said(10, "a long first message that the quote will have to cut short somewhere"))
    model.apply(said(11, "agreed", nick="carol", reply_to=10))
    key = room_key(ROOM)
    assert (
        model.reply_quote(key, line(model, 11)) == "↳ alice: a long first message that the quote will have t…"
    )
    model.apply(Deleted(id=12, message_id=10, nick="alice", ts=TS, room=ROOM))
    assert line(model, 10).deleted
    assert line(model, 10).text == ""
    assert model.reply_quote(key, line(model, 11)) == "↳ alice: message deleted"
    assert (
        model.reply_quote(key, line(model, 11).__class__(0, line(model, 11).kind, "x", reply_to=99))
        == "↳ #99"
    )
    assert [r.id for r in model.replies_to(key, 10)] == [11]


def test_a_tombstone_from_history_shows_no_text() -> None:
    model = model_with(said(10, DELETED_TEXT, deleted=True, rev=12))
    assert line(model, 10).deleted
    assert line(model, 10).text == ""


def test_last_own_message_is_the_newest_editable_one() -> None:
    model = ChatModel("bob")
    model.apply(History(room=ROOM, messages=(said(1, "mine", nick="bob"), said(2, "theirs"))))
    model.switch(room_key(ROOM))
    own = model.last_own_message()
    assert own is not None
    assert own.id == 1
    model.apply(Deleted(id=3, message_id=1, nick="bob", ts=TS, room=ROOM))
    assert model.last_own_message() is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("s/teh/the/", cmd.SubstituteCommand("teh", "the")),
        ("s/a/b/g", cmd.SubstituteCommand("a", "b", every=True)),
        ("s/x\\/y/z/", cmd.SubstituteCommand("x/y", "z")),
        ("s/x/", cmd.SayCommand("s/x/")),
        ("s//x/", cmd.SayCommand("s//x/")),
        ("/reply 42 yes", cmd.ReplyCommand(42, "yes")),
        ("/reply #42 yes, really", cmd.ReplyCommand(42, "yes, really")),
        ("/edit 7 better", cmd.EditCommand(7, "better")),
        ("/delete 7", cmd.DeleteCommand(7)),
        ("/delete 7 spam", cmd.DeleteCommand(7, "spam")),
        ("/react 7 👍", cmd.ReactCommand(7, "👍")),
        ("/unreact 7 :tada:", cmd.UnreactCommand(7, ":tada:")),
    ],
)
def test_the_commands_parse(typed: str, expected: cmd.Command) -> None:
    assert cmd.parse(typed) == expected


@pytest.mark.parametrize(
    "typed",
    ["/reply", "/reply x hi", "/reply 4", "/edit 4", "/react 4", "/react 4 lol", "/delete", "/delete x"],
)
def test_malformed_commands_are_refused(typed: str) -> None:
    with pytest.raises(cmd.CommandError):
        cmd.parse(typed)


def test_plain_lines_show_ids_marks_quotes_and_reactions_safely() -> None:
    model = model_with(said(10, "hello"), said(11, "a reply", nick="ev\x1b[31mil", reply_to=10))
    key = room_key(ROOM)
    reply = line(model, 11)
    printed = format_line(reply, ROOM, quote=model.reply_quote(key, reply), local_time=False)
    first, quote = printed.split("\n")
    assert first.endswith(f"#11 {ROOM} <ev␛[31mil> a reply")
    assert quote.strip() == "↳ #10 alice: hello"
    assert "\x1b" not in printed
    changes = model.apply(Reacted(id=12, message_id=10, nick="bob", reaction="👍", ts=TS, room=ROOM))
    (update,) = changes.updated
    assert format_update(update, ROOM).endswith(f"{ROOM} -!- bob reacted 👍 to #10: 👍 1")
    changes = model.apply(Edited(id=13, message_id=10, nick="alice", text="hello!", ts=TS, room=ROOM))
    (update,) = changes.updated
    edited = format_update(update, ROOM).split("\n")
    assert edited[0].endswith(f"#10 {ROOM} (edited) <alice> hello!")
    assert edited[1].strip() == "+ 👍 1 (bob)"
    changes = model.apply(Deleted(id=14, message_id=10, nick="alice", ts=TS, room=ROOM))
    (update,) = changes.updated
    assert format_update(update, ROOM).endswith(f"#10 {ROOM} (message deleted) <alice>")
