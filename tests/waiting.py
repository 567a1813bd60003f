"""Waiting on a condition with a deadline: the one way tests wait for something to happen.

A test never sleeps for a fixed time to let something happen (too short on a loaded machine, wasted time on
an idle one). It polls the condition it needs, briefly, and fails with what it was waiting for once the
deadline passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: The longest any single wait lasts before the test fails.
DEADLINE = 10.0
#: How often the condition is checked.
POLL_INTERVAL = 0.01


async def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> None:
    """Poll `predicate` until it is true; fail the test after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(POLL_INTERVAL)


async def wait_until_answered(
    check: Callable[[], Awaitable[bool]], timeout: float = DEADLINE, what: str = ""
) -> None:
    """Await `check` (e.g. a question to the server) until it says true; fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        await asyncio.sleep(POLL_INTERVAL)


def wait_until_sync(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> None:
    """The same, for code outside an event loop."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(POLL_INTERVAL)
