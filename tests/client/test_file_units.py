"""The UI-free parts of file sharing: safe save names, progress figures, commands, completion, model lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chat_client.model import commands as cmd
from chat_client.model.chat import ChatModel, LineKind
from chat_client.model.editing import complete, path_candidates
from chat_client.net.events import Connected
from chat_client.net.progress import (
    Direction,
    RateMeter,
    TransferInfo,
    TransferState,
    TransferUpdate,
    describe,
    human_duration,
    human_size,
)
from chat_client.net.savename import MAX_NAME_BYTES, create_unique, numbered, safe_name
from chat_client.plain.linemode import format_line
from chat_client.tui.render import render_line
from shared import FileOffered, History, Joined, Welcome

TS = 1_763_750_000_000
SHA = "b33f4304b9a6bd81704e55c473a4133a4922f034c1c489cb05428cc1140b042c"

# -- Safe names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "saved"),
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd", "passwd"),
        ("..", "file-7"),
        (".", "file-7"),
        ("", "file-7"),
        ("a/b\\c", "c"),
        ("C:\\Windows\\system32\\evil.dll", "evil.dll"),
        ("/absolute/path.bin", "path.bin"),
        ("dir/", "file-7"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        ("\x1b[31mred\x1b[0m.txt", "[31mred[0m.txt"),
        ("cod\u202egnp.exe", "codgnp.exe"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("line\nbreak.txt", "linebreak.txt"),
        ("what?.txt", "what_.txt"),
        ("CON.txt", "_CON.txt"),
        ("trailing. ", "trailing"),
        ("\x00\x01", "file-7"),
    ],
)
def test_safe_name_keeps_one_harmless_component(offered: str, saved: str) -> None:
    """Only the last component survives, without controls, bidi, zero-width or leading dots."""
    assert safe_name(offered, "file-7") == saved


def test_safe_name_caps_the_length_and_keeps_the_extension() -> None:
    """A name over the bound is cut (in bytes of UTF-8, on a character boundary) before its extension."""
    long = "é" * 300 + ".tar"
    name = safe_name(long, "x")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.endswith(".tar")
    assert name.startswith("é")
    exact = "a" * (MAX_NAME_BYTES - 4) + ".txt"
    assert safe_name(exact, "x") == exact  # at the bound: unchanged
    assert len(safe_name("a" + exact, "x").encode("utf-8")) == MAX_NAME_BYTES  # just past it: cut


def test_numbered_names_go_before_the_extension() -> None:
    """`notes (1).txt`, `backup (2).tar.gz`, `README (3)`."""
    assert numbered("notes.txt", 0) == "notes.txt"
    assert numbered("notes.txt", 1) == "notes (1).txt"
    assert numbered("backup.tar.gz", 2) == "backup (2).tar.gz"
    assert numbered("README", 3) == "README (3)"


def test_create_unique_never_clobbers(tmp_path: Path) -> None:
    """An existing file, or a symlink planted under the name, is left alone: the next number is used."""
    (tmp_path / "a.txt").write_text("first")
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    os.symlink(target, tmp_path / "a (1).txt")
    created = create_unique(tmp_path, "a.txt")
    assert created == tmp_path / "a (2).txt"
    assert created.read_bytes() == b""
    assert (tmp_path / "a.txt").read_text() == "first"
    assert target.read_text() == "precious"


# -- Progress ---------------------------------------------------------------------------------------------


def test_rate_meter_measures_the_recent_rate() -> None:
    """The rate is bytes over the window's time; the ETA follows from it; one sample says nothing."""
    meter = RateMeter(window=3.0)
    meter.add(10.0, 0)
    assert meter.rate() is None
    meter.add(11.0, 1000)
    assert meter.rate() == pytest.approx(1000.0)
    assert meter.eta(5000, 1000) == pytest.approx(4.0)
    for second in range(12, 20):
        meter.add(float(second), 1000 + (second - 11) * 100)  # slowed down to 100 B/s
    assert meter.rate() == pytest.approx(100.0)


def test_human_figures() -> None:
    """Sizes in binary units, durations in seconds, minutes or hours."""
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1024) == "1.0 KiB"
    assert human_size(50 * 1024 * 1024) == "50.0 MiB"
    assert human_duration(7.2) == "7 s"
    assert human_duration(185) == "3 min 05 s"
    assert human_duration(7800) == "2 h 10 min"


def test_describe_a_running_transfer() -> None:
    """Percentage, size, rate and time left."""
    info = TransferInfo(1, Direction.DOWNLOAD, "a", 2048, 1024, TransferState.RUNNING, rate=512.0, eta=2.0)
    assert describe(info) == "50% of 2.0 KiB, 512 B/s, 2 s left"


# -- Commands and completion ------------------------------------------------------------------------------


def test_file_commands_parse() -> None:
    """/send takes the rest of the line as the path (quotes removed); /get and /cancel take a number."""
    assert cmd.parse("/send ~/My Notes.txt") == cmd.SendCommand("~/My Notes.txt")
    assert cmd.parse("/send 'a b.txt'") == cmd.SendCommand("a b.txt")
    assert cmd.parse("/get 44") == cmd.GetCommand(44)
    assert cmd.parse("/get #44") == cmd.GetCommand(44)
    assert cmd.parse("/cancel 3") == cmd.CancelCommand(3)
    for bad in ("/send", "/get", "/get x", "/get ²", "/cancel -1"):
        with pytest.raises(cmd.CommandError):
            cmd.parse(bad)


