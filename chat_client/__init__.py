"""The mpchat client: an asyncio client library, a Textual TUI and a plain line mode.

The library (this package's top level: `ChatClient` and its events and errors) never imports Textual,
so bots and scripts can use it without a terminal UI:

    from chat_client import ChatClient

    async with ChatClient("127.0.0.1", 7878, "mybot") as client:
        await client.join("lobby")
        await client.say("lobby", "hello")
        async for event in client.events():
            ...
        transfer = await client.send_file("notes.txt", room="lobby")   # files: see chat_client.net.transfers
        await transfer.wait()

The TUI lives in `chat_client.tui.app`, `chat_client.tui.screens` and `chat_client.tui.widgets`; the line mode
in `chat_client.plain.linemode`; the command line in `chat_client.__main__`.

The names above are imported when first used (`shared.lazy.lazy_exports`, whose docstring cites the
measurement), not with the package: every submodule import runs this file first, and the TUI draws its first
frame before it needs the library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:  # the real imports, for type checkers and IDEs; at run time see `shared.lazy`
    from chat_client.net.backoff import Backoff
    from chat_client.net.client import ChatClient
    from chat_client.net.errors import (
        ChecksumMismatch,
        ClientClosed,
        ClientError,
        ConnectionLost,
        FilesUnsupported,
        InvalidRequest,
        LoginRefused,
        NotConnected,
        OutboxFull,
        RequestTimeout,
        ServerError,
        TransferCancelled,
        TransferError,
        UnknownFile,
    )
    from chat_client.net.events import (
        Closed,
        Connected,
        Disconnected,
        Event,
        LagMeasured,
        OutboxChanged,
        Reconnecting,
    )
    from chat_client.net.options import ClientOptions, ConnectionState
    from chat_client.net.outbox import DeliveryState, OutboxEntry
    from chat_client.net.progress import Direction, TransferInfo, TransferState, TransferUpdate
    from chat_client.net.transfers import Transfer

__all__ = [
    "Backoff",
    "ChatClient",
    "ChecksumMismatch",
    "ClientClosed",
    "ClientError",
    "ClientOptions",
    "Closed",
    "Connected",
    "ConnectionLost",
    "ConnectionState",
    "DeliveryState",
    "Direction",
    "Disconnected",
    "Event",
    "FilesUnsupported",
    "InvalidRequest",
    "LagMeasured",
    "LoginRefused",
    "NotConnected",
    "OutboxChanged",
    "OutboxEntry",
    "OutboxFull",
    "Reconnecting",
    "RequestTimeout",
    "ServerError",
    "Transfer",
    "TransferCancelled",
    "TransferError",
    "TransferInfo",
    "TransferState",
    "TransferUpdate",
    "UnknownFile",
]

#: Where each public name lives (a module of `chat_client.net`), imported on first use.
_HOMES = {
    "Backoff": "net.backoff",
    "ChatClient": "net.client",
    **dict.fromkeys(
        (
            "ChecksumMismatch",
            "ClientClosed",
            "ClientError",
            "ConnectionLost",
            "FilesUnsupported",
            "InvalidRequest",
            "LoginRefused",
            "NotConnected",
            "OutboxFull",
            "RequestTimeout",
            "ServerError",
            "TransferCancelled",
            "TransferError",
            "UnknownFile",
        ),
        "net.errors",
    ),
    **dict.fromkeys(
        ("Closed", "Connected", "Disconnected", "Event", "LagMeasured", "OutboxChanged", "Reconnecting"),
        "net.events",
    ),
    "ClientOptions": "net.options",
    "ConnectionState": "net.options",
    "DeliveryState": "net.outbox",
    "OutboxEntry": "net.outbox",
    **dict.fromkeys(("Direction", "TransferInfo", "TransferState", "TransferUpdate"), "net.progress"),
    "Transfer": "net.transfers",
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error, not `Any`
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
