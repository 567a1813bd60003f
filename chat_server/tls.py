"""TLS for the server: settings, the self-signed certificate, and the per-connection BIO pump.

Why memory BIOs
---------------
The thread model (chat_server/server.py) has a reader thread per connection doing blocking `recv`, and one
sender thread writing every socket non-blocking through a `dup`. An `ssl.SSLSocket` cannot be shared that
way: the TLS state lives in the socket object, and a blocking reader and a non-blocking writer on two
threads would corrupt it. So the sockets stay plain sockets, and TLS is a `TlsPump` in between:

* the reader thread does the handshake itself (`TlsPump.handshake`, before the connection is attached to
  the sender: nobody else writes the socket yet), with its own bounded `recv` and `sendall`;
* then, for each `recv`, the reader feeds the ciphertext in and reads the plaintext out (`decrypt`);
* the sender encrypts what it takes from the send queue (`encrypt`) and writes the ciphertext non-blocking,
  exactly as it writes plaintext, keeping what the kernel did not take.

One small lock per connection (``TlsPump._lock``) guards the `SSLObject` and its two BIOs; it is held only
while bytes move between memory buffers, never during socket I/O. The sender stays the only thread that
writes the socket after the handshake: bytes TLS itself wants to send (TLS 1.3 session tickets, alerts, key
updates) found by the reader are left in the outgoing BIO, and the reader marks the channel ready so the
sender drains them.

Certificates
------------
``--tls`` without ``--tls-cert/--tls-key`` uses ``tls-cert.pem`` and ``tls-key.pem`` in the data folder,
generating them on the first start (ECDSA P-256, self-signed): the private key file is created with mode
0600 from the start (``O_CREAT | O_EXCL``), never loosened. Clients pin the key, not a CA (docs/security.md).
The certificate names the server in its subjectAltName: the names and addresses of ``--tls-name``
(repeatable), by default the host name and the listening address. When they change, the certificate is
issued again with the same key, so the fingerprint clients pinned stays the same.

Policy (what scanners check)
----------------------------
TLS 1.2 and 1.3 only; in TLS 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305:
`TLS12_CIPHERS`), no CBC, no finite-field DHE; TLS 1.3's own suites are all AEAD and kept as OpenSSL has
them. Key exchange groups: X25519, P-256, P-384 (`GROUPS`). Renegotiation is refused
(`ssl.OP_NO_RENEGOTIATION`; the reader would have to write for it, and nothing needs it). Python 3.11's
`ssl` can set only one curve (`set_ecdh_curve`), so `set_groups` calls OpenSSL's
``SSL_CTX_set1_groups_list`` on the context through `ctypes`, after checking that it found the context's
``SSL_CTX`` (its options read back equal); should that ever fail, the server logs it and keeps OpenSSL's
default groups (all still safe: the cipher policy does not depend on it).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import ipaddress
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.fingerprint import certificate_fingerprint

log = logging.getLogger(__name__)

#: Seconds a new TLS connection has to finish its handshake, counted from accept.
DEFAULT_TLS_HANDSHAKE_TIMEOUT = 5.0
#: The oldest protocol version offered: TLS 1.0 and 1.1 are broken and refused.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
#: File names in the data folder for the generated certificate and key.
CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
#: The generated certificate's lifetime. Clients pin the public key, so expiry is not what protects them;
#: a long one means a small server never breaks on a date (docs/security.md says why that is safe here).
CERT_DAYS = 3650
#: TLS 1.2 cipher suites offered (OpenSSL syntax): ECDHE key exchange with an AEAD cipher, nothing else.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!PSK:!SHA1"
#: Key exchange groups offered, most preferred first.
GROUPS = ("X25519", "P-256", "P-384")
#: OpenSSL's ``SSL_CTRL_SET_GROUPS_LIST`` (ssl.h): what the ``SSL_CTX_set1_groups_list`` macro passes.
_SSL_CTRL_SET_GROUPS_LIST = 92
#: Host addresses that mean "every address": not a name a client connects to, so not put in the certificate.
_WILDCARDS = ("", "0.0.0.0", "::")
#: Longest the reader spends telling a failed handshake's peer why (a TLS alert), in seconds.
ALERT_TIMEOUT = 0.5
#: Bytes asked of the SSL object per `read` (it returns at most one record's worth at a time anyway).
READ_SIZE = 64 * 1024


class TlsSetupError(Exception):
    """The certificate or key cannot be read, written or used."""


class TlsFailure(Exception):
    """A TLS connection failed: bad handshake, timeout, or a corrupt record."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """The ``[tls]`` table of server.toml (and ``--tls``, ``--tls-port``, ``--tls-cert``, ``--tls-key``).

    With `enabled` and no `port`, the main port speaks TLS only. With a `port`, TLS is served there and the
    main port stays plaintext (two listeners, one chat). Setting `port` turns TLS on.
    """

    enabled: bool = False
    #: A second listening port for TLS; None: the main port itself speaks TLS. 0: any free port.
    port: int | None = None
    #: Certificate chain and private key (PEM); None: generated in the data folder on first start.
    cert: Path | None = None
    key: Path | None = None
    handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT
    #: Host names and IP addresses for the generated certificate's subjectAltName; empty: the host name
    #: and the listening address (`default_names`). Not used with ``cert``/``key`` of your own.
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names: object = self.names
        if isinstance(names, str) or not all(isinstance(name, str) for name in self.names):
            raise ValueError("tls names must be a list of host names and addresses")
        object.__setattr__(self, "names", tuple(self.names))
        for name in self.names:
            subject_alt_name(name)  # raises ValueError for something that is neither
        for name in ("cert", "key"):
            value: object = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(str(value)))
        if self.port is not None:
            if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
                raise ValueError(f"tls port must be 0-65535, not {self.port!r}")
            object.__setattr__(self, "enabled", True)
        if not isinstance(self.enabled, bool):
            raise ValueError(f"tls enabled must be true or false, not {self.enabled!r}")
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both tls cert and tls key, or neither (to use the generated pair)")
        timeout = self.handshake_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"tls handshake_timeout must be a positive number, not {timeout!r}")

    @property
    def separate_port(self) -> bool:
        """True when TLS has its own listener next to a plaintext one."""
        return self.enabled and self.port is not None


def tls_config_from_table(table: dict[str, Any]) -> TlsConfig:
    """Build a `TlsConfig` from the ``[tls]`` table of a config file (unknown keys are an error)."""
    known = {"enabled", "port", "cert", "key", "handshake_timeout", "names"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"[tls]: unknown setting(s) {', '.join(unknown)}")
    return TlsConfig(**table)


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--tls``, ``--tls-port``, ``--tls-cert``, ``--tls-key`` and ``--tls-handshake-timeout``."""
    group = parser.add_argument_group("TLS (clients pin the key on first use; see docs/security.md)")
    group.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="the port speaks TLS only (a self-signed certificate is generated in the data folder)",
    )
    group.add_argument(
        "--tls-port",
        type=int,
        metavar="PORT",
        help="serve TLS on this port as well; --port stays plaintext (implies --tls)",
    )
    group.add_argument("--tls-cert", type=Path, metavar="PATH", help="certificate chain (PEM) to use")
    group.add_argument("--tls-key", type=Path, metavar="PATH", help="its private key (PEM)")
    group.add_argument(
        "--tls-name",
        action="append",
        metavar="NAME",
        help="a host name or address for the generated certificate (repeatable; default: this host's"
        " name and the listening address)",
    )
    group.add_argument(
        "--tls-handshake-timeout",
        type=float,
        metavar="SECONDS",
        help="close a TLS connection whose handshake takes longer"
        f" (default {DEFAULT_TLS_HANDSHAKE_TIMEOUT:g})",
    )


