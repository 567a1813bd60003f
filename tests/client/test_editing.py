"""Input-line editing without a UI: commands parsing, Tab completion, Up/Down history."""

from __future__ import annotations

import pytest

from chat_client.model import commands as cmd
from chat_client.model.editing import InputHistory, complete

NICKS = ["Bobby", "bob", "carol"]
ROOMS = ["lobby", "dev", "design"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", cmd.SayCommand("hello")),
        ("//slash", cmd.SayCommand("/slash")),
        ("/me waves", cmd.MeCommand("waves")),
        ("/join #dev", cmd.JoinCommand("dev")),
        ("/j dev", cmd.JoinCommand("dev")),
        ("/leave", cmd.LeaveCommand(None, None)),
        ("/part dev gone home", cmd.LeaveCommand("dev", "gone home")),
        ("/msg bob hi  there", cmd.MsgCommand("bob", "hi  there")),
        ("/msg bob", cmd.MsgCommand("bob", None)),
        ("/nick zed", cmd.NickCommand("zed")),
        ("/topic", cmd.TopicCommand(None)),
        ("/topic new topic", cmd.TopicCommand("new topic")),
        ("/away lunch", cmd.AwayCommand("lunch")),
        ("/away", cmd.AwayCommand(None)),
        ("/who", cmd.WhoCommand(None)),
        ("/rooms", cmd.RoomsCommand()),
        ("/help join", cmd.HelpCommand("join")),
        ("/QUIT bye", cmd.QuitCommand("bye")),
    ],
)
def test_parse(line: str, expected: cmd.Command) -> None:
    """Each command line parses to its typed command."""
    assert cmd.parse(line) == expected


@pytest.mark.parametrize("line", ["/frobnicate", "/join", "/join a b c", "/me", "/msg", "/nick"])
def test_parse_errors_say_what_to_do(line: str) -> None:
    """Unknown commands and missing arguments raise CommandError with a usage hint."""
    with pytest.raises(cmd.CommandError, match=r"usage|unknown"):
        cmd.parse(line)


def test_help_lists_every_command() -> None:
    """/help names all eleven commands; /help join only that one."""
    text = "\n".join(cmd.help_text())
    for name in ("join", "leave", "nick", "msg", "me", "topic", "away", "who", "rooms", "help", "quit"):
        assert f"/{name}" in text
    assert cmd.help_text("join")[0].startswith("/join ROOM")


def test_complete_nick_at_line_start_adds_colon() -> None:
    """A nick completed at the start of the line is addressed with ': '."""
    result = complete("car", 3, nicks=NICKS, rooms=ROOMS)
    assert result is not None
    assert (result.value, result.cursor) == ("carol: ", 7)


def test_complete_cycles_through_candidates_keeping_their_case() -> None:
    """'bo' matches Bobby and bob (case-insensitively); Tab again cycles."""
    first = complete("hi bo", 5, nicks=NICKS, rooms=ROOMS)
    assert first is not None
    assert first.value == "hi Bobby "
    second = complete(first.value, first.cursor, nicks=NICKS, rooms=ROOMS, previous=first)
    assert second is not None
    assert second.value == "hi bob "
    third = complete(second.value, second.cursor, nicks=NICKS, rooms=ROOMS, previous=second)
    assert third is not None
    assert third.value == "hi Bobby "


def test_complete_commands_and_rooms() -> None:
    """A leading /word completes commands; after /join, rooms."""
    command = complete("/jo", 3, nicks=NICKS, rooms=ROOMS)
    assert command is not None
    assert command.value == "/join "
    room = complete("/join de", 8, nicks=NICKS, rooms=ROOMS)
    assert room is not None
    assert room.candidates == ("dev", "design")
    assert complete("zz", 2, nicks=NICKS, rooms=ROOMS) is None


def test_history_browses_and_keeps_the_draft() -> None:
    """Up walks back through sent lines, Down returns to the draft being typed."""
    history = InputHistory(size=3)
    for line in ("one", "two", "two", "three", "four"):
        history.add(line)
    assert history.previous("draft") == "four"
    assert history.previous("four") == "three"
    assert history.previous("three") == "two"
    assert history.previous("two") is None  # only three lines are kept
    assert history.next() == "three"
    assert history.next() == "four"
    assert history.next() == "draft"
    assert history.next() is None
