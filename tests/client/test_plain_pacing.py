"""`seq 1 N | chat-client --plain`: every line delivered, in order, once, never refused; else a non-zero exit.

Real `chat-client --plain` processes, fed through a pipe, against a real server behind the lab's fault
proxy (which counts the connections; an `ErrorTally` on it counts the server's `error` frames), checked
against the stored history.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

from chat_lab.proxy import FaultProxy
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .tally import ErrorTally, rate_limited, stored_texts
from .test_plain import killed_on_exit, plain_client

#: Generous: a loaded 2-core machine runs the server, the client and the test.
RUN_TIMEOUT = 90.0


class Endpoint:
    """What `plain_client` needs of a server: where it listens."""

    def __init__(self, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port


async def pipe_lines(
    port: int, lines: list[str], *extra: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``chat-client --plain --nick ci --room builds`` with `lines` on its stdin; return how it ended and
    how long it took (seconds)."""
    started = time.monotonic()
    process = plain_client(Endpoint(port), "ci", "--room", "builds", *extra)  # type: ignore[arg-type]
    with killed_on_exit(process):
        data = "".join(line + "\n" for line in lines)
        out, err = await asyncio.to_thread(process.communicate, data, RUN_TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), time.monotonic() - started


async def test_ten_thousand_piped_lines_are_all_stored_in_order_once(tmp_path: Path) -> None:
    """10,000 lines against a server with high limits: all stored, in order, exactly once; no refusal, no
    reconnect, exit 0."""
    config = fast_server_config(
        tmp_path / "server",
        rate_messages=1_000_000.0,
        rate_burst=100_000,
        rate_bytes=1e9,
        rate_bytes_burst=100_000_000,
    )
    lines = [f"ci line {n}" for n in range(1, 10_001)]
    with LiveServer(config) as server:
        proxy = FaultProxy((server.host, server.port))
        tally = ErrorTally.watching(proxy)
        await proxy.start()
        try:
            result, seconds = await pipe_lines(proxy.port, lines)
        finally:
            await proxy.close()
        assert result.returncode == 0, result.stderr
        assert stored_texts(server.config.history_path, "builds", "ci") == lines
        assert rate_limited(server) == {}
    assert tally.errors == {}, tally.errors
    assert proxy.connections == 1
    print(f"10,000 lines piped in {seconds:.1f} s")  # for the record (pytest -s)


async def test_three_hundred_lines_are_paced_to_the_servers_announced_rate(tmp_path: Path) -> None:
    """The issue's case, scaled: 300 lines against a server taking 10 at once then 100 per second (the
    default burst, 50 times the default rate). Before pacing, the server refused most of them and then
    disconnected the client for `excess_flood`; a server that delays instead (fakelag) would count delays."""
    config = fast_server_config(tmp_path / "server", rate_messages=100.0, rate_burst=10)
    lines = [f"ci line {n}" for n in range(1, 301)]
    with LiveServer(config) as server:
        proxy = FaultProxy((server.host, server.port))
        tally = ErrorTally.watching(proxy)
        await proxy.start()
        try:
            result, seconds = await pipe_lines(proxy.port, lines)
        finally:
            await proxy.close()
        assert result.returncode == 0, result.stderr
        assert stored_texts(server.config.history_path, "builds", "ci") == lines
        assert rate_limited(server) == {}  # never delayed (fakelag) nor refused: paced to the announced rate
    assert tally.errors["rate_limited"] == 0, tally.errors
    assert tally.errors["excess_flood"] == 0, tally.errors
    assert proxy.connections == 1
    assert seconds >= 2.5, "300 lines at 100/s after a burst of 10 cannot take less than 2.9 s"


async def test_undelivered_lines_make_a_non_zero_exit_with_their_count(tmp_path: Path) -> None:
    """The server goes away before acknowledging every line: the client does not claim success; it exits
    3 and says how many of its lines were not delivered."""
    config = fast_server_config(tmp_path / "server", rate_messages=2.0, rate_burst=2)
    lines = [f"ci line {n}" for n in range(1, 21)]
    server = LiveServer(config)
    await server.astart()
    process = plain_client(server, "ci", "--room", "builds", "--drain-timeout", "2")
    with killed_on_exit(process):
        assert process.stdin is not None
        process.stdin.write("".join(line + "\n" for line in lines))
        process.stdin.close()
        history = server.config.history_path
        await wait_until(
            lambda: history.exists() and stored_texts(history, "builds", "ci"), what="a line stored"
        )
        await server.astop()
        stored = len(stored_texts(history, "builds", "ci"))
        assert process.stderr is not None
        status = await asyncio.to_thread(process.wait, RUN_TIMEOUT)
        err = process.stderr.read()
    assert status == 3, err
    assert stored < len(lines)
    assert f"of {len(lines)} message lines were not delivered" in err
    missing = int(err.split("chat-client: ")[1].split(" of ")[0])
    assert len(lines) - stored <= missing <= len(lines)


async def test_lag_is_announced_when_it_crosses_the_threshold_and_on_request(tmp_path: Path) -> None:
    """A slow link: a line when the lag reaches --lag-warning, another when it is back under; /lag prints the
    last measurement."""
    with LiveServer(fast_server_config(tmp_path / "server")) as server:  # pings every second
        proxy = FaultProxy((server.host, server.port))
        await proxy.start()
        proxy.to_client.delay = 0.5
        process = plain_client(Endpoint(proxy.port), "ci", "--lag-warning", "0.3")  # type: ignore[arg-type]
        output = Lines(process)
        try:
            with killed_on_exit(process):
                await wait_until(lambda: output.find("(at or over 0.3 s): the link is slow"), what="warning")
                proxy.to_client.delay = 0.0
                await wait_until(lambda: output.find("lag is back to"), what="recovery")
                assert process.stdin is not None
                process.stdin.write("/lag\n")
                process.stdin.flush()
                await wait_until(lambda: output.find(" -!- lag: "), what="the /lag answer")
                answer = output.find(" -!- lag: ")
                assert answer is not None
                assert answer.endswith(" ms")
                process.stdin.close()
                assert await asyncio.to_thread(process.wait, RUN_TIMEOUT) == 0
        finally:
            await proxy.close()
    warnings = [line for line in output.lines if "lag is" in line]
    assert len(warnings) == 2, warnings  # once over, once back: not at every measurement


class Lines:
    """Collects a process's standard output, line by line, in a thread (readline blocks)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True).start()

    def find(self, text: str) -> str | None:
        """The first line holding `text`, if any yet."""
        return next((line.rstrip("\n") for line in list(self.lines) if text in line), None)
