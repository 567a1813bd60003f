"""TLS with trust on first use, from the client's side: real TLS on loopback against the real server, and a
raw TLS server that records every byte of plaintext it receives (to prove an untrusted server gets none)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import OptionList

from chat_client import ChatClient
from chat_client.__main__ import main
from chat_client.model.buffers import SERVER_KEY
from chat_client.net.errors import FingerprintMismatch, ServerKeyChanged
from chat_client.net.events import Closed, Connected, Disconnected
from chat_client.net.pins import PINS_FILE, PinStore, PinStoreError, parse_pin_key, pin_key
from chat_client.net.trust import TlsOptions, tls_for
from chat_client.plain.linemode import EXIT_LOGIN_FAILED
from chat_client.settings import data_dir, load_settings
from chat_client.tui.app import ChatApp
from chat_client.tui.widgets.panels import StatusLine
from chat_server.tls import CERT_FILE, KEY_FILE, TlsConfig, load_or_create_identity
from shared.fingerprint import certificate_fingerprint, grouped
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config, run_plain_captured
from .test_library import FAST, Recorder
from .tui_helpers import connected_app, wait_for_chat, wait_for_text


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A running TLS-only chat server (its generated certificate in its data folder)."""
    with LiveServer(fast_server_config(tmp_path / "server", tls=TlsConfig(enabled=True))) as live:
        yield live


def server_fingerprint(server: LiveServer) -> str:
    """The fingerprint of the certificate the live server uses."""
    pem = (server.config.history_path.parent / CERT_FILE).read_text()
    return certificate_fingerprint(ssl.PEM_cert_to_DER_cert(pem))


async def replace_key(server: LiveServer) -> None:
    """Restart the server with a newly generated key, on the same port."""
    await server.astop()
    folder = server.config.history_path.parent
    (folder / CERT_FILE).unlink()
    (folder / KEY_FILE).unlink()
    await server.astart()


def tls(fingerprint: str | None = None) -> TlsOptions:
    """TLS options with the pins in the test's data folder (MPCHAT_DATA_DIR)."""
    return TlsOptions(fingerprint=fingerprint, pins=PinStore())


class RecordingTlsServer:
    """A raw TLS server on one port: completes handshakes with its own key, records every plaintext byte."""

    def __init__(self, port: int, folder: Path) -> None:
        cert, key = load_or_create_identity(folder)
        self.fingerprint = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(10)
        self.handshakes = 0
        self.received = b""
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        try:
            sock, _peer = self.listener.accept()
            with self.context.wrap_socket(sock, server_side=True) as tls_sock:
                self.handshakes += 1
                tls_sock.settimeout(10)
                while data := tls_sock.recv(65536):
                    self.received += data
        except (OSError, ssl.SSLError):
            pass  # the client hung up in whatever way it did: what matters is what was received before
        finally:
            self.finished.set()

    def close(self) -> None:
        """Stop listening, wait for the connection thread."""
        self.listener.close()
        self._thread.join(15)


async def test_first_connection_pins_and_the_second_is_silent(tls_server: LiveServer) -> None:
    """The first connection records host:port -> fingerprint and says so; the next one just verifies."""
    expected = server_fingerprint(tls_server)
    async with ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls()) as alice:
        events = Recorder(alice)
        assert alice.identity is not None
        assert alice.identity.fingerprint == expected
        assert alice.identity.pinned_now
        assert alice.identity.version in ("TLSv1.2", "TLSv1.3")
        await wait_until(lambda: bool(events.of(Connected)), what="the Connected event")
        assert events.of(Connected)[0].identity == alice.identity
        await alice.join("dev")
    pins = json.loads((data_dir() / PINS_FILE).read_text())
    assert pins == {pin_key(tls_server.host, tls_server.port): expected}
    async with ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls()) as again:
        assert again.identity is not None
        assert again.identity.fingerprint == expected
        assert not again.identity.pinned_now
        assert "matches the pinned key" in again.identity.describe()


