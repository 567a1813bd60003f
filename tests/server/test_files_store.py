"""`FileStore` on its own, with a real files folder and a real SQLite history: reservations, pins and the
sweep (the races between an upload finishing and the sweeper, made to happen in a fixed order)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from chat_server.files import FileRefused, FileStore
from chat_server.filesconfig import FilesConfig
from chat_server.storage import HistoryStore

DAY = 86400.0


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, **settings: object) -> tuple[FileStore, HistoryStore, Clock]:
    """A store on tmp_path/files with a history next to it."""
    clock = Clock()
    store = FileStore(FilesConfig(**settings), tmp_path / "files", clock)  # type: ignore[arg-type]
    return store, HistoryStore(tmp_path / "history.sqlite3"), clock


def write_partial(store: FileStore, name: str, data: bytes) -> int:
    """Write `data` as the partial file `name`; return an open descriptor of it."""
    fd = os.open(store.partial_path(name), os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, data)
    return fd


def test_a_pinned_object_survives_the_sweep_until_its_offer_is_recorded(tmp_path: Path) -> None:
    """Between os.replace and the commit of its row, an object has no row: the sweep must leave it. Once
    the row is committed it is kept while fresh; an object nobody records is deleted as an orphan."""
    store, history, clock = make(tmp_path)
    data = b"pinned bytes"
    digest = hashlib.sha256(data).hexdigest()
    db = history.open_reader()
    reservation = store.reserve(db, "alice", len(data), digest)
    fd = write_partial(store, reservation.partial, data)
    store.place(reservation, fd)
    os.close(fd)
    assert store.sweep(db).objects == 0  # pinned: no row yet, but not an orphan
    history.save_file(digest, len(data), int(clock.now * 1000), "alice")
    history.commit()
    reservation.finish()
    assert store.sweep(db).objects == 0  # recorded and fresh
    assert store.object_path(digest).read_bytes() == data
    clock.now += 31 * DAY
    assert store.sweep(db).objects == 1  # expired
    orphan = store.reserve(db, "bob", 3, hashlib.sha256(b"abc").hexdigest())
    fd = write_partial(store, orphan.partial, b"abc")
    store.place(orphan, fd)
    os.close(fd)
    orphan.finish()  # its offer was never stored (say the history failed)
    assert store.sweep(db).objects == 1
    assert [path for path in store.objects.rglob("*") if path.is_file()] == []
    db.close()
    history.close()


def test_a_live_upload_keeps_its_partial_file_past_partial_days(tmp_path: Path) -> None:
    """The sweep deletes an old partial file only when no live upload holds it."""
    store, history, clock = make(tmp_path, partial_days=1.0)
    db = history.open_reader()
    digest = hashlib.sha256(b"x" * 10).hexdigest()
    reservation = store.reserve(db, "alice", 10, digest)
    os.close(write_partial(store, reservation.partial, b"x" * 5))
    clock.now += 2 * DAY
    assert store.sweep(db).partials == 0
    reservation.finish()
    assert store.sweep(db).partials == 1
    assert list(store.partials.iterdir()) == []
    db.close()
    history.close()


def test_reservations_count_against_the_quotas_until_released(tmp_path: Path) -> None:
    """Reserved bytes count as stored; a second live upload of the same partial is refused; a release
    gives everything back."""
    store, history, _clock = make(tmp_path, user_quota=100, total_quota=150)
    db = history.open_reader()
    first = store.reserve(db, "alice", 100, "a" * 64)
    with pytest.raises(FileRefused) as refused:
        store.reserve(db, "alice", 1, "b" * 64)
    assert refused.value.code == "quota_exceeded"
    with pytest.raises(FileRefused) as refused:
        store.reserve(db, "bob", 51, "c" * 64)
    assert refused.value.code == "quota_exceeded"
    bob = store.reserve(db, "bob", 50, "c" * 64)
    with pytest.raises(FileRefused) as refused:
        store.reserve(db, "bob", 50, "c" * 64)
    assert refused.value.code == "too_many_transfers"
    first.finish()
    first.finish()  # idempotent
    bob.finish()
    assert store.reserve(db, "alice", 100, "b" * 64).size == 100
    db.close()
    history.close()
