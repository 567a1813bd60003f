"""The `chat-server` command line: the listening line, signals, the config file, --trace."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from shared import Ack, Said, Say

from .client import ChatTestClient
from .process import ServerProcess


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_prints_address_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    """One line with the real port; on SIGINT/SIGTERM clients hear server_shutdown; exit 0 within 2 s."""
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path)) as server:
        assert server.address is not None, server.first_line
        assert server.address[0] == "127.0.0.1"
        assert server.address[1] > 0
        with ChatTestClient(server.address) as client:
            client.login("alice")
            started = time.monotonic()
            assert server.stop(sig) == 0
            assert time.monotonic() - started < 2.0
            codes = [getattr(m, "code", None) for m in client.wait_closed()]
            assert "server_shutdown" in codes
        out, err = server.close()
        assert out == ""  # exactly one line on stdout
        assert "event=listening" in err
    assert (tmp_path / "history.sqlite3").exists()


def test_config_file_and_overrides(tmp_path: Path) -> None:
    """Settings come from --config; command-line options win over it."""
    config = tmp_path / "server.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-file"}"\nmax_clients_per_ip = 1\nport = 1\n')
    with ServerProcess("--config", str(config), "--port", "0", "--max-clients-per-ip", "2") as server:
        assert server.address is not None, server.first_line
        with ChatTestClient(server.address) as first, ChatTestClient(server.address) as second:
            first.login("a")
            second.login("b")
        assert server.stop() == 0
    assert (tmp_path / "from-file" / "history.sqlite3").exists()


def test_bad_settings_exit_with_usage_error(tmp_path: Path) -> None:
    """An invalid setting is reported on stderr with exit code 2, and nothing listens."""
    config = tmp_path / "server.toml"
    config.write_text("max_clients = -3\n")
    with ServerProcess("--config", str(config)) as server:
        assert server.first_line == ""
        assert server.process.wait(10) == 2
        _, err = server.close()
        assert "max_clients" in err


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    """A port that is taken gives a one-line error and exit code 1."""
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path)) as first:
        assert first.address is not None
        port = str(first.address[1])
        with ServerProcess("--port", port, "--data-dir", str(tmp_path / "2")) as second:
            assert second.process.wait(10) == 1
            _, err = second.close()
            assert "cannot start" in err


def test_trace_logs_every_frame_decoded(tmp_path: Path) -> None:
    """--trace logs each frame in and out, decoded, on stderr."""
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path), "--trace") as server:
        assert server.address is not None
        with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
            alice.login("alice")
            bob.login("bob")
            alice.send(Say(room="lobby", text="traced text", ref=1))
            bob.recv(Said)
        assert server.stop() == 0
        _, err = server.close()
    assert "in Say(room='lobby', text='traced text'" in err
    assert "out {'type': 'said'" in err


def test_db_option_names_the_history_file(tmp_path: Path) -> None:
    """--db puts the history exactly there."""
    target = tmp_path / "elsewhere" / "chat.db"
    with ServerProcess("--port", "0", "--db", str(target)) as server:
        assert server.address is not None, server.first_line
        with ChatTestClient(server.address) as client:
            client.login("alice")
            client.send(Say(room="lobby", text="stored", ref=1))
            client.recv(Ack, ref=1)
        assert server.stop() == 0
    assert target.exists()
