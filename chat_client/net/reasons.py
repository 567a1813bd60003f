"""Why a connection failed, in words a person reads: never an exception's text such as ``[Errno 104] ...``.

The status line, the log and `--plain` show these sentences instead of the exception's own text.
"""

from __future__ import annotations

import errno
import socket
import ssl

#: Sentences for the operating system's errors a chat connection meets, by errno.
_BY_ERRNO = {
    errno.ECONNREFUSED: "the server refused the connection (is it running?)",
    errno.ECONNRESET: "the connection was reset",
    errno.ECONNABORTED: "the connection was aborted",
    errno.EPIPE: "the connection was broken",
    errno.ETIMEDOUT: "the connection timed out",
    errno.ENETUNREACH: "the network is unreachable",
    errno.ENETDOWN: "the network is down",
    errno.EHOSTUNREACH: "the server's host is unreachable",
    errno.EHOSTDOWN: "the server's host is down",
    errno.EADDRNOTAVAIL: "the address is not available",
    errno.ENOTCONN: "the connection is not open",
}


def describe_failure(error: BaseException) -> str:
    """A short sentence saying why a connection failed or ended."""
    if isinstance(error, TimeoutError):
        return "the server did not answer in time"
    if isinstance(error, socket.gaierror):
        return "the server's name could not be found"
    if isinstance(error, ssl.SSLError):
        return "the encrypted connection failed (TLS)"
    if isinstance(error, OSError):
        if error.errno in _BY_ERRNO:
            return _BY_ERRNO[error.errno]
        if error.strerror:
            return "network error: " + error.strerror[:1].lower() + error.strerror[1:]
        return "network error"
    return "an unexpected error"
