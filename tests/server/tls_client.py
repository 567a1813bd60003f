"""A TLS flavour of the synchronous test client: the same `ChatTestClient`, over an `ssl.SSLSocket`.

Tests pin nothing here: they compare the certificate the server presented with the fingerprint it reports.
"""

from __future__ import annotations

import socket
import ssl

from shared.fingerprint import certificate_fingerprint

from .client import DEFAULT_TIMEOUT, ChatTestClient


def client_context() -> ssl.SSLContext:
    """A client context that accepts any certificate (the tests check the fingerprint themselves)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF  # a dropped connection reads as an end of stream
    return context


class TlsTestClient(ChatTestClient):
    """A `ChatTestClient` whose socket does the TLS handshake on connect (within the default timeout)."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        source: str | None = None,
        context: ssl.SSLContext | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        super().__init__(address, source=source)
        if receive_buffer is not None:
            # A fresh socket: reconnect with the small buffer set before connecting (it shapes the window).
            self.sock.close()
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            raw.settimeout(DEFAULT_TIMEOUT)
            raw.connect(address)
            self.sock = raw
        self.sock = (context or client_context()).wrap_socket(self.sock)

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the certificate the server presented."""
        assert isinstance(self.sock, ssl.SSLSocket)
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return certificate_fingerprint(der)
