"""The codec: message objects to frame bytes, and frame bodies back to validated message objects.

Decoding untrusted bytes is where a server is most exposed, so `decode_body` is strict and bounded:

1. msgpack is decoded with limits derived from the body's size (itself capped by the framing layer),
   strict UTF-8 strings and string-only map keys; extension types (including msgpack timestamps) are refused.
2. The result must be a map with a string `type` that the receiving side accepts.
3. Every field is checked by its message class (`shared.schema`): type, range, length and characters.

Whatever goes wrong surfaces as one `RemoteProtocolError` carrying the code to send back. Any other
exception escaping this module is a bug.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import ErrorCode, RemoteProtocolError
from .framing import frame
from .limits import Limits
from .schema import MAX_UINT, Message, build, to_wire

_PACKER_OPTIONS: dict[str, Any] = {"use_bin_type": True}


def encode(message: Message) -> bytes:
    """Return the complete frame (header and body) for `message`."""
    return frame(encode_body(message))


def encode_body(message: Message) -> bytes:
    """Return the msgpack body of `message`, without the length header."""
    return msgpack.packb(to_wire(message), **_PACKER_OPTIONS)  # type: ignore[no-any-return]


def decode_body(body: bytes, accepted: dict[str, type[Message]], limits: Limits) -> Message:
    """Decode and validate one frame body into a message of a type in `accepted`.

    Unknown wire types raise `unknown_type` (not fatal: the frame was well formed); anything malformed
    raises `bad_frame` (fatal); a well-formed map with a wrong field raises that field's code (not fatal).
    """
    data = _unpack(body)
    if type(data) is not dict:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "a frame must hold a msgpack map")
    for key in data:
        if type(key) is not str:
            raise RemoteProtocolError(ErrorCode.BAD_FRAME, "map keys must be strings")
    type_name = data.get("type")
    if type(type_name) is not str:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "a frame must have a string 'type'")
    cls = accepted.get(type_name)
    try:
        if cls is None:
            shown = type_name if len(type_name) <= 32 and type_name.isprintable() else "(unprintable)"
            raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {shown!r}")
        return build(cls, data, limits)
    except RemoteProtocolError as error:
        # Let the answer carry the request's `ref`, so the client knows which request was refused.
        ref = data.get("ref")
        if type(ref) is int and 0 <= ref <= MAX_UINT:
            error.ref = ref
        raise


def _unpack(body: bytes) -> Any:
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext)
    except RemoteProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        # ValueError covers ExtraData, FormatError, StackError and UnicodeDecodeError; TypeError an unhashable
        # map key. msgpack refuses each of these before we see a value.
        raise RemoteProtocolError(
            ErrorCode.BAD_FRAME, f"not one msgpack value: {type(error).__name__}"
        ) from None
    if type(value) is dict or type(value) is list:
        _refuse_timestamps(value)
    return value


def _refuse_ext(code: int, data: bytes) -> Any:
    raise RemoteProtocolError(ErrorCode.BAD_FRAME, f"msgpack extension type {code} is not allowed")


def _refuse_timestamps(value: Any) -> None:
    """Refuse msgpack timestamps, the one extension type msgpack decodes without calling `ext_hook`."""
    stack = [value]
    while stack:
        container = stack.pop()
        for item in container.values() if type(container) is dict else container:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append(item)
            elif kind is msgpack.Timestamp:
                raise RemoteProtocolError(ErrorCode.BAD_FRAME, "msgpack extension type -1 is not allowed")
