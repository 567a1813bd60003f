"""Every frame of the protocol as a typed, frozen message class, in one module per area.

Requests (sent by clients) are named as imperatives: `Join`, `Say`. Notifications (sent by the server) are
named in the past tense or as nouns: `Joined`, `Said`, `RoomList`. `Ping` and `Pong` go both ways. The wire
map exists only inside the codec: callers build and dispatch on these classes, and import them from here
(`from shared.messages import Join`) or from `shared`.

Every request may carry `ref`, an integer the client chooses; the server copies it into the `ack`, `error` or
reply frame (`welcome`, `pong`, `room_state`, `room_list`, `history`, `registration`, `ban_list`,
`read_marker`, `file_progress`, `file_data`, `file_done`, `stats_report`, `search_results`) that answers that
request, so a client can match answers to questions. Broadcast notifications (`joined`, `said`, ...) never
carry a `ref`: the server encodes each of them once, and the same bytes go to every recipient.

Each area is one module (`control`, `rooms`, `chat`, `accounts`, `attention`, `sessions`, `moderation`,
`files`, `admin`, `search`); the catalogue of every frame type, with its fields, errors and examples, is
docs/protocol.md (checked against the decoder by tests/protocol), and `__all__` below is built from the
decoder's registry, so a new message class needs no list edited here.

Records used inside frames (no wire type of their own): `Member` and `RoomSummary` (rooms), `BanEntry`
(moderation), `FilePolicy` (files), `SearchHit` and `SnippetPart` (search), `Figure` (admin), `RateLimits` and
its `RateBucket`s (control), `ReadPosition` (attention), `SessionInfo` (sessions). Each class registers its
wire type with the decoder when its module is imported (`shared.schema.message`); importing this package
imports them all.

docs/protocol.md is the normative description of every field; the field checks live in `shared.schema`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.schema import RECORDS, SENT_BY_CLIENT, SENT_BY_SERVER

from .accounts import *  # noqa: F403  (each area module's classes register themselves when imported)
from .admin import *  # noqa: F403
from .attention import *  # noqa: F403
from .chat import *  # noqa: F403
from .control import *  # noqa: F403
from .conversation import *  # noqa: F403
from .files import *  # noqa: F403
from .moderation import *  # noqa: F403
from .rooms import *  # noqa: F403
from .search import *  # noqa: F403
from .sessions import *  # noqa: F403

#: Every message and record class the decoder knows, and the protocol's constants. (Built at run time;
#: type checkers see the star imports above instead, which export the same classes.)
if not TYPE_CHECKING:
    __all__ = sorted(
        {cls.__name__ for cls in (*SENT_BY_CLIENT.values(), *SENT_BY_SERVER.values())}
        | {cls.__name__ for cls in RECORDS if cls.__module__.startswith(__name__)}
        | {
            "PROTOCOL_NAME",
            "PROTOCOL_VERSION",
            "MODERATION_ACTIONS",
            "MODERATION_REQUESTS",
            "ModerationRequest",
            "DELETED_TEXT",
            "ConversationEvent",
        }
    )
