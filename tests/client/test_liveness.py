"""Noticing a dead server in time, coming back promptly, and reconnecting without a herd.

Real servers (a subprocess frozen with SIGSTOP, or an in-process server stopped and started again on the
same port) and real clients. Each timing test asserts the documented bound plus a margin for a loaded
machine; the figures are printed (`pytest -s`) for docs/client.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_client import ChatClient, ClientOptions, Connected, Disconnected, Reconnecting
from chat_client.model.chat import ChatModel
from chat_client.net.backoff import Backoff
from chat_client.plain.linemode import PlainUI
from chat_lab.proxy import FaultProxy
from tests.server.process import ServerProcess
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config, run_plain_captured

#: What a loaded 2-core machine may add to any bound measured here (scheduling, GIL, a busy event loop).
MARGIN = 1.0


class Timeline:
    """A client's events with the time each arrived (time.monotonic)."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.events: list[tuple[float, object]] = []
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.client.events():
            self.events.append((time.monotonic(), event))

    def of(self, kind: type) -> list[tuple[float, object]]:
        return [(when, event) for when, event in self.events if isinstance(event, kind)]


@pytest.fixture
def frozen_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server process that a test can freeze (SIGSTOP) and thaw (SIGCONT); thawed before it ends."""
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path / "server")) as server:
        assert server.address is not None, server.first_line
        try:
            yield server
        finally:
            server.process.send_signal(signal.SIGCONT)


async def test_frozen_server_is_noticed_within_the_answer_deadline_and_left_promptly(
    frozen_server: ServerProcess,
) -> None:
    """A server frozen with SIGSTOP is declared dead within ping period + answer deadline ("server not
    answering"), and the client is back within 2 s of the server running again."""
    host, port = frozen_server.address or ("", 0)
    options = ClientOptions(ping_every=1.0)
    async with ChatClient(host, port, "alice", options=options) as alice:
        line = Timeline(alice)
        await wait_until(lambda: alice.lag is not None, what="first round trip measured")
        bound = options.ping_every + alice.answer_deadline
        frozen = time.monotonic()
        frozen_server.process.send_signal(signal.SIGSTOP)
        try:
            await wait_until(lambda: line.of(Disconnected), timeout=bound + 15, what="dead server noticed")
            noticed, event = line.of(Disconnected)[0]
            await wait_until(lambda: line.of(Reconnecting), what="trying again")
        finally:
            thawed = time.monotonic()
            frozen_server.process.send_signal(signal.SIGCONT)
        await wait_until(lambda: len(line.of(Connected)) == 2, timeout=15, what="back after the thaw")
        back = line.of(Connected)[1][0] - thawed
        detected = noticed - frozen
        print(f"\ndetected after {detected:.2f} s (bound {bound:.2f} s); back {back:.2f} s after SIGCONT")
        assert isinstance(event, Disconnected)
        assert "server not answering" in event.reason
        assert noticed - frozen <= bound + MARGIN
        assert back <= 2.0 + MARGIN
        assert alice.nick == "alice"


async def test_after_a_long_freeze_abandoned_attempts_do_not_keep_the_nick(
    frozen_server: ServerProcess,
) -> None:
    """Attempts that timed out while the server was frozen wait in its backlog; once it runs again they
    must not take the nick from the live attempt: the client is back within 2 s, under its own nick."""
    host, port = frozen_server.address or ("", 0)
    # The default backoff: after a few failed attempts its window is seconds long.
    options = ClientOptions(ping_every=1.0, connect_timeout=1.0)
    async with ChatClient(host, port, "alice", options=options) as alice:
        line = Timeline(alice)
        await wait_until(lambda: alice.lag is not None, what="first round trip measured")
        frozen_server.process.send_signal(signal.SIGSTOP)
        try:
            # Several attempts connect (the kernel accepts for the stopped process), send their hello and
            # give up: each is left behind in the server's backlog.
            await wait_until(lambda: len(line.of(Reconnecting)) >= 4, timeout=30, what="four attempts")
        finally:
            thawed = time.monotonic()
            frozen_server.process.send_signal(signal.SIGCONT)
        await wait_until(lambda: len(line.of(Connected)) == 2, timeout=15, what="back after the thaw")
        back = line.of(Connected)[1][0] - thawed
        print(f"\nback {back:.2f} s after SIGCONT, after {len(line.of(Reconnecting))} attempts")
        assert back <= 2.0  # the requirement itself: typically 0.1-0.4 s, where a backoff alone took 2-8 s
        assert alice.nick == "alice"
        refusals = [e for _, e in line.of(Reconnecting) if isinstance(e, Reconnecting) and "held" in e.reason]
        assert not refusals


async def test_silent_link_is_shown_as_server_not_answering_in_plain_mode(
    server: LiveServer, proxy: FaultProxy
) -> None:
    """The moment the answer deadline passes, the status and the plain mode's output say so."""
    options = ClientOptions(ping_every=0.3, ping_grace=0.3)
    async with ChatClient("127.0.0.1", proxy.port, "alice", options=options) as alice:
        model = ChatModel("alice")
        out = _Text()
        ui = PlainUI(model, out)
        seen: list[object] = []

        async def show() -> None:
            while batch := await alice.next_events():
                seen.extend(batch)
                ui.show(model.apply_all(batch))

        shower = asyncio.create_task(show())
        try:
            await wait_until(lambda: any(isinstance(e, Connected) for e in seen), what="connected")
            proxy.freeze()
            await wait_until(lambda: "server not answering" in out.text, timeout=5, what="shown")
            assert "server not answering" in model.status_reason
        finally:
            shower.cancel()


async def test_lone_client_is_back_fast_after_a_long_outage(server: LiveServer) -> None:
    """A client far into a long backoff (window up to 30 s) is back within 0.5 s of the server returning:
    the reachability probe finds it, and a client alone has no crowd to make room for."""
    options = ClientOptions(backoff=Backoff(initial=20.0, maximum=30.0, rng=random.Random(7)))
    async with ChatClient(server.host, server.port, "alice", options=options) as alice:
        line = Timeline(alice)
        await server.astop()
        await wait_until(lambda: line.of(Reconnecting), what="waiting to reconnect")
        await server.astart()
        started = time.monotonic()
        await wait_until(lambda: len(line.of(Connected)) == 2, timeout=10, what="back")
        back = line.of(Connected)[1][0] - started
        delay = line.of(Reconnecting)[0][1]
        assert isinstance(delay, Reconnecting)
        print(f"\nback {back:.2f} s after the server, with a backoff of {delay.delay:.1f} s")
        assert back <= 0.5 + MARGIN
        assert alice.connected


async def test_reconnect_command_retries_now(server: LiveServer) -> None:
    """`/reconnect` (TUI and plain mode share the controller) ends a long wait at once."""
    from chat_client.model.controller import Controller

    options = ClientOptions(backoff=Backoff(initial=30.0, maximum=30.0, rng=random.Random(3)))
    async with ChatClient(server.host, server.port, "alice", options=options) as alice:
        line = Timeline(alice)
        model = ChatModel("alice")
        controller = Controller(alice, model)
        await server.astop()
        await wait_until(lambda: line.of(Reconnecting), what="waiting to reconnect")
        await server.astart()
        # The probe would find the server too: the command must not wait for it either way.
        asked = time.monotonic()
        outcome = await controller.run("/reconnect")
        assert not outcome.quit
        await wait_until(lambda: len(line.of(Connected)) == 2, timeout=5, what="back")
        assert line.of(Connected)[1][0] - asked <= 0.5 + MARGIN
        # While connected, /reconnect drops the connection and resumes the session at once.
        await controller.run("/reconnect")
        await wait_until(lambda: len(line.of(Connected)) == 3, timeout=5, what="reconnected")
        assert alice.rooms == ("lobby",)


async def test_reconnect_herd_is_spread_over_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """50 clients of one room, a server restart: the first 10 logins after it span at least 1 s.

    Login times are taken on the server's side (its login log lines). Each client's backoff is seeded, so
    the draws are the same on every run; the spread comes from the crowd window (50 people: about 15 s).
    """
    caplog.set_level(logging.INFO, logger="chat_server.history.chat")
    config = fast_server_config(tmp_path / "herd", max_clients_per_ip=100, max_clients=200)
    server = LiveServer(config)
    await server.astart()
    clients = [
        ChatClient(
            server.host, server.port, f"user{n}", options=ClientOptions(backoff=Backoff(rng=random.Random(n)))
        )
        for n in range(50)
    ]
    try:
        for client in clients:
            await client.connect()
        await wait_until(lambda: all(c.peers == 49 for c in clients), timeout=20, what="everyone seen")
        await server.astop()
        await wait_until(lambda: all(not c.connected for c in clients), what="all dropped")
        await server.astart()
        back = time.time()

        def logins() -> list[float]:
            return sorted(
                r.created
                for r in caplog.records
                if r.created >= back and ("event=login" in r.getMessage() or "event=resume" in r.getMessage())
            )

        await wait_until(lambda: len(logins()) >= 10, timeout=30, what="ten logins after the restart")
        first = logins()[:10]
        spread = first[-1] - first[0]
        print(f"\nfirst 10 of 50 logins span {spread:.2f} s; first {first[0] - back:.2f} s after the restart")
        assert spread >= 1.0
    finally:
        await asyncio.gather(*(client.close() for client in clients))
        await server.astop()


class _Text:
    """A text stream that keeps what was written (the plain mode's stdout)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


async def test_tui_shows_server_not_answering_at_once_and_reconnects_on_command(
    server: LiveServer, proxy: FaultProxy, private_dirs: Path
) -> None:
    """The TUI's status line and log say "server not answering" the moment the answer deadline passes;
    `/reconnect` typed while connected drops the connection and resumes at once."""
    from chat_client.tui.app import ChatApp

    from .tui_helpers import submit, wait_for_chat, wait_for_text

    options = ClientOptions(
        connect_timeout=5, ping_every=0.3, ping_grace=0.3, backoff=Backoff(initial=0.05, maximum=0.2)
    )
    app = ChatApp(
        host="127.0.0.1",
        port=proxy.port,
        nick="alice",
        connect_now=True,
        config_dir=private_dirs,
        options=options,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await wait_for_chat(app, pilot)

        def status() -> str:
            return str(screen.query_one("#status").render())

        proxy.freeze()
        await wait_until(lambda: "server not answering" in status(), timeout=5, what="status")
        await wait_for_text(app, pilot, "disconnected: server not answering")
        await wait_until(lambda: "● connected" in status(), what="back")
        await submit(pilot, "/reconnect")
        await wait_for_text(app, pilot, "disconnected: reconnecting, as asked")
        await wait_until(lambda: "● connected" in status(), what="back after /reconnect")


async def test_plain_mode_reconnect_command(server: LiveServer) -> None:
    """`/reconnect` in the line mode: the connection is dropped and resumed at once, and a line typed after
    it is delivered on the new connection."""
    async with ChatClient(server.host, server.port, "bob", options=ClientOptions()) as bob:
        heard = Timeline(bob)
        run = await run_plain_captured(server, "alice", lines="/reconnect\nafter the reconnect\n")
        assert run.status == 0, run.err
        assert "reconnecting now" in run.out
        assert "reconnected to" in run.out
        await wait_until(
            lambda: any(getattr(e, "text", None) == "after the reconnect" for _, e in heard.events),
            what="the line delivered",
        )
