"""Frames the server writes on its own behalf: error frames, and the helpers that keep them valid.

The server's own texts go into `reason`-checked fields (an error's `message`, a sign-off's `reason`), so they
are clipped to `SERVER_TEXT_MAX` bytes: a client never refuses a frame because the server wrote too much.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Error, Ok

from .config import SERVER_TEXT_MAX

if TYPE_CHECKING:
    from .hub import Client

#: Room for the outer map of a history or list reply besides its entries, so the reply fits one frame.
REPLY_MARGIN = 512


def clip(text: str, max_bytes: int = SERVER_TEXT_MAX) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, on a character boundary."""
    data = text.encode()
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")


def error_frame(
    code: ErrorCode,
    message: str,
    ref: int | None = None,
    *,
    retry_after_ms: int | None = None,
    fatal: bool | None = None,
) -> bytes:
    """The encoded `error` frame for `code` (fatal when the code is, unless `fatal` says otherwise)."""
    error = Error(
        code=code.value,
        message=clip(message),
        fatal=code.fatal if fatal is None else fatal,
        ref=ref,
        retry_after_ms=retry_after_ms,
    )
    return encode(error)


def answer(client: Client, ref: int | None) -> None:
    """Send `client` the `ok` for its request with `ref` (after the broadcast that carried the effect)."""
    if ref is not None:
        client.send(encode(Ok(ref=ref)))


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def fatal_frame(code: ErrorCode, message: str, ref: int | None = None) -> bytes:
    """An encoded error frame that announces the connection is closing."""
    return error_frame(code, message, ref, fatal=True)
