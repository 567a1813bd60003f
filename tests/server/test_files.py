"""File sharing on a real server: upload, store, announce, download, with real sockets and real files."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from shared import FileOffered
from shared.limits import DEFAULT_FILE_CHUNK, DEFAULT_FILE_WINDOW

from .client import ChatTestClient
from .files_client import download, sha256, upload

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
