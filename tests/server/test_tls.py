"""TLS on the server: the generated certificate, settings, two ports, and chat over TLS under load.

Everything runs over real TLS on loopback (the server's memory-BIO pump on one side, an `ssl.SSLSocket` on
the other). Abuse of the TLS port (plaintext, silent and slow handshakes) is in tests/security/test_tls.py.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import stat
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from chat_server.__main__ import build_parser, config_from
from chat_server.config import ServerConfig, load_toml
from chat_server.server import ChatServer
from chat_server.tls import (
    CERT_FILE,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    KEY_FILE,
    TlsConfig,
    TlsSetupError,
    load_or_create_identity,
)
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    Error,
    Hello,
    ProtocolConnection,
    Role,
    Said,
    Say,
    SignedOff,
    Welcome,
)
from shared.fingerprint import BadFingerprint, grouped, parse_fingerprint

from .client import ChatTestClient, wait_until
from .process import ServerProcess
from .tls_client import TlsTestClient, client_context

TLS_ON = TlsConfig(enabled=True)


def test_generated_key_is_private_and_reused_across_restarts(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    """First start: a key file with mode 0600 and a certificate; a restart keeps the same fingerprint."""
    first = make_server(tls=TLS_ON)
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / CERT_FILE).exists()
    fingerprint = first.fingerprint
    assert fingerprint is not None
    assert len(fingerprint) == 64
    assert first.tls_address == first.address  # --tls alone: the main port speaks TLS
    with TlsTestClient(first.address) as client:
        assert client.fingerprint == fingerprint  # what the server reports is what it presents
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.login("alice")
    first.stop()
    second = make_server(tls=TLS_ON)
    assert second.fingerprint == fingerprint
    with TlsTestClient(second.address) as client:
        assert client.fingerprint == fingerprint


def test_a_start_interrupted_after_the_key_keeps_the_key(tmp_path: Path) -> None:
    """A key without its certificate gets a new certificate for the same key (so the same fingerprint)."""
    cert, key = load_or_create_identity(tmp_path)
    server = ChatServer(ServerConfig(port=0, data_dir=tmp_path, tls=TLS_ON, history_sync="NORMAL"))
    server.start()
    fingerprint = server.fingerprint
    server.stop()
    cert.unlink()
    load_or_create_identity(tmp_path)
    server = ChatServer(ServerConfig(port=0, data_dir=tmp_path, tls=TLS_ON, history_sync="NORMAL"))
    server.start()
    try:
        assert server.fingerprint == fingerprint
    finally:
        server.stop()
    key.unlink()
    with pytest.raises(TlsSetupError, match="restore the key"):
        load_or_create_identity(tmp_path)


def test_given_certificate_and_key_are_used(make_server: Callable[..., ChatServer], tmp_path: Path) -> None:
    """--tls-cert/--tls-key: the server presents that certificate, and generates nothing."""
    elsewhere = tmp_path / "pki"
    cert, key = load_or_create_identity(elsewhere)
    reference = make_server(tls=TlsConfig(enabled=True, cert=cert, key=key), data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / KEY_FILE).exists()
    with TlsTestClient(reference.address) as client:
        assert client.fingerprint == reference.fingerprint


def test_unusable_certificate_is_a_clear_error(tmp_path: Path) -> None:
    """A certificate file that is not one stops the start with the file named."""
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate")
    config = ServerConfig(port=0, data_dir=tmp_path, tls=TlsConfig(cert=bad, key=bad, enabled=True))
    with pytest.raises(TlsSetupError, match=r"cert\.pem"):
        ChatServer(config).start()


def test_tls_1_1_is_refused(make_server: Callable[..., ChatServer]) -> None:
    """A client that offers at most TLS 1.1 gets the protocol_version alert; TLS 1.2 is accepted."""
    server = make_server(tls=TLS_ON)
    old = client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated: exactly why the server refuses it
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")  # let this OpenSSL speak the old protocol at all
    with (
        pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL"),
        TlsTestClient(server.address, context=old),
    ):
        pass
    tls12 = client_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with TlsTestClient(server.address, context=tls12) as client:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() == "TLSv1.2"
        client.login("modern")


def test_plaintext_and_tls_ports_share_the_rooms(make_server: Callable[..., ChatServer]) -> None:
    """--tls-port: plaintext on the main port, TLS on the other, one chat; a plaintext hello on the TLS
    port and a TLS handshake on the plaintext port both fail."""
    server = make_server(tls=TlsConfig(port=0))
    assert server.tls_address is not None
    assert server.tls_address != server.address
    with ChatTestClient(server.address) as plain, TlsTestClient(server.tls_address) as secure:
        plain.login("plain")
        secure.login("secure")
        plain.send(Say(room="lobby", text="from plaintext", ref=1))
        assert secure.recv(Said, nick="plain").text == "from plaintext"
        secure.send(Say(room="lobby", text="from tls", ref=2))
        assert plain.recv(Said, nick="secure").text == "from tls"
    with pytest.raises(ssl.SSLError), TlsTestClient(server.address):
        pass


def test_chat_over_tls_fans_out_thousands_of_messages_in_order(
    make_server: Callable[..., ChatServer],
) -> None:
    """2000 messages to four TLS readers that fall behind: every one arrives, in order, at every reader.

    A small kernel send buffer and receivers that only start reading after everything was sent force the
    sender to keep unsent ciphertext and wait for writability, again and again.
    """
    server = make_server(tls=TLS_ON, send_buffer=8 * 1024)
    count = 2000
    readers = [TlsTestClient(server.address, receive_buffer=8 * 1024) for _ in range(4)]
    try:
        for number, reader in enumerate(readers):
            reader.login(f"reader{number}")
        with TlsTestClient(server.address) as writer:
            writer.login("writer")
            for ref in range(count):
                writer.send(Say(room="lobby", text=f"message {ref:05d} " + "x" * 80, ref=ref))
            writer.recv(Ack, 30.0, ref=count - 1)
            for reader in readers:
                texts: list[str] = []
                while len(texts) < count:
                    said = reader.recv(Said, 30.0, nick="writer")
                    texts.append(said.text[:13])
                assert texts == [f"message {ref:05d}" for ref in range(count)]
    finally:
        for reader in readers:
            reader.close()


def test_slow_tls_reader_is_dropped_without_delaying_others(make_server: Callable[..., ChatServer]) -> None:
    """A TLS client that stops reading is dropped at the send-queue limit; a TLS peer gets everything."""
    server = make_server(
        tls=TLS_ON,
        send_buffer=16 * 1024,
        sendq_soft=32 * 1024,
        sendq_hard=64 * 1024,
        sendq_soft_seconds=60.0,
        write_timeout=60.0,
    )
    with (
        TlsTestClient(server.address) as alice,
        TlsTestClient(server.address) as bob,
        TlsTestClient(server.address, receive_buffer=4096) as slow,
    ):
        alice.login("alice")
        bob.login("bob")
        slow.login("slow")  # and never reads again
        sent, received = 0, 0
        off: list[SignedOff] = []
        deadline = time.monotonic() + 30
        while not off and time.monotonic() < deadline:
            alice.send(Say(room="lobby", text="y" * 4000, ref=sent))
            alice.recv(Ack, ref=sent)
            sent += 1
            for message in bob.drain(0.0):
                received += isinstance(message, Said)
                if isinstance(message, SignedOff):
                    off.append(message)
        assert off, "the slow TLS reader was never dropped"
        assert (off[0].nick, off[0].reason) == ("slow", "send queue exceeded")
        alice.send(Say(room="lobby", text="after", ref=sent))
        alice.recv(Ack, ref=sent)
        bob.recv(Said, text="after")
        received += sum(isinstance(m, Said) for m in bob.pending)
        assert received == sent
        wait_until(lambda: server.stats().connections == 2, 10.0, "the slow reader to be gone")


def test_server_shutdown_reaches_tls_clients_encrypted(make_server: Callable[..., ChatServer]) -> None:
    """Stopping the server: a TLS client reads the server_shutdown frame, then a clean end of stream."""
    server = make_server(tls=TLS_ON)
    client = TlsTestClient(server.address)
    try:
        client.login("alice")
        server.stop()
        assert client.recv(Error, code="server_shutdown").fatal

        def ended() -> bool:
            """True once the server's end of stream has been read."""
            client.drain(0.01)
            return client.closed

        wait_until(ended, 5.0, "the end of the stream")
    finally:
        client.close()