def test_file_commands_are_in_help() -> None:
    """The help lists /send, /get and /cancel."""
    text = "\n".join(cmd.help_text())
    for usage in ("/send PATH", "/get ID", "/cancel N"):
        assert usage in text


def test_tab_completes_paths_after_send(tmp_path: Path) -> None:
    """Tab after /send completes a file or a folder (with its slash), and cycles; hidden files need a dot."""
    (tmp_path / "report.pdf").write_bytes(b"x")
    (tmp_path / "reports").mkdir()
    (tmp_path / ".secret").write_bytes(b"x")
    line = f"/send {tmp_path}/rep"
    first = complete(line, len(line), nicks=["bob"], rooms=[])
    assert first is not None
    assert first.value == f"/send {tmp_path}/report.pdf"
    second = complete(first.value, first.cursor, nicks=[], rooms=[], previous=first)
    assert second is not None
    assert second.value == f"/send {tmp_path}/reports/"
    assert path_candidates(f"{tmp_path}/") == [f"{tmp_path}/report.pdf", f"{tmp_path}/reports/"]
    assert path_candidates(f"{tmp_path}/.") == [f"{tmp_path}/.secret"]
    assert complete(f"/send {tmp_path}/zzz", len(f"/send {tmp_path}/zzz"), nicks=[], rooms=[]) is None


def test_tab_completes_the_file_commands() -> None:
    """/sen completes to /send; /se to /search, then (Tab again) /send."""
    result = complete("/sen", 4, nicks=[], rooms=[])
    assert result is not None
    assert result.value == "/send "
    first = complete("/se", 3, nicks=[], rooms=[])
    assert first is not None
    assert first.value == "/search "
    second = complete(first.value, first.cursor, nicks=[], rooms=[], previous=first)
    assert second is not None
    assert second.value == "/send "


# -- Model ------------------------------------------------------------------------------------------------


def offered(offer_id: int, name: str = "notes.txt", nick: str = "bob", **target: str) -> FileOffered:
    where = target or {"room": "lobby"}
    return FileOffered(id=offer_id, nick=nick, name=name, size=12, sha256=SHA, ts=TS, **where)


def joined_model() -> ChatModel:
    model = ChatModel("alice", clock=lambda: 1000.0)
    model.apply(Connected(Welcome(version=1, nick="alice", server="test", ts=TS), resumed=False))
    model.apply(Joined(room="lobby", nick="alice", ts=TS))
    return model


def test_a_file_offer_is_an_entry_in_its_room() -> None:
    """Name, size, sender and the id to /get it."""
    model = joined_model()
    changes = model.apply(offered(44))
    (line,) = changes.lines["#lobby"]
    assert line.kind is LineKind.FILE
    assert line.id == 44
    assert line.nick == "bob"
    assert line.text == "notes.txt (12 B)"
    shown = render_line(line).plain
    assert "bob offers notes.txt (12 B)" in shown
    assert "/get 44" in shown
    assert "/get 44" in format_line(line, "lobby")


def test_file_offers_in_history_become_entries() -> None:
    """A room's history and the direct history both hold file offers beside messages."""
    model = joined_model()
    model.apply(History(room="lobby", messages=(offered(3),)))
    assert [line.id for line in model.buffers["#lobby"].lines if line.kind is LineKind.FILE] == [3]
    model.apply(History(direct=True, messages=(offered(9, nick="carol", to="alice"),)))
    assert [line.id for line in model.buffers["@carol"].lines] == [9]


def test_a_hostile_file_name_is_shown_literally() -> None:
    """ESC, bidi and markup in a file name reach the screen as visible characters, not effects."""
    model = joined_model()
    changes = model.apply(offered(5, name="[@click=app.quit]x[/] \x1b[2J\u202eevil"))
    text = render_line(changes.lines["#lobby"][0])
    assert "\x1b" not in text.plain
    assert "\u202e" not in text.plain
    assert "[@click=app.quit]x[/]" in text.plain
    assert not text.spans or all("click" not in str(span.style) for span in text.spans)


def test_transfer_updates_announce_the_start_and_the_end() -> None:
    """A transfer gets a line when it starts and one when it ends; a failure is an alert."""
    model = joined_model()
    base = TransferInfo(1, Direction.DOWNLOAD, "a.bin", 10, 0, TransferState.QUEUED, room="lobby", offer_id=4)
    started = model.apply(TransferUpdate(base))
    assert "downloading a.bin" in started.lines["#lobby"][0].text
    assert started.transfers == {1}
    failed = TransferInfo(
        1,
        Direction.DOWNLOAD,
        "a.bin",
        10,
        10,
        TransferState.FAILED,
        room="lobby",
        error_code="checksum_mismatch",
        error="bad bytes",
    )
    ended = model.apply(TransferUpdate(failed))
    (line,) = ended.lines["#lobby"]
    assert line.kind is LineKind.ERROR
    assert "checksum_mismatch" in line.text
    assert ended.alerts
