"""`SSLKEYLOGFILE` (docs/lab.md): the client appends its TLS session keys to that file, for Wireshark; without
it, no keys are written anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_client import ChatClient
from chat_client.net.pins import PinStore
from chat_client.net.trust import SSLKEYLOG_ENV, TlsOptions, client_context
from chat_server.tls import TlsConfig
from tests.client.helpers import LiveServer, fast_server_config
from tests.client.test_library import FAST


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's pins and settings go to a temp folder, never the user's."""
    monkeypatch.setenv("MPCHAT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MPCHAT_DATA_DIR", str(tmp_path / "data"))


async def test_the_session_keys_are_written_to_sslkeylogfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS chat with SSLKEYLOGFILE set: the file holds the session's traffic secrets."""
    keys = tmp_path / "keys.log"
    monkeypatch.setenv(SSLKEYLOG_ENV, str(keys))
    with LiveServer(fast_server_config(tmp_path / "server", tls=TlsConfig(enabled=True))) as server:
        async with ChatClient(
            server.host, server.port, "alice", options=FAST, tls=TlsOptions(pins=PinStore())
        ) as alice:
            await alice.say("lobby", "hello over TLS", wait=True)
    text = keys.read_text()
    assert "CLIENT_TRAFFIC_SECRET_0 " in text or "CLIENT_RANDOM " in text


def test_without_sslkeylogfile_no_keys_are_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the client's TLS context logs no keys."""
    monkeypatch.delenv(SSLKEYLOG_ENV, raising=False)
    assert client_context().keylog_filename is None
