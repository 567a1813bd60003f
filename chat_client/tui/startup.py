"""The TUI's start-up tuning, out of the app's way: garbage collection tuned for an interactive UI, and the
preloading of what the chat needs after the first frame.

**Preloading** (`preload`, run by `ChatApp` once the connect screen is drawn): the app module and the connect
screen import no network, chat or discovery module, so the first frame waits only for Textual; `PRELOAD` is
then imported one module per event loop turn, so pressing Connect does not wait for it either. Measured
(docs/client.md, "Start-up"): importing the TUI's modules before the first frame went from 0.40-0.45 s to
0.22-0.27 s, and the first paint from 0.46-0.57 s to 0.33-0.35 s (medians, 2-core machine).

**Garbage collection**:

CPython's cyclic collector runs after every 700 net allocations (generation 0) and, every hundred or so of
those, walks older objects too. A chat UI in a busy room allocates a lot (a `Text`, spans and strips per
message), so those walks land between a key press and its echo. Measured with
`python -m benchmarks.client_throughput --rates 5000` on the 2-core machine, five runs each, side by side:
key p99 29-40 ms with the settings below, 35-59 ms with the interpreter's defaults (docs/client.md).

Three changes, made once by the TUI's entry point, never by the library (a bot's process is its own business):

* no automatic collection during start-up (`pause_gc`, before Textual is imported): importing Textual and
  drawing the first frame allocate so much that the collector ran 119 times before the first frame, for
  65-95 ms in all (one full collection of the start-up heap alone took 34-58 ms), on the 2-core machine;
  start-up makes little cyclic garbage, so little memory waits for the one collection `tune_gc` makes;
* `gc.freeze()` after start-up moves every object that exists then (Textual, Rich, our modules: tens of
  thousands, all long-lived) out of the collector's sight, so no later collection walks them again;
* larger thresholds: generation 0 is collected every `GEN0_THRESHOLD` allocations, the older generations
  proportionally less often. Reference counting still frees almost everything at once; only cyclic garbage
  waits for a collection, and the log's line cap bounds what a session keeps.
"""

from __future__ import annotations

import gc

#: Net allocations between collections of the youngest generation (the interpreter's default is 700).
GEN0_THRESHOLD = 50_000
#: Collections of one generation between collections of the next (defaults 10 and 10).
GEN1_THRESHOLD = 50
GEN2_THRESHOLD = 100


def pause_gc() -> None:
    """Turn the automatic collector off for the start-up; `tune_gc` turns it on again."""
    gc.disable()


def tune_gc() -> None:
    """Once started: collect, freeze what exists now, collect less often, and collect automatically again
    (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    gc.enable()


#: What connecting and the chat screen import, heaviest leaves first: imported one at a time after the
#: connect screen is drawn, so neither the first paint nor Connect waits for them.
PRELOAD = (
    "ssl",
    "msgpack",
    "shared.messages",
    "shared.connection",
    "chat_client.net.client",
    "chat_client.model.chat",
    "chat_client.net.trust",
    "chat_client.model.commands",
    "chat_client.tui.screens.chat",
    "chat_client.tui.palette",
)


async def preload(modules: tuple[str, ...] = PRELOAD) -> None:
    """Import `modules` one at a time, letting the event loop handle the UI's events in between."""
    # Imported here: `chat-client` imports this module for `pause_gc` before anything else.
    import asyncio
    import importlib

    for name in modules:
        importlib.import_module(name)
        await asyncio.sleep(0)
