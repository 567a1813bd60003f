"""A small blocking client for the lessons: a socket and `shared`'s `ProtocolConnection`, every wait bounded.

It is what a first chat client looks like once it frames its messages properly; mpchat's real client
(`chat_client.net.client.ChatClient`) adds reconnection, resumption, pacing and an asyncio loop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    EndOfStream,
    Hello,
    Message,
    ProtocolConnection,
    Role,
    Welcome,
)
from shared.errors import RemoteProtocolError

#: Seconds a lesson's client waits for an answer before it says so.
ANSWER_TIMEOUT = 5.0


class LessonClient:
    """One connection, logged in as `nick` (to `rooms`) on construction."""

    def __init__(
        self,
        address: tuple[str, int],
        nick: str,
        rooms: tuple[str, ...] = ("lobby",),
        *,
        receive_buffer: int = 0,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:  # before connecting, where it still bounds the TCP window
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(ANSWER_TIMEOUT)
        self.sock.connect(address)
        self.protocol = ProtocolConnection(Role.CLIENT)
        self.received: list[Message] = []
        self.closed = False
        self.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, rooms=rooms))
        self.wait_for(lambda m: isinstance(m, Welcome))

    def send(self, message: Message) -> None:
        """Encode and send one message (`sendall`: all of it, or an error)."""
        self.sock.sendall(self.protocol.send(message))

    def read(self, timeout: float) -> bool:
        """Read what arrives within `timeout` seconds into `received`; False if nothing did (or it closed)."""
        if self.closed:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        self.protocol.receive_data(data)
        for event in self.protocol.events():
            if isinstance(event, EndOfStream):
                self.closed = True
            elif not isinstance(event, RemoteProtocolError):
                self.received.append(event)
        return bool(data)

    def wait_for(self, wanted: Callable[[Message], bool], timeout: float = ANSWER_TIMEOUT) -> Message | None:
        """The first received message `wanted` accepts (waiting up to `timeout` s), or None."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.received:
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or (not self.read(left) and self.closed):
                return None

    def wait_until(self, condition: Callable[[], bool], timeout: float = ANSWER_TIMEOUT) -> bool:
        """Read until `condition()` holds (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0 or (not self.read(left) and self.closed):
                return condition()
        return True

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()