async def test_changed_key_is_refused_and_gets_no_application_bytes(
    tls_server: LiveServer, tmp_path: Path
) -> None:
    """After pinning, a server on that host:port with another key is refused with both fingerprints and
    the command that removes the pin; it receives not one byte of plaintext (not even `hello`)."""
    pinned = server_fingerprint(tls_server)
    async with ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls()):
        pass
    await tls_server.astop()
    impostor = RecordingTlsServer(tls_server.port, tmp_path / "impostor")
    try:
        client = ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls())
        with pytest.raises(ServerKeyChanged) as refused:
            await client.connect()
        await wait_until(impostor.finished.is_set, what="the impostor's connection to end")
    finally:
        impostor.close()
    assert impostor.handshakes == 1  # the TLS handshake happened: the refusal came after seeing the key
    assert impostor.received == b""
    error = refused.value
    assert (error.expected, error.presented) == (pinned, impostor.fingerprint)
    message = str(error)
    assert grouped(pinned) in message
    assert grouped(impostor.fingerprint) in message
    assert f"chat-client --forget-pin {tls_server.host}:{tls_server.port}" in message
    # The pin is untouched.
    assert PinStore().get(pin_key(tls_server.host, tls_server.port)) == pinned


async def test_key_change_during_reconnects_stops_the_client(tls_server: LiveServer) -> None:
    """A connected client whose server comes back with another key stops reconnecting, with the typed
    error, instead of retrying forever or sending anything."""
    async with ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls()) as alice:
        events = Recorder(alice)
        await replace_key(tls_server)
        await wait_until(lambda: bool(events.of(Closed)), what="the client to give up")
        final = events.of(Disconnected)[-1]
        assert final.code == "untrusted_server"
        assert not final.will_retry
        assert isinstance(events.of(Closed)[0].error, ServerKeyChanged)


async def test_fingerprint_given_in_advance(tls_server: LiveServer) -> None:
    """--fingerprint: a mismatch is refused even on first use (and nothing is pinned); a match pins."""
    key = pin_key(tls_server.host, tls_server.port)
    wrong = "0" * 64
    client = ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls(wrong))
    with pytest.raises(FingerprintMismatch) as refused:
        await client.connect()
    assert refused.value.expected == wrong
    assert refused.value.presented == server_fingerprint(tls_server)
    assert PinStore().get(key) is None
    right = server_fingerprint(tls_server)
    async with ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls(right)) as alice:
        assert alice.identity is not None
        assert alice.identity.pinned_now
    assert PinStore().get(key) == right


async def test_plain_mode_shows_the_fingerprint_and_refuses_a_changed_key(tls_server: LiveServer) -> None:
    """--plain: the first connection prints the key and that it was pinned; a changed key is exit 2 with
    both fingerprints on stderr."""
    first = await run_plain_captured(tls_server, "alice", options=FAST, tls=tls())
    assert first.status == 0, first.err
    fingerprint = server_fingerprint(tls_server)
    assert f"encrypted (TLSv1.3); server key SHA-256 {grouped(fingerprint)}, pinned now" in first.out
    await replace_key(tls_server)
    changed = await run_plain_captured(tls_server, "alice", options=FAST, tls=tls())
    assert changed.status == EXIT_LOGIN_FAILED
    assert grouped(fingerprint) in changed.err
    assert grouped(server_fingerprint(tls_server)) in changed.err
    assert "--forget-pin" in changed.err


async def test_tui_shows_the_pinned_key_and_that_the_connection_is_encrypted(
    tls_server: LiveServer, private_dirs: Path
) -> None:
    """Pilot: the server buffer shows the fingerprint pinned on first use; the status line says encrypted;
    the TLS choice is remembered with the server."""
    app = connected_app(tls_server, private_dirs, tls=True, discovery=None)
    async with app.run_test(size=(160, 36)) as pilot:
        screen = await wait_for_chat(app, pilot)
        screen.switch_to(SERVER_KEY)
        await wait_for_text(app, pilot, grouped(server_fingerprint(tls_server))[:29])
        await wait_for_text(app, pilot, "pinned now (first connection)")
        await wait_until(lambda: "encrypted (TLSv1.3)" in str(screen.query_one(StatusLine).render()))
    settings = load_settings(private_dirs)
    assert settings.tls
    assert settings.recent[0].tls


async def test_tui_refuses_a_changed_key_on_the_connect_screen(
    tls_server: LiveServer, private_dirs: Path
) -> None:
    """Pilot: with the TLS box ticked on the connect screen, a changed key is refused there, showing both
    fingerprints; the chat screen never opens."""
    async with ChatClient(tls_server.host, tls_server.port, "alice", options=FAST, tls=tls()):
        pass
    old = server_fingerprint(tls_server)
    await replace_key(tls_server)
    app = ChatApp(
        host=tls_server.host,
        port=tls_server.port,
        nick="alice",
        config_dir=private_dirs,
        options=FAST,
        discovery=None,
    )
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.click("#tls")
        await pilot.click("#connect")
        status = app.screen.query_one("#connect-status")

        def shown() -> str:
            return str(status.render())

        await wait_until(lambda: "DIFFERENT KEY" in shown(), what="the refusal on the connect screen")
        assert grouped(old) in shown()
        assert grouped(server_fingerprint(tls_server)) in shown()


