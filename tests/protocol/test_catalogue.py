"""`shared.messages` exports exactly what the decoder knows: the export list is built, not kept by hand."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import shared
import shared.messages
from shared import SENT_BY_CLIENT, SENT_BY_SERVER
from shared.schema import RECORDS

CONSTANTS = {
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "MODERATION_ACTIONS",
    "MODERATION_REQUESTS",
    "DELETED_TEXT",
    "ConversationEvent",
    "ModerationRequest",
}


def test_every_registered_class_is_exported_and_nothing_else() -> None:
    """`__all__` is every message and record class plus the protocol's constants; each name resolves."""
    records = {cls for cls in RECORDS if cls.__module__.startswith("shared.messages.")}
    classes = {*SENT_BY_CLIENT.values(), *SENT_BY_SERVER.values(), *records}
    assert len(classes) >= 60
    assert set(shared.messages.__all__) == {cls.__name__ for cls in classes} | CONSTANTS
    for cls in classes:
        assert getattr(shared.messages, cls.__name__) is cls
        assert getattr(shared, cls.__name__) is cls, f"from shared import {cls.__name__}"


def test_no_helper_leaks_into_the_package_exports() -> None:
    """The area modules' own imports (`wire`, `check`, ...) are not part of the public list."""
    assert not {"wire", "check", "message", "record", "Message", "Sender"} & set(shared.messages.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    """The lazy package raises the usual error for a name it does not export."""
    for name in ("NoSuchMessage", "_private", "wire"):
        with pytest.raises(AttributeError, match=name):
            getattr(shared, name)


def test_importing_the_package_builds_no_message_class() -> None:
    """`import shared` (which every `shared.text` import runs first) imports no message and no msgpack."""
    code = (
        "import sys, shared, shared.text; "
        "print(sorted(m for m in sys.modules if m.startswith(('shared.messages', 'msgpack'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
    assert {"Say", "ProtocolConnection"} <= set(dir(shared))


def test_the_type_checkers_imports_match_the_lazy_table() -> None:
    """Each name imported under `TYPE_CHECKING` in shared/__init__.py is served from the same module at run
    time (`_HOMES`), and the other way round: the two views of the package cannot drift apart."""
    tree = ast.parse(Path(shared.__file__).read_text(encoding="utf-8"))
    block = next(
        node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    static = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module != "messages"
        for alias in node.names
    }
    assert len(static) >= 20
    assert static == shared._HOMES
