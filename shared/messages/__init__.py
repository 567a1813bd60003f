"""Every frame of the protocol as a typed, frozen message class, in one module per area; this is the list.

Requests (sent by clients) are named as imperatives: `Join`, `Say`. Notifications (sent by the server) are
named in the past tense or as nouns: `Joined`, `Said`, `RoomList`. `Ping` and `Pong` go both ways.
The wire map exists only inside the codec: callers build and dispatch on these classes, and import them
from here (`from shared.messages import Join`) or from `shared`.

Every request may carry `ref`, an integer the client chooses; the server copies it into the `ack`, `error`
or reply frame (`welcome`, `pong`, `room_state`, `room_list`, `history`, `registration`, `ban_list`,
`file_progress`, `file_data`, `file_done`, `stats_report`) that answers that request, so a client can match
answers to questions. Broadcast notifications (`joined`, `said`, ...) never carry a `ref`: the server encodes
each of them once, and the same bytes go to every recipient.

Every frame type, by area (module), with its wire type, its class and who sends it:

    module     wire type      class         sent by
    control    hello          Hello         client
               quit           Quit          client
               ping           Ping          both
               pong           Pong          both
               welcome        Welcome       server
               error          Error         server
               ack            Ack           server
    rooms      join           Join          client
               leave          Leave         client
               topic          SetTopic      client
               list_rooms     ListRooms     client
               who            Who           client
               joined         Joined        server
               left           Left          server
               signed_off     SignedOff     server
               topic_changed  TopicChanged  server
               room_list      RoomList      server
               room_state     RoomState     server
    chat       say            Say           client
               tell           Tell          client
               fetch_history  FetchHistory  client
               said           Said          server
               told           Told          server
               history        History       server
    accounts   nick           ChangeNick    client
               register       Register      client
               unregister     Unregister    client
               away           SetAway       client
               nick_changed   NickChanged   server
               away_changed   AwayChanged   server
               registration   Registration  server
    moderation kick           Kick          client
               ban            Ban           client
               unban          Unban         client
               list_bans      ListBans      client
               mute           Mute          client
               unmute         Unmute        client
               op             Op            client
               deop           Deop          client
               mode           SetMode       client
               invite         Invite        client
               moderated      Moderated     server
               ban_list       BanList       server
    files      file_offer     OfferFile     client
               file_chunk     FileChunk     client
               file_get       GetFile       client
               file_cancel    CancelFile    client
               file_offered   FileOffered   server
               file_progress  FileProgress  server
               file_done      FileDone      server
               file_data      FileData      server
    admin      stats          GetStats      client
               stats_report   StatsReport   server

Records used inside frames (no wire type of their own): `Member` and `RoomSummary` (rooms), `BanEntry`
(moderation), `FilePolicy` (files), `Figure` (admin), `RateLimits` and its `RateBucket`s (control). Each
class registers its wire type with the decoder when its module is imported (`shared.schema.message`);
importing this package imports them all.

docs/protocol.md is the normative description of every field; the field checks live in `shared.schema`.
"""

from __future__ import annotations

from .accounts import (
    AwayChanged,
    ChangeNick,
    NickChanged,
    Register,
    Registration,
    SetAway,
    Unregister,
)
from .admin import Figure, GetStats, StatsReport
from .chat import (
    FetchHistory,
    History,
    Said,
    Say,
    Tell,
    Told,
)
from .control import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    Error,
    Hello,
    Ping,
    Pong,
    Quit,
    Welcome,
)
from .files import (
    CancelFile,
    FileChunk,
    FileData,
    FileDone,
    FileOffered,
    FilePolicy,
    FileProgress,
    GetFile,
    OfferFile,
)
from .moderation import (
    MODERATION_ACTIONS,
    MODERATION_REQUESTS,
    Ban,
    BanEntry,
    BanList,
    Deop,
    Invite,
    Kick,
    ListBans,
    Moderated,
    ModerationRequest,
    Mute,
    Op,
    SetMode,
    Unban,
    Unmute,
)
from .rooms import (
    Join,
    Joined,
    Leave,
    Left,
    ListRooms,
    Member,
    RoomList,
    RoomState,
    RoomSummary,
    SetTopic,
    SignedOff,
    TopicChanged,
    Who,
)

__all__ = [
    "MODERATION_ACTIONS",
    "MODERATION_REQUESTS",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "Ack",
    "AwayChanged",
    "Ban",
    "BanEntry",
    "BanList",
    "CancelFile",
    "ChangeNick",
    "Deop",
    "Error",
    "FetchHistory",
    "Figure",
    "FileChunk",
    "FileData",
    "FileDone",
    "FileOffered",
    "FilePolicy",
    "FileProgress",
    "GetFile",
    "GetStats",
    "Hello",
    "History",
    "Invite",
    "Join",
    "Joined",
    "Kick",
    "Leave",
    "Left",
    "ListBans",
    "ListRooms",
    "Member",
    "Moderated",
    "ModerationRequest",
    "Mute",
    "NickChanged",
    "OfferFile",
    "Op",
    "Ping",
    "Pong",
    "Quit",
    "Register",
    "Registration",
    "RoomList",
    "RoomState",
    "RoomSummary",
    "Said",
    "Say",
    "SetAway",
    "SetMode",
    "SetTopic",
    "SignedOff",
    "StatsReport",
    "Tell",
    "Told",
    "TopicChanged",
    "Unban",
    "Unmute",
    "Unregister",
    "Welcome",
    "Who",
]