def test_forget_pin_and_list_pins(tls_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    """`chat-client --pins` lists, `--forget-pin HOST:PORT` removes (exit 1 when there was none)."""
    store = PinStore()
    key = pin_key(tls_server.host, tls_server.port)
    store.add(key, "ab" * 32)
    assert main(["--pins"]) == 0
    assert f"{key}  {grouped('ab' * 32)}" in capsys.readouterr().out
    assert main(["--forget-pin", key]) == 0
    assert "removed" in capsys.readouterr().out
    assert store.get(key) is None
    assert main(["--forget-pin", key]) == 1
    with pytest.raises(SystemExit):
        main(["--fingerprint", "not-hex", "--plain", "--nick", "x"])


def test_pin_names_and_a_damaged_pins_file(tmp_path: Path) -> None:
    """host:port names (IPv6 in brackets, host case-folded); a damaged file is an error, never replaced."""
    assert parse_pin_key("Chat.LAN:7879") == "chat.lan:7879"
    assert parse_pin_key("[::1]:7879") == pin_key("::1", 7879) == "[::1]:7879"
    for bad in ("nohost", "host:", "host:99999", ":7879"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_pin_key(bad)
    path = tmp_path / PINS_FILE
    path.write_text("{not json")
    with pytest.raises(PinStoreError):
        PinStore(path).get("a:1")
    assert path.read_text() == "{not json"


def test_a_pinned_server_is_never_reached_without_tls(tmp_path: Path) -> None:
    """Forgetting --tls for a server with a pin still uses TLS (no silent downgrade); no pin, no TLS."""
    pins = PinStore(tmp_path / PINS_FILE)
    assert tls_for("chat.lan", 7879, tls=False, fingerprint=None, pins=pins) is None
    pins.add(pin_key("chat.lan", 7879), "cd" * 32)
    chosen = tls_for("chat.lan", 7879, tls=False, fingerprint=None, pins=pins)
    assert chosen is not None
    assert chosen.pins is pins
    assert tls_for("chat.lan", 7878, tls=False, fingerprint=None, pins=pins) is None
    # A fingerprint given in advance means TLS, with or without --tls.
    given = tls_for("chat.lan", 7878, tls=False, fingerprint="ef" * 32, pins=pins)
    assert given is not None
    assert given.fingerprint == "ef" * 32


async def test_a_lan_server_announcing_tls_is_joined_with_tls(
    tls_server: LiveServer, private_dirs: Path
) -> None:
    """Pilot: a server heard on the LAN with tls true shows its announced key, and choosing it connects with
    TLS (and pins the key the server presents, whatever the beacon said)."""
    from chat_client.net.discovery import DiscoveredServer
    from chat_client.tui.ui_messages import ServersHeard

    announced = "ab" * 32  # a beacon's claim: shown, never pinned
    heard = DiscoveredServer(
        server_id="lab",
        name="Lab",
        host=tls_server.host,
        port=tls_server.port,
        tls=True,
        fingerprint=announced,
        users=0,
        rooms=(),
        truncated=False,
        addresses=(tls_server.host,),
        last_seen=0.0,
    )
    app = ChatApp(nick="alice", config_dir=private_dirs, options=FAST, discovery=None)
    async with app.run_test(size=(160, 40)) as pilot:
        app.post_message(ServersHeard([heard], None))
        await wait_until(
            lambda: "TLS key abab" in str(app.screen.query_one("#lan", OptionList).render_line(0).text)
        )
        lan = app.screen.query_one("#lan", OptionList)
        lan.focus()
        lan.highlighted = 0
        await pilot.press("enter")
        await wait_for_chat(app, pilot)
    assert PinStore().get(pin_key(tls_server.host, tls_server.port)) == server_fingerprint(tls_server)


def test_command_line_fingerprint_alone_means_tls(
    tls_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chat-client --plain --fingerprint WRONG` (no --tls): TLS is used, the wrong key refused, exit 2."""
    wrong = "0" * 64
    argv = ["--plain", "--host", tls_server.host, "--port", str(tls_server.port), "--nick", "eve"]
    status = main([*argv, "--fingerprint", wrong])
    assert status == EXIT_LOGIN_FAILED
    error = capsys.readouterr().err
    assert "does not match the fingerprint you gave" in error
    assert grouped(server_fingerprint(tls_server)) in error
