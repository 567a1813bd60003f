"""The TLS policy as a scanner sees it, over real TCP: only ECDHE+AEAD suites in TLS 1.2, only the groups
X25519, P-256 and P-384, no renegotiation, and a subjectAltName in the generated certificate
(docs/security.md, "TLS policy"). Probed with Python clients and with a real `openssl s_client`."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from chat_server.server import ChatServer
from chat_server.tls import CERT_FILE, TlsConfig
from tests.server.tls_client import client_context

MakeServer = Callable[..., ChatServer]
OPENSSL = shutil.which("openssl")
ROOT = Path(__file__).parents[2]


def handshake(server: ChatServer, context: ssl.SSLContext) -> str:
    """Connect with `context` and complete a handshake; return the negotiated cipher (raises SSLError)."""
    with (
        socket.create_connection(server.address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="mpchat") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return cipher[0]


def tls12_client(ciphers: str) -> ssl.SSLContext:
    """A TLS 1.2-only client offering exactly `ciphers`."""
    context = client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


def s_client(server: ChatServer, *options: str, stdin: str = "") -> str:
    """Run `openssl s_client` against the server with `options`; return everything it printed."""
    assert OPENSSL is not None, "these tests need the openssl command"
    host, port = server.address
    result = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"{host}:{port}", *options],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr


@pytest.fixture
def server(make_server: MakeServer) -> ChatServer:
    """A TLS-only server with a generated certificate."""
    return make_server(tls=TlsConfig(enabled=True))


def test_a_cbc_only_client_is_refused(server: ChatServer) -> None:
    """The two CBC suites scanners flagged (SHA-256/384 HMAC) are refused; an AEAD suite is accepted."""
    with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|handshake failure"):
        handshake(server, tls12_client("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384"))
    assert handshake(server, tls12_client("ECDHE-ECDSA-AES128-GCM-SHA256")) == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert handshake(server, tls12_client("ECDHE-ECDSA-CHACHA20-POLY1305")) == "ECDHE-ECDSA-CHACHA20-POLY1305"


@pytest.mark.parametrize("group", ["X448", "P-521", "ffdhe2048"])
def test_groups_off_the_list_are_refused(server: ChatServer, group: str) -> None:
    """A client offering only X448, P-521 or ffdhe2048 gets a handshake failure (TLS 1.3 and 1.2)."""
    for version in ("-tls1_3", "-tls1_2"):
        output = s_client(server, version, "-groups", group)
        assert "handshake failure" in output, (version, output[-400:])


@pytest.mark.parametrize(
    ("group", "shown"), [("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1")]
)
def test_groups_on_the_list_are_accepted(server: ChatServer, group: str, shown: str) -> None:
    """X25519, P-256 and P-384 each complete a handshake, and are the key exchange used."""
    output = s_client(server, "-groups", group)
    assert f"Server Temp Key: {'ECDH, ' if group != 'X25519' else ''}{shown}" in output, output[-400:]


def test_renegotiation_is_refused(server: ChatServer) -> None:
    """A TLS 1.2 client that asks to renegotiate ("R" to s_client) gets `no renegotiation`."""
    output = s_client(server, "-tls1_2", stdin="R\n")
    assert "RENEGOTIATING" in output
    assert "no renegotiation" in output


def test_the_generated_certificate_names_the_server(make_server: MakeServer, tmp_path: Path) -> None:
    """Without --tls-name: the host name and the listening address; with it, exactly the names given,
    issued again with the same key (the fingerprint clients pinned does not change)."""
    first = make_server(tls=TlsConfig(enabled=True))
    fingerprint = first.fingerprint
    first.stop()
    cert = tmp_path / CERT_FILE
    assert subject_alt_names(cert) == [f"dns:{socket.gethostname().lower()}", "ip:127.0.0.1"]
    second = make_server(tls=TlsConfig(enabled=True, names=("chat.example", "192.0.2.7", "2001:db8::1")))
    assert subject_alt_names(cert) == ["dns:chat.example", "ip:192.0.2.7", "ip:2001:db8::1"]
    assert second.fingerprint == fingerprint
    presented = ssl.get_server_certificate(second.address)
    assert x509.load_pem_x509_certificate(presented.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )


def subject_alt_names(cert: Path) -> list[str]:
    """The certificate's subjectAltName entries, in order, as "dns:NAME" or "ip:ADDRESS"."""
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [
        f"dns:{name.value}" if isinstance(name, x509.DNSName) else f"ip:{name.value}"
        for name in san
        if isinstance(name, x509.DNSName | x509.IPAddress)
    ]


def test_cli_refuses_a_tls_name_that_is_no_name(tmp_path: Path) -> None:
    """--tls-name with a space or a slash: a usage error (exit 2), before anything is generated."""
    command = ["--port", "0", "--tls", "--data-dir", str(tmp_path), "--tls-name", "not a/name"]
    result = subprocess.run(
        [sys.executable, "-m", "chat_server", *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "neither a host name nor an IP address" in result.stderr
    assert not (tmp_path / CERT_FILE).exists()
