"""The client library's exceptions: every failure a caller can act on has its own class.

`ServerError` and its subclass `LoginRefused` carry the server's stable error code (`shared.ErrorCode`
values such as ``nick_taken``), so callers branch on the code, never on the wording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.fingerprint import grouped

if TYPE_CHECKING:
    from shared import Error


class ClientError(Exception):
    """Base class of every error the client library raises."""


class ServerError(ClientError):
    """The server refused a request (or ended the session) with an `error` frame."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code}: {error.message}" if error.message else error.code)
        self.error = error
        self.code = error.code
        self.message = error.message
        self.fatal = error.fatal
        self.retry_after_ms = error.retry_after_ms


class LoginRefused(ServerError):
    """The server refused the login (`hello`): wrong nick, nick in use, server full, wrong protocol..."""


class InvalidRequest(ClientError):
    """A request broke a protocol rule before it was sent (too long, bad nick, bad room name)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(ClientError):
    """The connection ended (closed, reset, timed out, or the server broke the protocol)."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        #: The server's error code when it closed the session with a fatal error, else None.
        self.code = code


class NotConnected(ClientError):
    """A request that needs an answer was made while the client is not connected."""


class RequestTimeout(ClientError):
    """The server did not answer a request in time."""


class OutboxFull(ClientError):
    """Too many messages are waiting to be delivered; the new one was not queued."""


class ClientClosed(ClientError):
    """The client was closed: no more requests can be made."""


class TransferError(ClientError):
    """A file transfer failed. `code` is the server's error code (``quota_exceeded``, ``no_such_file``...)
    or one of the client's own (``checksum_mismatch``, ``cancelled``, ``unreadable``, ``unwritable``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class ChecksumMismatch(TransferError):
    """The downloaded bytes do not hash to the offer's SHA-256: the file was not kept."""

    def __init__(self, message: str) -> None:
        super().__init__("checksum_mismatch", message)


class TransferCancelled(TransferError):
    """The transfer was cancelled by the user."""

    def __init__(self) -> None:
        super().__init__("cancelled", "cancelled")


class FilesUnsupported(ClientError):
    """The server takes no files (its welcome announced no file policy)."""


class UnknownFile(ClientError):
    """No file offer with this id is known to the client (it arrives with a room's history or live)."""


class UntrustedServer(ClientError):
    """The server's TLS key is not the one expected: nothing was sent, and the client does not retry.

    `server` is the pin's name (``host:port``); `expected` and `presented` are 64-hex-digit fingerprints.
    """

    code = "untrusted_server"

    def __init__(self, message: str, server: str, expected: str, presented: str) -> None:
        super().__init__(message)
        self.server = server
        self.expected = expected
        self.presented = presented


class ServerKeyChanged(UntrustedServer):
    """The server presented a different key than the one pinned on the first connection."""

    def __init__(self, server: str, pinned: str, presented: str) -> None:
        super().__init__(
            f"the server at {server} presented a DIFFERENT KEY than the one pinned on first connection\n"
            f"  pinned:    {grouped(pinned)}\n"
            f"  presented: {grouped(presented)}\n"
            "Someone may be intercepting the connection, or the server's key was replaced. Ask the server's\n"
            "operator for its fingerprint; only if it is the presented one, remove the old pin with\n"
            f"  chat-client --forget-pin {server}\n"
            "and connect again.",
            server,
            pinned,
            presented,
        )


class FingerprintMismatch(UntrustedServer):
    """The server's key does not match the fingerprint given in advance (``--fingerprint``)."""

    def __init__(self, server: str, expected: str, presented: str) -> None:
        shown = grouped(presented) if presented else "(no certificate)"
        super().__init__(
            f"the server at {server} presented a key that does not match the fingerprint you gave\n"
            f"  expected:  {grouped(expected)}\n"
            f"  presented: {shown}\n"
            "Nothing was sent. Check the fingerprint with the server's operator.",
            server,
            expected,
            presented,
        )
