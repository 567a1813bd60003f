"""File sharing on a real server: upload, store, announce, download, with real sockets and real files."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from chat_server.__main__ import build_parser, config_from
from chat_server.config import ServerConfig, load_toml
from chat_server.filesconfig import FilesConfig
from chat_server.server import ChatServer
from shared import (
    Ack,
    CancelFile,
    Error,
    FetchHistory,
    FileData,
    FileDone,
    FileOffered,
    FileProgress,
    GetFile,
    History,
    Join,
    Leave,
    Left,
    Moderated,
    Mute,
    OfferFile,
    Say,
    Welcome,
    encode,
)
from shared.limits import DEFAULT_FILE_CHUNK, DEFAULT_FILE_WINDOW

from .client import ChatTestClient
from .files_client import download, offer, send_chunks, sha256, upload

CHUNK = DEFAULT_FILE_CHUNK


def payload(size: int) -> bytes:
    """`size` bytes that differ from chunk to chunk (a misplaced chunk changes the hash)."""
    return os.urandom(size) if size < 1_000_000 else (os.urandom(1 << 20) * (size // (1 << 20) + 1))[:size]


def test_welcome_announces_the_file_policy(connect: Callable[..., ChatTestClient]) -> None:
    """welcome.files carries the chunk size, the window and the largest file."""
    welcome = connect().login("alice")
    assert welcome.files is not None
    assert (welcome.files.chunk, welcome.files.window) == (CHUNK, DEFAULT_FILE_WINDOW)
    assert welcome.files.max_size == 1024**3


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_upload_then_download_returns_the_same_bytes(size: int, login: Callable[..., ChatTestClient]) -> None:
    """Each size is stored, announced to the room with its hash, and downloaded byte for byte."""
    alice, bob = login("alice"), login("bob")
    data = payload(size)
    result = upload(alice, data, name="report.pdf", client_msg_id="f-1")
    assert result.error is None
    assert result.done is not None
    assert result.started_at == 0
    offered = bob.recv(FileOffered)
    assert (offered.id, offered.nick, offered.name, offered.size) == (
        result.done.id,
        "alice",
        "report.pdf",
        size,
    )
    assert offered.sha256 == sha256(data)
    assert offered.room == "lobby"
    got = download(bob, offered.id)
    assert got == data
    assert sha256(got) == offered.sha256
    assert download(alice, offered.id) == data  # the uploader may fetch it too


def test_direct_offer_reaches_only_the_recipient(login: Callable[..., ChatTestClient]) -> None:
    """A file offered to a nick: the recipient gets file_offered with `to`; a third user in the same room
    neither hears of it nor may fetch it (no_such_file); sender and recipient may."""
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    data = b"for bob only"
    result = upload(alice, data, to="bob")
    assert result.done is not None
    offered = bob.recv(FileOffered)
    assert (offered.to, offered.room, offered.nick) == ("bob", None, "alice")
    assert download(bob, offered.id) == data
    assert download(alice, offered.id) == data
    carol.send(GetFile(id=offered.id, ref=9))
    assert carol.error("no_such_file").ref == 9
    assert not any(isinstance(m, FileOffered) for m in carol.drain())


def test_offer_to_an_absent_nick_or_foreign_room_is_refused(login: Callable[..., ChatTestClient]) -> None:
    """no_such_nick for a nick not online, not_in_room for a room the sender is not in."""
    alice = login("alice")
    answer = offer(alice, b"x", to="nobody", ref=3)
    assert isinstance(answer, Error)
    assert answer.code == "no_such_nick"
    answer = offer(alice, b"x", room="elsewhere", ref=4)
    assert isinstance(answer, Error)
    assert answer.code == "not_in_room"


def test_room_file_is_refused_to_non_members(login: Callable[..., ChatTestClient]) -> None:
    """Only current members of the room may fetch its files: someone elsewhere, or who left, gets
    no_such_file, exactly like an unknown id."""
    alice, bob = login("alice", ["den"]), login("bob", ["den"])
    outsider = login("olga", ["lobby"])
    done = upload(alice, b"den secrets", room="den").done
    assert done is not None
    offered = bob.recv(FileOffered)
    assert offered.room == "den"
    outsider.send(GetFile(id=offered.id, ref=5))
    assert outsider.error("no_such_file").ref == 5
    outsider.send(GetFile(id=offered.id + 1000, ref=6))
    assert outsider.error("no_such_file").ref == 6
    bob.send(Leave(room="den", ref=7))
    bob.recv(Left, nick="bob")
    bob.send(GetFile(id=offered.id, ref=8))
    assert bob.error("no_such_file").ref == 8


def test_offers_are_history_entries(
    login: Callable[..., ChatTestClient], connect: Callable[..., ChatTestClient]
) -> None:
    """A file offer is a stored message in the ordinary id sequence: it comes back in a join's backfill,
    in fetch_history pages (room and direct) and in a resume, as file_offered."""
    alice, bob = login("alice"), login("bob")
    alice.send(Say(room="lobby", text="before", ref=1))
    before = alice.recv(Ack, ref=1)
    done = upload(alice, b"in the history", name="h.txt", ref=2).done
    assert done is not None
    assert done.id > before.id
    alice.send(Say(room="lobby", text="after", ref=3))
    assert alice.recv(Ack, ref=3).id > done.id
    dm = upload(alice, b"direct", to="bob", ref=4).done
    assert dm is not None
    late = connect()
    late.hello("carol")
    late.recv(Welcome)
    backfill = late.recv(History, room="lobby")  # the join's backfill holds the offer
    assert [m.id for m in backfill.messages if isinstance(m, FileOffered)] == [done.id]
    late.send(FetchHistory(room="lobby", ref=5))
    page = late.recv(History, ref=5)
    files = [m for m in page.messages if isinstance(m, FileOffered)]
    assert [(f.id, f.name, f.size, f.nick) for f in files] == [(done.id, "h.txt", 14, "alice")]
    late.send(FetchHistory(room="lobby", after=before.id, ref=6))
    resumed = late.recv(History, ref=6)
    assert [type(m).__name__ for m in resumed.messages] == ["FileOffered", "Said"]
    bob.send(FetchHistory(direct=True, ref=7))
    direct = bob.recv(History, ref=7)
    assert [(m.id, m.to) for m in direct.messages if isinstance(m, FileOffered)] == [(dm.id, "bob")]


def test_repeated_offer_with_the_same_client_msg_id_is_a_duplicate(
    login: Callable[..., ChatTestClient],
) -> None:
    """A lost file_done: offering again with the same client_msg_id answers file_done {duplicate} at once,
    with the stored id, and stores nothing new."""
    alice, bob = login("alice"), login("bob")
    data = b"once"
    first = upload(alice, data, client_msg_id="c-8", ref=1).done
    assert first is not None
    bob.recv(FileOffered)
    again = offer(alice, data, client_msg_id="c-8", ref=2)
    assert isinstance(again, FileDone)
    assert (again.duplicate, again.id, again.ref, again.client_msg_id) == (True, first.id, 2, "c-8")
    alice.send(Say(room="lobby", text="marker", ref=3))
    assert not any(isinstance(m, FileOffered) for m in bob.drain())


def test_cancel_deletes_the_partial_file(server: ChatServer, login: Callable[..., ChatTestClient]) -> None:
    """file_cancel drops the upload and its partial file: the next offer starts from 0; cancelling an
    unknown upload is no_such_file."""
    alice = login("alice")
    data = payload(3 * CHUNK)
    started = offer(alice, data)
    assert isinstance(started, FileProgress)
    send_chunks(alice, started.upload, data, 0, stop_after=CHUNK)
    alice.send(CancelFile(upload=started.upload))
    alice.send(CancelFile(upload=started.upload, ref=4))
    assert alice.error("no_such_file").ref == 4
    assert server.files is not None
    assert list(server.files.partials.iterdir()) == []
    again = offer(alice, data, ref=5)
    assert isinstance(again, FileProgress)
    assert again.offset == 0


def test_every_files_setting_is_documented() -> None:
    """docs/server.md has a `files.<name>` row for every FilesConfig field, docs/security.md names the
    limits."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    table = (docs / "server.md").read_text()
    missing = [f.name for f in dataclasses.fields(FilesConfig) if f"| `files.{f.name}` |" not in table]
    assert missing == ["enabled"]  # the `files` row itself says how to turn it off
    security = (docs / "security.md").read_text()
    for name in ("files.max_size", "files.user_quota", "files.retention_days", "files.window"):
        assert f"`{name}`" in security


