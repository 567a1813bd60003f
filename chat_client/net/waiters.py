"""Matching the server's answers to the requests waiting for them.

A request that waits for its answer (a join waits for the room's state, a registration for its
`Registration`...) registers a `Waiter` before it is sent. The run task offers every incoming message to
the waiters first (`answer`); the first one whose `match` says yes gets it. An `error` frame carrying the
request's `ref` is the refusal, raised to the caller as `ServerError`. When the session ends, every waiter
fails with `ConnectionLost`; when the client closes, with `ClientClosed`. Every wait is bounded by the
request timeout. No I/O of its own: the request goes out through the session it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat_client.net.errors import RequestTimeout, ServerError
from shared import Error as ErrorFrame
from shared import Message, fold

if TYPE_CHECKING:  # the connection drives this module: its session is only an annotation here
    from chat_client.net.connection import Session


@dataclass(slots=True)
class Waiter:
    """A request waiting for its answer: `match` returns True for the answer (an `Error` means refusal)."""

    match: Callable[[Message], bool]
    future: asyncio.Future[Message]


class Waiters:
    """The requests waiting for their answers (see the module docstring)."""

    def __init__(self) -> None:
        self._waiters: list[Waiter] = []

    async def request(
        self,
        session: Session,
        message: Message,
        match: Callable[[Message], bool],
        *,
        wait: bool,
        timeout: float,
    ) -> Message | None:
        """Send `message`; if `wait`, return the answer `match` picks, or raise `ServerError`."""
        ref = getattr(message, "ref", None)
        waiter: Waiter | None = None
        if wait:

            def answers(reply: Message) -> bool:
                return (isinstance(reply, ErrorFrame) and reply.ref == ref and ref is not None) or match(
                    reply
                )

            waiter = Waiter(answers, asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
        try:
            session.send(message)
            if waiter is None:
                return None
            try:
                async with asyncio.timeout(timeout):
                    reply = await waiter.future
            except TimeoutError:
                raise RequestTimeout(f"no answer to {message.TYPE} in {timeout:g} s") from None
        finally:
            if waiter is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        if isinstance(reply, ErrorFrame):
            raise ServerError(reply)
        return reply

    def answer(self, message: Message) -> None:
        """Hand `message` to every waiter it answers."""
        for waiter in list(self._waiters):
            if not waiter.future.done() and waiter.match(message):
                waiter.future.set_result(message)
                self._waiters.remove(waiter)

    def fail(self, error: Exception) -> None:
        """No answer will come: raise `error` in every waiting request."""
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        self._waiters.clear()


def answer_to(kind: type[Message], ref: int, room: str | None) -> Callable[[Message], bool]:
    """Match the answer of type `kind` to request `ref` (or, from a server that omits refs, for `room`)."""
    key = fold(room) if room is not None else None

    def match(reply: Message) -> bool:
        if not isinstance(reply, kind):
            return False
        reply_ref = getattr(reply, "ref", None)
        if reply_ref is not None:
            return bool(reply_ref == ref)
        reply_room = getattr(reply, "room", None)
        return key is None or (reply_room is not None and fold(reply_room) == key)

    return match