def test_tls_settings_from_the_config_file_and_the_command_line(tmp_path: Path) -> None:
    """The [tls] table and --tls, --tls-port, --tls-cert, --tls-key, --tls-handshake-timeout."""
    path = tmp_path / "server.toml"
    path.write_text(
        'port = 7000\n[tls]\nport = 7001\nhandshake_timeout = 2.5\ncert = "c.pem"\nkey = "k.pem"\n'
    )
    config = ServerConfig(**load_toml(path))
    assert config.tls == TlsConfig(
        enabled=True, port=7001, handshake_timeout=2.5, cert=Path("c.pem"), key=Path("k.pem")
    )
    assert config.tls.separate_port
    arguments = build_parser().parse_args(["--config", str(path), "--tls-handshake-timeout", "1"])
    assert config_from(arguments).tls.handshake_timeout == 1.0
    arguments = build_parser().parse_args(["--tls"])
    assert config_from(arguments).tls == TlsConfig(enabled=True)
    assert not config_from(arguments).tls.separate_port
    assert TlsConfig().handshake_timeout == DEFAULT_TLS_HANDSHAKE_TIMEOUT
    path.write_text("[tls]\nenabled = true\nhandshake_timout = 2\n")
    with pytest.raises(ValueError, match="handshake_timout"):
        load_toml(path)
    with pytest.raises(ValueError, match="differ"):
        ServerConfig(port=7000, tls=TlsConfig(port=7000))
    with pytest.raises(ValueError, match="both"):
        TlsConfig(cert=Path("c.pem"))
    with pytest.raises(ValueError, match="positive"):
        TlsConfig(handshake_timeout=0)
    assert dataclasses.replace(TlsConfig(), handshake_timeout=0.001).handshake_timeout == 0.001


