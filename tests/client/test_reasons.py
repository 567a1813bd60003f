"""Connection failures become sentences: never ``[Errno 104] Connection reset by peer`` on the status line."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from chat_client.net.reasons import describe_failure


def test_common_socket_errors_become_sentences() -> None:
    """Refused, reset, broken, unreachable, unknown name, timeout and TLS failures each read as a sentence."""
    cases = {
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"): "the server refused the connection",
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"): "the connection was reset",
        BrokenPipeError(errno.EPIPE, "Broken pipe"): "the connection was broken",
        OSError(errno.ENETUNREACH, "Network is unreachable"): "the network is unreachable",
        socket.gaierror(-2, "Name or service not known"): "the server's name could not be found",
        TimeoutError(): "the server did not answer in time",
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER]"): "the encrypted connection failed",
        OSError(errno.EMFILE, "Too many open files"): "network error: too many open files",
        OSError("weird"): "network error",
        ValueError("a bug"): "an unexpected error",
    }
    for error, sentence in cases.items():
        said = describe_failure(error)
        assert said.startswith(sentence), (error, said)
        assert "Errno" not in said
        assert "Error" not in said


def test_a_refused_connection_is_described_from_a_real_socket() -> None:
    """Connecting to a port nobody listens on (bound, then closed) gives the "refused" sentence."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as raised:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert describe_failure(raised.value) == "the server refused the connection (is it running?)"
