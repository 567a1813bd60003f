"""The wire log: the last frames in and out of a client's connection, for the TUI's wire inspector (F12).

`ChatClient(..., wire_log=WireLog())` has every frame its sessions send or receive recorded here (through
`shared.ProtocolConnection.tap`): when, which way, its size on the wire, its type, the decoded map and the
frame's bytes. It is bounded: the last `max_frames` frames are kept (`DEFAULT_WIRE_LOG_FRAMES`), older ones
are dropped, and `total` counts every frame seen.

Secrets never enter it. A field the catalogue marks secret (passwords, the resume token: `wire(...,
secret=True)`) is replaced by `REDACTED` in the map, and the bytes of such a frame are the frame encoded
again with that replacement (`redacted` is then true), so neither the decoded view nor the hex shows it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import Message
from shared.codec import encode
from shared.schema import to_wire

#: Frames a wire log keeps (the newest): about 1,000 frames of chat cost a few hundred kilobytes.
DEFAULT_WIRE_LOG_FRAMES = 1000
#: What a secret field shows instead of its value.
REDACTED = "«redacted»"


@dataclass(frozen=True, slots=True)
class WireFrame:
    """One frame as it crossed the wire."""

    #: The number of the frame in the log (1 for the first ever seen), so a view can tell new ones.
    number: int
    #: When it was sent or received (`time.time()`).
    ts: float
    #: True for a frame the client sent.
    outgoing: bool
    #: Its type (`say`, `said`, ...).
    type: str
    #: Its size on the wire: the 4-byte length and the body (as sent or received, before any redaction).
    size: int
    #: The decoded map, secrets replaced by `REDACTED`.
    fields: dict[str, Any]
    #: The frame's bytes, length prefix included (encoded again with the secrets replaced when `redacted`).
    raw: bytes
    redacted: bool


class WireLog:
    """The last frames of a client's connections (see the module docstring)."""

    def __init__(
        self, max_frames: int = DEFAULT_WIRE_LOG_FRAMES, clock: Callable[[], float] = time.time
    ) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.frames: deque[WireFrame] = deque(maxlen=max_frames)
        #: Every frame seen, the dropped ones included.
        self.total = 0
        self._clock = clock

    def record(self, outgoing: bool, frame: bytes, message: Message) -> None:
        """Keep one frame (a `shared.connection.Tap`)."""
        size = len(frame)  # as it crossed the wire, before any redaction
        secret = {
            field.name: REDACTED
            for field in message.FIELDS
            if not field.repr and getattr(message, field.name) is not None
        }
        if secret:
            values = {field.name: getattr(message, field.name) for field in message.FIELDS}
            message = type(message)(**{**values, **secret})
            frame = encode(message)
        self.total += 1
        self.frames.append(
            WireFrame(
                number=self.total,
                ts=self._clock(),
                outgoing=outgoing,
                type=message.TYPE,
                size=size,
                fields=to_wire(message),
                raw=frame,
                redacted=bool(secret),
            )
        )

    def since(self, number: int) -> list[WireFrame]:
        """The frames kept whose number is above `number`, oldest first."""
        return [frame for frame in self.frames if frame.number > number]
