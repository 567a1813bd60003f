"""TLS for the client: the context, and the check of the server's key before anything is sent.

The server's certificate is self-signed (or from any CA: it does not matter), so no CA is consulted and no
host name is checked. What is checked is the SHA-256 fingerprint of the server's public key, against:

* the fingerprint the user gave in advance (``--fingerprint``), if any: a mismatch is refused, even on the
  first connection;
* the pin recorded for this ``host:port`` on the first connection (`chat_client.net.pins`): a mismatch is
  refused, and the error shows both fingerprints and the command that removes the old pin.

With no pin yet, the key is pinned and the connection goes on (trust on first use); the `Connected` event's
`identity` says so, so the UI can show the fingerprint for the user to compare. A fingerprint heard from a
LAN beacon is only ever displayed: it is not a pin and never overrides one.

`Session.open` calls `verify` after the TLS handshake and before the first byte of the chat protocol (not
even `hello` goes to an unverified server), on the first connection and on every reconnect.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field

from chat_client.net.errors import FingerprintMismatch, ServerKeyChanged
from chat_client.net.pins import PinStore, PinStoreError, pin_key
from shared.addresses import parse_servers
from shared.fingerprint import certificate_fingerprint, grouped

#: The oldest protocol version the client accepts.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
#: The environment variable naming a file to append the TLS session keys to (the NSS key log format that
#: browsers and curl write too): for Wireshark, to decrypt a session while learning or debugging.
SSLKEYLOG_ENV = "SSLKEYLOGFILE"


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """Connect with TLS and check the server's key: against `fingerprint` if given, and the pin."""

    #: The fingerprint the user expects (64 hex digits, see `shared.fingerprint.parse_fingerprint`).
    fingerprint: str | None = None
    pins: PinStore = field(default_factory=PinStore)


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """The verified key of a TLS connection, for the UI."""

    fingerprint: str
    #: The negotiated protocol, e.g. ``TLSv1.3``.
    version: str
    #: True when this connection recorded the pin (the first connection to this host and port).
    pinned_now: bool

    def describe(self) -> str:
        """One line for people: encrypted, how, and the key (new or verified)."""
        how = "pinned now (first connection)" if self.pinned_now else "matches the pinned key"
        return f"encrypted ({self.version}); server key SHA-256 {grouped(self.fingerprint)}, {how}"


def client_context() -> ssl.SSLContext:
    """TLS 1.2 or later, no CA and no host name check: the key is checked by fingerprint instead.

    With `SSLKEYLOG_ENV` set, the session keys are appended to that file, so Wireshark can decrypt the
    session: a teaching and debugging aid only (anyone who reads the file reads the chat; docs/lab.md).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = MINIMUM_VERSION
    keylog = os.environ.get(SSLKEYLOG_ENV)
    if keylog:
        context.keylog_filename = keylog
    return context


def verify(
    host: str, port: int, certificate_der: bytes | None, version: str, tls: TlsOptions
) -> ServerIdentity:
    """Check the presented certificate's key; pin it on first use. Raises `UntrustedServer` subclasses."""
    key = pin_key(host, port)
    if certificate_der is None:
        raise FingerprintMismatch(key, tls.fingerprint or "", "")
    presented = certificate_fingerprint(certificate_der)
    if tls.fingerprint is not None and presented != tls.fingerprint:
        raise FingerprintMismatch(key, tls.fingerprint, presented)
    pinned = tls.pins.get(key)
    if pinned is not None and pinned != presented:
        raise ServerKeyChanged(key, pinned, presented)
    if pinned is None:
        tls.pins.add(key, presented)
    return ServerIdentity(presented, version, pinned_now=pinned is None)


def tls_for(host: str, port: int, *, tls: bool, fingerprint: str | None, pins: PinStore) -> TlsOptions | None:
    """The TLS options for a connection, or None for plaintext.

    TLS when asked for, when a fingerprint is given, and also when this ``host:port`` has a pin: a server
    once reached with TLS is never silently reached without it (no downgrade by forgetting ``--tls``). When
    `host` names several servers of one chat (`shared.addresses.parse_servers`), a pin of any of them makes
    the whole chat TLS.
    """
    if fingerprint is not None:
        tls = True
    elif not tls:
        try:
            servers = parse_servers(host, port)
            tls = any(pins.get(pin_key(name, number)) is not None for name, number in servers)
        except PinStoreError:
            tls = True  # cannot tell: use TLS, and the check reports the damaged file
    return TlsOptions(fingerprint, pins) if tls else None