def test_fingerprint_text_forms() -> None:
    """A fingerprint is accepted as people copy it (groups, colons, upper case) and refused otherwise."""
    digits = "ab" * 32
    assert parse_fingerprint(grouped(digits)) == digits
    assert parse_fingerprint(":".join(digits[i : i + 2] for i in range(0, 64, 2)).upper()) == digits
    assert parse_fingerprint("SHA256:" + digits) == digits
    for bad in ("", digits[:-1], digits + "0", "g" * 64):
        with pytest.raises(BadFingerprint):
            parse_fingerprint(bad)


def test_refusal_on_a_full_tls_port_is_a_close(make_server: Callable[..., ChatServer]) -> None:
    """Over max_clients on the TLS port the connection is closed at once (no handshake on the acceptor)."""
    server = make_server(tls=TLS_ON, max_clients=1)
    with TlsTestClient(server.address) as first:
        first.login("first")
        with socket.create_connection(server.address, timeout=5) as extra:
            assert extra.recv(1) == b""


def test_command_line_prints_the_tls_port_and_fingerprint(tmp_path: Path) -> None:
    """`chat-server --tls-port 0`: the plaintext line, then the TLS line with the fingerprint presented."""
    with ServerProcess("--port", "0", "--tls-port", "0", "--data-dir", str(tmp_path)) as server:
        assert server.address is not None, server.first_line
        assert server.process.stdout is not None
        words = server.process.stdout.readline().split()
        assert words[:4] == ["mpchat", "server", "tls", "on"], words
        host, port = words[4].rsplit(":", 1)
        assert words[5] == "fingerprint"
        with TlsTestClient((host, int(port))) as client:
            assert client.fingerprint == words[6]
            client.login("alice")
        with ChatTestClient(server.address) as plain:
            plain.login("bob")
        assert server.stop() == 0
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def test_no_ping_before_the_welcome(make_server: Callable[..., ChatServer]) -> None:
    """A client slow to say hello (a TLS handshake on a loaded machine) is neither pinged nor dropped for
    ping_timeout before its welcome (hello_timeout is the limit then): the first frame it gets is the
    welcome, the only frame a client accepts first."""
    server = make_server(tls=TLS_ON, ping_interval=0.2, ping_timeout=0.5)
    with TlsTestClient(server.address) as client:
        connected = time.monotonic()
        # Let several ping intervals pass before the hello (waiting for time itself, on purpose).
        wait_until(lambda: time.monotonic() - connected > 1.0, 5.0, "a few ping intervals")
        welcome = client.login("slow")  # the client's protocol object refuses anything else first
        assert welcome.nick == "slow"


def test_hello_in_the_same_segment_as_the_handshake_finish_is_answered(
    make_server: Callable[..., ChatServer],
) -> None:
    """A client that sends its TLS Finished and its hello in one write (both in the server's first read
    after the handshake) is welcomed: the hello is not left waiting in the TLS buffer."""
    server = make_server(tls=TLS_ON)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing)
    with socket.create_connection(server.address, timeout=5) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        protocol = ProtocolConnection(Role.CLIENT)
        tls.write(protocol.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="eager")))
        sock.sendall(outgoing.read())  # the client's Finished and the hello, in one segment
        received: list[object] = []
        while not any(isinstance(message, Welcome) for message in received):
            incoming.write(sock.recv(65536))  # the socket's timeout fails the test if nothing comes
            try:
                protocol.receive_data(tls.read(65536))
            except ssl.SSLWantReadError:
                continue
            received += protocol.events()