def tls_config_from_args(args: argparse.Namespace, base: TlsConfig | None = None) -> TlsConfig:
    """Return `base` (default: the defaults) with the TLS options given on the command line applied."""
    changes: dict[str, Any] = {}
    if getattr(args, "tls", None):
        changes["enabled"] = True
    for option, name in (
        ("tls_port", "port"),
        ("tls_cert", "cert"),
        ("tls_key", "key"),
        ("tls_handshake_timeout", "handshake_timeout"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "tls_name", None):
        changes["names"] = tuple(args.tls_name)
    return dataclasses.replace(base or TlsConfig(), **changes)


def subject_alt_name(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """`name` as an IP address, or as a DNS name (checked); `ValueError` for anything else."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    labels = name.rstrip(".").split(".")
    if (
        not name
        or len(name) > 253
        or not all(
            0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() and label.isascii()
            for label in labels
        )
    ):
        raise ValueError(f"tls name {name!r} is neither a host name nor an IP address")
    return name.rstrip(".").lower()


def default_names(host: str) -> tuple[str, ...]:
    """The certificate's names without ``--tls-name``: this host's name, and `host` unless a wildcard."""
    names = [socket.gethostname()]
    if host not in _WILDCARDS:
        names.append(host)
    return tuple(dict.fromkeys(name for name in names if name))


# -- Certificate and context --------------------------------------------------------------------------------


def load_or_create_identity(folder: Path, names: Sequence[str] = ()) -> tuple[Path, Path]:
    """The generated certificate and key in `folder`, created on the first call; returns (cert, key).

    The certificate's subjectAltName holds `names`; a certificate with other names is issued again with
    the same key (so its fingerprint does not change).
    """
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        folder.mkdir(parents=True, exist_ok=True)
        if key_path.exists():
            if cert_path.exists():
                _warn_if_readable(key_path)
                if not names or _names_of(cert_path) == _san_set(names):
                    return cert_path, key_path
                log.info("event=tls_certificate_renamed names=%s (same key)", ",".join(names))
            # A start interrupted between the two files, or new names: keep the key (and the fingerprint).
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise TlsSetupError(f"{key_path} is not an ECDSA key; remove it to generate a new pair")
        elif cert_path.exists():
            raise TlsSetupError(
                f"{cert_path} exists but its key {key_path} does not; restore the key, or remove the"
                " certificate to generate a new pair (clients that pinned the old one will refuse the new)"
            )
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # 0600 from the first byte: never a moment where another user could read it.
            descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(pem)
                file.flush()
                os.fsync(file.fileno())
        _write_certificate(key, cert_path, names)
    except OSError as error:
        raise TlsSetupError(f"cannot create the TLS certificate in {folder}: {error}") from error
    log.info("event=tls_certificate_created cert=%s key=%s", cert_path, key_path)
    return cert_path, key_path


def _san_set(names: Sequence[str]) -> set[str]:
    """The subjectAltName entries for `names`, as comparable strings ("dns:host", "ip:192.0.2.1")."""
    entries = set()
    for name in names:
        value = subject_alt_name(name)
        entries.add(f"dns:{value}" if isinstance(value, str) else f"ip:{value}")
    return entries


def _names_of(cert_path: Path) -> set[str]:
    """The subjectAltName entries of a certificate file (empty without the extension)."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return set()  # unreadable: issued again (with the same key) by the caller
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {f"dns:{n.lower()}" for n in san.get_values_for_type(x509.DNSName)} | {
        f"ip:{a}" for a in san.get_values_for_type(x509.IPAddress)
    }


def _write_certificate(key: Any, cert_path: Path, names: Sequence[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mpchat server")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    entries: list[x509.GeneralName] = []
    for entry in dict.fromkeys(subject_alt_name(n) for n in names):
        entries.append(x509.DNSName(entry) if isinstance(entry, str) else x509.IPAddress(entry))
    if entries:
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    temporary = cert_path.with_name(cert_path.name + ".tmp")
    temporary.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    temporary.replace(cert_path)


def _warn_if_readable(key_path: Path) -> None:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("event=tls_key_readable key=%s mode=%o (chmod 600 it)", key_path, mode)


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A ready server-side TLS context and the fingerprint of its certificate's public key."""

    context: ssl.SSLContext
    fingerprint: str
    cert: Path

    def pump(self) -> TlsPump:
        """The TLS state of one new connection."""
        return TlsPump(self.context)


def server_tls(config: TlsConfig, data_folder: Path, host: str = "") -> ServerTls:
    """Load (or, without configured files, create) the certificate and key; build the context.

    `host` is the listening address: with the host name, the default names of a generated certificate.
    """
    if config.cert is not None and config.key is not None:
        cert_path, key_path = config.cert, config.key
    else:
        cert_path, key_path = load_or_create_identity(data_folder, config.names or default_names(host))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    apply_policy(context)
    try:
        context.load_cert_chain(cert_path, key_path)
        fingerprint = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(cert_path.read_text("ascii")))
    except (OSError, ValueError, ssl.SSLError) as error:
        raise TlsSetupError(f"cannot use the certificate {cert_path} and key {key_path}: {error}") from error
    return ServerTls(context, fingerprint, cert_path)


def apply_policy(context: ssl.SSLContext) -> None:
    """TLS 1.2+, ECDHE+AEAD suites in TLS 1.2, the groups in `GROUPS`, no renegotiation (module docstring)."""
    context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_RENEGOTIATION  # a renegotiation would need the reader to write
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_ciphers(TLS12_CIPHERS)
    if not set_groups(context, GROUPS):
        log.warning("event=tls_groups_unset groups=%s (OpenSSL's defaults are offered)", ":".join(GROUPS))


def set_groups(context: ssl.SSLContext, groups: Sequence[str]) -> bool:
    """Offer only `groups` for key exchange; False if this Python/OpenSSL does not let us (see above)."""
    setter = getattr(context, "set_groups", None)  # Python's own, where it exists
    if setter is not None:
        try:
            setter(":".join(groups))
            return True
        except (ssl.SSLError, ValueError):
            return False
    try:
        import _ssl

        library = ctypes.CDLL(_ssl.__file__)  # its symbols include libssl's, which it links
        control, get_options = library.SSL_CTX_ctrl, library.SSL_CTX_get_options
    except (OSError, AttributeError, ImportError):
        return False
    control.restype, control.argtypes = (
        ctypes.c_long,
        [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p],
    )
    get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
    # CPython's SSLContext object holds its SSL_CTX pointer right after the object header.
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer or get_options(pointer) != context.options:
        return False  # not the SSL_CTX after all: touch nothing
    return bool(control(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, ":".join(groups).encode("ascii")) == 1)


# -- One connection -----------------------------------------------------------------------------------------


class TlsPump:
    """One connection's TLS state: an `SSLObject` between two memory BIOs (see the module docstring).

    `handshake` runs on the reader thread before anyone else uses the pump; afterwards `decrypt` (reader)
    and `encrypt`/`goodbye` (sender) each take the lock for a few memory copies and never do socket I/O.
    """

    __slots__ = ("_incoming", "_lock", "_outgoing", "_ssl", "version")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._lock = threading.Lock()
        #: The negotiated protocol ("TLSv1.3"), once the handshake is done.
        self.version: str | None = None

    def handshake(self, sock: socket.socket, deadline: float, clock: Callable[[], float]) -> None:
        """Complete the server handshake on `sock` (blocking, bounded by `deadline` on `clock`).

        Raises `TlsFailure` when the peer does not speak TLS (1.2 or later), closes, or is too slow.
        """
        while True:
            done, failure = False, None
            with self._lock:
                try:
                    self._ssl.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as error:
                    failure = TlsFailure(f"handshake failed: {error.reason or error}")
                reply = self._outgoing.read()
            if failure is not None:
                if reply:  # tell a TLS peer why (e.g. "protocol version" to a TLS 1.1 client)
                    with contextlib.suppress(OSError):
                        sock.settimeout(max(0.001, min(ALERT_TIMEOUT, deadline - clock())))
                        sock.sendall(reply)
                raise failure
            try:
                if reply:
                    sock.settimeout(_remaining(deadline, clock))
                    sock.sendall(reply)
                if done:
                    self.version = self._ssl.version()
                    return
                sock.settimeout(_remaining(deadline, clock))
                data = sock.recv(READ_SIZE)
            except TimeoutError:
                raise TlsFailure("handshake timeout") from None
            except OSError as error:
                raise TlsFailure(f"handshake failed: {error.strerror or error}") from None
            if not data:
                raise TlsFailure("closed during the handshake")
            self._incoming.write(data)

    def decrypt(self, data: bytes) -> tuple[bytes, bool, bool]:
        """Feed ciphertext from `recv`; return (plaintext, peer closed TLS, bytes are waiting to be sent).

        Raises `TlsFailure` on a corrupt or forged record (the connection cannot continue).
        """
        chunks: list[bytes] = []
        closed = False
        with self._lock:
            self._incoming.write(data)
            try:
                while chunk := self._ssl.read(READ_SIZE):
                    chunks.append(chunk)
            except ssl.SSLWantReadError:
                pass  # everything complete has been read; a partial record waits in the BIO
            except ssl.SSLZeroReturnError:
                closed = True  # close_notify: a clean end of the stream
            except ssl.SSLError as error:
                raise TlsFailure(f"bad TLS record: {error.reason or error}") from None
            waiting = self._outgoing.pending > 0
        return b"".join(chunks), closed, waiting

    @property
    def partial(self) -> bool:
        """True while an incomplete TLS record waits for its remaining bytes (reader thread)."""
        return self._incoming.pending > 0

    def encrypt(self, plaintext: bytes) -> bytes:
        """Ciphertext for `plaintext`, plus anything TLS queued itself (tickets, alerts); sender thread."""
        with self._lock:
            if plaintext:
                self._ssl.write(plaintext)
            return self._outgoing.read()

    def goodbye(self) -> bytes:
        """The close_notify alert (and anything still queued): the last bytes written to the peer."""
        with self._lock:
            with contextlib.suppress(ssl.SSLError):  # mostly SSLWantReadError: we do not wait for theirs
                self._ssl.unwrap()
            return self._outgoing.read()


def _remaining(deadline: float, clock: Callable[[], float]) -> float:
    remaining = deadline - clock()
    if remaining <= 0:
        raise TimeoutError
    return remaining
