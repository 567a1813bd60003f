"""The canary: two well-behaved clients chatting in their own room on a background thread.

Every security test runs one next to its offender. The canary sends a numbered message from one client,
waits until the other receives it, then answers the other way, round after round. Each round checks that the
message arrived, exactly once and in order (the next `said` from the peer is the one just sent, with an id
above the last), and that the sender got its `ack`. Anything else, including an error frame to a canary, is a
failure, raised by `stop()`. Latency is recorded for the report, never asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from statistics import median

from shared import Ack, Error, Message, Said, Say, SignedOff
from tests.server.client import ChatTestClient, wait_until

#: Longest the canary waits for one of its messages: a deadline for "eventually", not a speed requirement.
DELIVERY_DEADLINE = 15.0


class Canary:
    """Two logged-in clients (`canary-a`, `canary-b`) in `room`, exchanging messages until `stop()`."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        room: str = "canary-room",
        interval: float = 0.0,
        sources: tuple[str | None, str | None] = (None, None),
        client_class: Callable[..., ChatTestClient] = ChatTestClient,
    ) -> None:
        #: Pause between rounds, so a canary stays under a test's rate limit (pacing, not synchronisation).
        self.interval = interval
        self.room = room
        #: `sources`: local addresses for the two clients (None: any), to stay clear of per-address limits.
        #: `client_class`: how to connect (e.g. the TLS test client for a TLS port).
        self.clients = (
            client_class(address, source=sources[0]),
            client_class(address, source=sources[1]),
        )
        try:
            for name, client in zip(("canary-a", "canary-b"), self.clients, strict=True):
                client.login(name, rooms=[room])
        except BaseException:
            self.close()
            raise
        self.rounds = 0  # written by the canary thread only
        self.latencies: list[float] = []
        #: Messages in the canary room from anyone else (an offender who joined it), in arrival order.
        self.foreign: list[Said] = []
        #: Everything else `canary-a` heard (joins, sign-offs of offenders sharing the room...), in order.
        self.notices: list[Message] = []
        self.failure: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)

    def start(self) -> Canary:
        """Start chatting."""
        self._thread.start()
        return self

    def _run(self) -> None:
        last_id = [0, 0]
        try:
            while not self._stopping.is_set():
                turn = self.rounds % 2
                sender, receiver = self.clients[turn], self.clients[1 - turn]
                text = f"canary {self.rounds}"
                started = time.monotonic()
                sender.send(Say(room=self.room, text=text, ref=self.rounds))
                said = receiver.recv_until(
                    lambda m, s=sender: isinstance(m, Said) and m.room == self.room and m.nick == s.nick,
                    DELIVERY_DEADLINE,
                )
                assert isinstance(said, Said)
                assert said.text == text, f"out of order: expected {text!r}, got {said.text!r}"
                assert said.id > last_id[1 - turn], f"id {said.id} after {last_id[1 - turn]}"
                last_id[1 - turn] = said.id
                self.latencies.append(time.monotonic() - started)
                ack = sender.recv(Ack, DELIVERY_DEADLINE, ref=self.rounds)
                assert ack.id == said.id
                for client in self.clients:
                    self._sweep(client)
                self.rounds += 1
                if self.interval:
                    self._stopping.wait(self.interval)
        except BaseException as error:  # reported by stop() on the test's thread
            self.failure = error

    def _sweep(self, client: ChatTestClient) -> None:
        """Set aside what the canary does not wait for; fail on an error frame or a repeated message.

        What the room hears from others is recorded once, as `canary-a` heard it.
        """
        first = client is self.clients[0]
        peer = self.clients[1] if first else self.clients[0]
        for message in client.pending:
            if isinstance(message, Error):
                raise AssertionError(f"the canary {client.nick} got an error: {message!r}")
            if isinstance(message, Said) and message.room == self.room and message.nick == peer.nick:
                raise AssertionError(f"the canary got a message twice or unasked: {message!r}")
            if first and isinstance(message, Said):
                self.foreign.append(message)
            elif first:
                self.notices.append(message)
        client.pending.clear()

    def wait_rounds(self, count: int, timeout: float = 2 * DELIVERY_DEADLINE) -> None:
        """Wait until `count` more rounds have completed (proof that the canary is chatting right now)."""
        target = self.rounds + count
        wait_until(
            lambda: self.rounds >= target or self.failure is not None, timeout, f"{count} canary rounds"
        )
        self.check()

    def heard_sign_off(self, nick: str, timeout: float = 2 * DELIVERY_DEADLINE) -> SignedOff:
        """Wait until `canary-a` has heard `nick` sign off from the room; return that notification."""
        found: list[SignedOff] = []

        def heard() -> bool:
            """True once the sign-off (or a canary failure) is in."""
            found[:] = [m for m in list(self.notices) if isinstance(m, SignedOff) and m.nick == nick]
            return bool(found) or self.failure is not None

        wait_until(heard, timeout, f"the canary to hear {nick} sign off")
        self.check()
        return found[0]

    def check(self) -> None:
        """Raise the canary's failure, if it had one."""
        if self.failure is not None:
            raise AssertionError(f"the canary failed after {self.rounds} rounds: {self.failure}")

    def stop(self) -> None:
        """Stop chatting, close both clients, and raise the canary's failure if it had one."""
        self._stopping.set()
        self._thread.join(DELIVERY_DEADLINE + 5)
        assert not self._thread.is_alive(), "the canary thread did not stop"
        self.close()
        self.check()

    def close(self) -> None:
        """Close both clients."""
        for client in self.clients:
            client.close()

    def latency_summary(self) -> str:
        """Median and worst round-trip of the canary's messages, for the test report."""
        if not self.latencies:
            return "no rounds"
        ms = sorted(x * 1000 for x in self.latencies)
        return f"{len(ms)} rounds, median {median(ms):.1f} ms, max {ms[-1]:.1f} ms"
