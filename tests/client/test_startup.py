"""Start-up: the library's names load lazily, and the TUI draws its connect screen before it imports the
network and chat modules (docs/client.md, "Start-up"; the time itself is measured by
benchmarks/client_startup.py, never here)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import chat_client
import shared
from chat_client import discover_cli
from chat_client.net.discovery import DEFAULT_QUERY_ADDRESS
from chat_client.tui import app as tui
from chat_client.tui import startup
from shared.discovery import DEFAULT_DISCOVERY_PORT
from tests.waiting import wait_until

from .terminal import PtyProcess

ROOT = Path(__file__).resolve().parents[2]
#: Seconds a fresh interpreter gets to start the TUI on a loaded machine.
START_DEADLINE = 60.0

#: What the connect screen must be drawn without: the client library, the chat screen, TLS, file transfers,
#: LAN discovery, and the protocol's message classes and codec.
NOT_BEFORE_FIRST_PAINT = (
    "chat_client.net.client",
    "chat_client.model.chat",
    "chat_client.model.commands",
    "chat_client.tui.palette",
    "chat_client.tui.screens.chat",
    "chat_client.net.transfers",
    "chat_client.net.trust",
    "chat_client.net.discovery",
    "shared.messages",
    "shared.codec",
    "shared.discovery",
    "msgpack",
)


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=START_DEADLINE,
        check=True,
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("package", [chat_client, shared], ids=["chat_client", "shared"])
def test_every_public_name_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    for name in names:
        assert getattr(package, name) is not None, name
    assert set(names) <= set(dir(package))
    with pytest.raises(AttributeError):
        package.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_the_lazy_names_are_the_real_ones() -> None:
    from chat_client import ChatClient, ClientOptions, LoginRefused
    from chat_client.net.client import ChatClient as Real
    from chat_client.net.errors import LoginRefused as RealRefused
    from chat_client.net.options import ClientOptions as RealOptions
    from shared import Say, nick_problem
    from shared.messages import Say as RealSay
    from shared.text import nick_problem as real_problem

    assert (ChatClient, ClientOptions, LoginRefused) == (Real, RealOptions, RealRefused)
    assert (Say, nick_problem) == (RealSay, real_problem)


def test_importing_the_library_loads_neither_the_client_nor_tls_nor_textual() -> None:
    bare = modules_after("import chat_client")
    assert not {"chat_client.net.client", "ssl", "textual", "shared.messages"} & bare
    used = modules_after("from chat_client import ChatClient")
    assert {"chat_client.net.client", "ssl", "shared.messages"} <= used
    assert "textual" not in used


def test_importing_shared_loads_only_what_is_used() -> None:
    loaded = modules_after("from shared import nick_problem")
    assert "shared.text" in loaded
    assert not {"shared.messages", "shared.codec", "msgpack"} & loaded


def test_the_connect_screen_is_drawn_before_the_network_modules_are_imported(tmp_path: Path) -> None:
    """`python -m chat_client` in a real terminal, as a user starts it; the modules loaded when Textual
    reports the first frame are written to a file, then the app exits."""
    report = tmp_path / "modules.json"
    probe = (
        "import json, sys\n"
        "import chat_client.tui.app\n"
        "def on_ready(app):\n"
        f"    with open({str(report)!r}, 'w') as out:\n"
        "        json.dump(sorted(sys.modules), out)\n"
        "    app.exit(0)\n"
        "chat_client.tui.app.ChatApp.on_ready = on_ready\n"
        "from chat_client.__main__ import main\n"
        "sys.exit(main([]))\n"
    )
    env = {**os.environ, "TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none"}
    terminal = PtyProcess([sys.executable, "-c", probe], env=env, cwd=ROOT)
    try:
        assert terminal.wait(START_DEADLINE) == 0, terminal.output[-2000:]
    finally:
        terminal.close()
    loaded = set(json.loads(report.read_text()))
    assert {"textual.app", "chat_client.tui.screens.connect"} <= loaded
    assert not set(NOT_BEFORE_FIRST_PAINT) & loaded


async def test_after_start_is_called_once_the_chat_modules_are_loaded(private_dirs: Path) -> None:
    """`chat-client` turns the garbage collector back on from `after_start`: it must always be called."""
    calls: list[bool] = []
    app = tui.ChatApp(config_dir=private_dirs, discovery=None, after_start=lambda: calls.append(True))
    async with app.run_test():
        await wait_until(lambda: calls, what="after_start")
    assert calls == [True]


def test_every_preloaded_module_exists() -> None:
    for name in startup.PRELOAD:
        importlib.import_module(name)
    assert set(startup.PRELOAD) >= {"chat_client.net.client", "chat_client.tui.screens.chat"}


def test_the_discover_defaults_are_the_discovery_modules_own() -> None:
    assert discover_cli.DEFAULT_QUERY_ADDRESS == DEFAULT_QUERY_ADDRESS
    assert discover_cli.DEFAULT_DISCOVERY_PORT == DEFAULT_DISCOVERY_PORT