def test_files_table_in_the_config_file(tmp_path: Path) -> None:
    """A [files] table in server.toml sets FilesConfig; unknown keys and bad values are refused."""
    path = tmp_path / "server.toml"
    path.write_text('[files]\nmax_size = 5000\nretention_days = 0.5\nfolder = "/srv/files"\n')
    config = ServerConfig(**load_toml(path))
    assert (config.files.max_size, config.files.retention_days) == (5000, 0.5)
    assert config.files_folder == Path("/srv/files")
    path.write_text("[files]\nmax_sise = 5\n")
    with pytest.raises(ValueError, match="max_sise"):
        load_toml(path)
    with pytest.raises(ValueError, match="user_quota"):
        FilesConfig(user_quota=10, total_quota=5)
    with pytest.raises(ValueError, match="window"):
        FilesConfig(window=0)


def test_files_command_line_options() -> None:
    """--no-files and the --*-file-* options reach FilesConfig, over the config file's [files] table."""
    parser = build_parser()
    options = "--max-file-size 1000 --file-user-quota 2000 --file-total-quota 3000"
    options += " --file-retention-days 1.5 --files-folder /srv/f"
    config = config_from(parser.parse_args(options.split()))
    assert config.files == FilesConfig(
        max_size=1000, user_quota=2000, total_quota=3000, retention_days=1.5, folder=Path("/srv/f")
    )
    assert not config_from(parser.parse_args(["--no-files"])).files.enabled
    assert config_from(parser.parse_args([])).files == FilesConfig()


