"""Protocol limits: every size the decoder enforces, with its named default.

A server may configure other values; it announces the ones in force in its `welcome` frame, so that a client
can check a message before sending it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Largest frame body (the msgpack map, without the 4-byte header) in bytes.
DEFAULT_MAX_FRAME = 64 * 1024
#: Largest chat message text, in bytes of UTF-8.
DEFAULT_MAX_TEXT = 4096
#: Longest nick, in characters (code points).
DEFAULT_MAX_NICK = 32
#: Longest room name, in characters.
DEFAULT_MAX_ROOM = 64
#: Longest room topic, in bytes of UTF-8.
DEFAULT_MAX_TOPIC = 512
#: Longest free-form short text (quit/leave reason, away message, error message), in bytes of UTF-8.
DEFAULT_MAX_REASON = 512
#: Most entries in one list field (history page, member list, room list).
DEFAULT_MAX_LIST = 1000
#: Bytes of file data in one `file_chunk` or `file_data` frame: well inside `DEFAULT_MAX_FRAME` with the
#: frame's other fields, so a chunk never needs a larger frame limit.
DEFAULT_FILE_CHUNK = 48 * 1024
#: Chunks a client may have in flight per transfer: `file_chunk` frames not yet confirmed by `file_progress`,
#: or `file_get` requests not yet answered. Enough to keep a LAN link busy; small enough that a chat frame
#: never waits behind more than a few chunks in any queue.
DEFAULT_FILE_WINDOW = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The size limits one side enforces on what it receives."""

    max_frame: int = DEFAULT_MAX_FRAME
    max_text: int = DEFAULT_MAX_TEXT
    max_nick: int = DEFAULT_MAX_NICK
    max_room: int = DEFAULT_MAX_ROOM
    max_topic: int = DEFAULT_MAX_TOPIC
    max_reason: int = DEFAULT_MAX_REASON
    max_list: int = DEFAULT_MAX_LIST

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"limit {name} must be a positive integer, not {value!r}")
        if self.max_frame > 0xFFFFFFFF:
            raise ValueError("max_frame must fit the 4-byte length header")


DEFAULT_LIMITS = Limits()
