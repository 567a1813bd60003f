"""`chat-server --record FILE`: every frame in and out, one JSON line each, for replay (`chat-lab replay`).

The recorder is a handler of the frame trace (the `chat_server.trace` logger that `--trace` turns on): the
reader threads trace each request they decode ("in"), the sender thread each frame it takes from a send
queue ("out"), and the reader the end of its connection ("end"). So recording costs nothing while it is
off: the reader and the sender already test one attribute (`_trace`, set when the connection or the sender
starts) before tracing, and that test is all that runs when neither `--trace` nor `--record` is on.

A line: ``{"t": 1765000000.123, "conn": 3, "dir": "in", "frame": {"type": "say", ...}}`` (`t` in seconds
since the epoch; bytes as ``{"$bytes": "<base64>"}``; an "end" line has ``"reason"`` instead of a frame).
Secret fields (passwords, resume tokens: the fields declared `secret`) are written as ``"<redacted>"``. The
file is bounded: past `max_bytes` it is rotated (FILE.1, FILE.2, ... up to `files` older ones; the oldest
is deleted), so a recording server never fills the disk.

Threads: `emit` runs on whichever thread traces (the readers, the sender); the handler's own lock (taken by
`logging.Handler.handle`) serialises the writes. No I/O of the chat path waits for it longer than one line.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import logging.handlers
from pathlib import Path
from typing import Any

from shared.schema import Message, to_wire

#: Bytes one recording file may reach before it is rotated (`--record-max-bytes`).
DEFAULT_RECORD_MAX_BYTES = 16 * 1024 * 1024
#: Older files kept besides the current one (`--record-files`).
DEFAULT_RECORD_FILES = 3
#: What a secret field is written as.
REDACTED = "<redacted>"
TRACE_LOGGER = "chat_server.trace"


def redacted(message: Message) -> dict[str, Any]:
    """The wire map of `message` with its secret fields (declared `secret=True`, so never shown) replaced."""
    wire = to_wire(message)
    for field in dataclasses.fields(message):  # type: ignore[arg-type]
        if not field.repr and wire.get(field.name) is not None:
            wire[field.name] = REDACTED
    return wire


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class FrameRecorder(logging.handlers.RotatingFileHandler):
    """Writes the frame trace as JSON lines to a bounded, rotating file."""

    def __init__(
        self, path: Path, max_bytes: int = DEFAULT_RECORD_MAX_BYTES, files: int = DEFAULT_RECORD_FILES
    ):
        if max_bytes <= 0 or files < 0:
            raise ValueError("record_max_bytes must be positive and record_files at least 0")
        super().__init__(path, maxBytes=max_bytes, backupCount=files, encoding="utf-8")
        self.setLevel(logging.DEBUG)
        #: The trace logger's level and propagation before recording started (`stop_recording` restores them).
        self.previous: tuple[int, bool] = (logging.NOTSET, True)

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line for one trace record (`conn=%d in %r`, `... out %r` or `... end %r`)."""
        conn, payload = record.args if isinstance(record.args, tuple) else (0, None)
        direction = record.msg.split()[1] if isinstance(record.msg, str) else "?"
        line: dict[str, Any] = {"t": round(record.created, 6), "conn": conn, "dir": direction}
        if direction == "end":
            line["reason"] = str(payload)
        elif isinstance(payload, Message):
            line["frame"] = _jsonable(redacted(payload))
        else:
            line["frame"] = _jsonable(payload)
        return json.dumps(line, ensure_ascii=False)


def start_recording(
    path: Path, max_bytes: int = DEFAULT_RECORD_MAX_BYTES, files: int = DEFAULT_RECORD_FILES
) -> FrameRecorder:
    """Turn the frame trace on and write it to `path`; call before the server starts (the reader and the
    sender read the trace's level when they start). Returns the handler, for `stop_recording`."""
    recorder = FrameRecorder(path, max_bytes, files)
    logger = logging.getLogger(TRACE_LOGGER)
    recorder.previous = (logger.level, logger.propagate)
    if not logger.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # recording alone: the trace goes to the file, not to the log
    logger.addHandler(recorder)
    return recorder


def stop_recording(recorder: FrameRecorder) -> None:
    """Detach and close the recorder, and put the trace logger back as it was."""
    logger = logging.getLogger(TRACE_LOGGER)
    logger.removeHandler(recorder)
    logger.setLevel(recorder.previous[0])
    logger.propagate = recorder.previous[1]
    recorder.close()
