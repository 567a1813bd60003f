"""Pure parts of the library: backoff, outbox, and the rule that the connection layer imports no UI."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

import chat_client
from chat_client.net.backoff import Backoff
from chat_client.net.errors import OutboxFull
from chat_client.net.outbox import DeliveryState, MessageOutbox
from chat_client.tui.startup import GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD
from shared import Ack, Say, Tell

PACKAGE = Path(chat_client.__file__).parent
#: The modules a bot imports (the network library, the package's lazy exports and the settings it reads):
#: none of them may pull in Textual, nor the model or UI subpackages.
LIBRARY_FILES = [*sorted((PACKAGE / "net").glob("*.py")), PACKAGE / "__init__.py", PACKAGE / "settings.py"]
#: Imports no library module may make.
UI_IMPORTS = {"textual", "rich", "chat_client.model", "chat_client.tui", "chat_client.plain"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name `path` imports, with each of its parents (a.b.c gives a, a.b, a.b.c)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        else:
            modules = []
        for module in modules:
            parts = module.split(".")
            names.update(".".join(parts[: n + 1]) for n in range(len(parts)))
    return names


def test_connection_layer_imports_no_textual() -> None:
    """The library modules import neither textual nor rich, nor the model or UI subpackages."""
    assert len(LIBRARY_FILES) > 20
    for path in LIBRARY_FILES:
        assert not imported_modules(path) & UI_IMPORTS, path.name


def test_backoff_grows_then_caps() -> None:
    """The ceiling doubles per attempt up to the maximum, and never overflows."""
    backoff = Backoff(initial=0.5, maximum=30)
    assert [backoff.ceiling(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff.ceiling(50) == 30
    assert backoff.ceiling(10_000) == 30


def test_backoff_jitter_spreads_clients() -> None:
    """Fifty clients reconnecting after the same failure pick different delays within [0, ceiling]."""
    delays = [Backoff(rng=random.Random(seed)).delay(3) for seed in range(50)]
    assert all(0 <= delay <= 4.0 for delay in delays)
    assert len({round(delay, 3) for delay in delays}) > 40


def test_backoff_rejects_nonsense() -> None:
    """A zero or inverted policy is refused."""
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial=0)
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial=5, maximum=1)


def test_outbox_entries_get_unique_ids_and_frames() -> None:
    """Each entry has its own client_msg_id, and its frame carries it."""
    outbox = MessageOutbox()
    first = outbox.add(text="a", action=False, room="lobby")
    second = outbox.add(text="b", action=True, peer="bob")
    assert first.client_msg_id != second.client_msg_id
    say = first.request(ref=1)
    tell = second.request(ref=2)
    assert isinstance(say, Say)
    assert say.client_msg_id == first.client_msg_id
    assert say.room == "lobby"
    assert isinstance(tell, Tell)
    assert tell.to == "bob"
    assert tell.action
    assert [entry.text for entry in outbox] == ["a", "b"]


def test_outbox_ack_and_fail_settle_entries_once() -> None:
    """An acked or failed entry leaves the outbox; a second ack for it is ignored."""
    outbox = MessageOutbox()
    entry = outbox.add(text="a", action=False, room="lobby")
    other = outbox.add(text="b", action=False, room="lobby")
    acked = outbox.acknowledge(entry.client_msg_id, Ack(id=7, ts=1, duplicate=True))
    assert acked is not None
    assert acked.state is DeliveryState.ACKNOWLEDGED
    assert acked.id == 7
    assert acked.duplicate
    assert outbox.acknowledge(entry.client_msg_id, Ack(id=7, ts=1)) is None
    failed = outbox.fail(other.client_msg_id, "not_in_room", "join first")
    assert failed is not None
    assert failed.state is DeliveryState.FAILED
    assert failed.error_code == "not_in_room"
    assert len(outbox) == 0


def test_outbox_limit_at_and_past_the_bound() -> None:
    """The outbox takes exactly `limit` waiting messages and refuses the next one."""
    outbox = MessageOutbox(limit=3)
    for n in range(3):
        outbox.add(text=str(n), action=False, room="r")
    with pytest.raises(OutboxFull):
        outbox.add(text="over", action=False, room="r")
    assert len(outbox) == 3


def test_tune_gc_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    """The TUI's GC tuning (run in a child process: it changes the interpreter's global settings): paused
    for the start-up, then frozen, with larger thresholds, and automatic again."""
    script = (
        "import gc; from chat_client.tui.startup import pause_gc, tune_gc; pause_gc(); "
        "paused = gc.isenabled(); import chat_client.tui.app; before = gc.get_freeze_count(); tune_gc(); "
        "print(int(paused), int(gc.isenabled()), before, gc.get_freeze_count(), *gc.get_threshold())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    paused, enabled, before, frozen, *thresholds = (int(word) for word in done.stdout.split())
    assert (paused, enabled) == (0, 1)
    assert before == 0
    assert frozen > 10_000  # Textual, Rich and our modules are out of the collector's sight
    assert thresholds == [GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD]