def test_a_muted_member_cannot_offer_files_in_the_room(login: Callable[..., ChatTestClient]) -> None:
    """A file offer is a message in the room: a member muted there is refused with `muted` (after the
    upload, when the offer would be stored), and nobody hears of it; a direct offer is not a room's."""
    alice = login("alice", ["den"])  # the room's first member: its operator
    bob = login("bob", ["den"])
    alice.send(Mute(room="den", nick="bob", ref=1))
    alice.recv(Ack, ref=1)
    bob.recv(Moderated)
    result = upload(bob, b"loud file", room="den", ref=2)
    assert result.error is not None
    assert (result.error.code, result.error.ref) == ("muted", 2)
    assert not any(isinstance(m, FileOffered) for m in alice.drain())
    assert upload(bob, b"quiet file", to="alice", ref=3).done is not None
    assert alice.recv(FileOffered).to == "alice"


def test_a_join_pipelined_before_a_file_request_counts(login: Callable[..., ChatTestClient]) -> None:
    """Requests of one connection apply in order: a `join` sent just before a `file_get` or a `file_offer`
    for that room (without waiting for its answer) makes the file request succeed."""
    alice = login("alice", ["den"])
    data = b"for the den"
    done = upload(alice, data, room="den").done
    assert done is not None
    for attempt in range(5):  # the join may or may not be applied before the reader sees the file_get
        bob = login(f"bob{attempt}", ["lobby"])
        bob.send_raw(
            encode(Join(room="den", ref=1))
            + encode(GetFile(id=done.id, ref=2))
            + encode(OfferFile(name="n", size=1, sha256=sha256(b"n"), room="den", ref=3))
        )
        assert bob.recv(FileData, ref=2).data == data
        assert bob.recv(FileProgress, ref=3).offset == 0
        bob.close()
