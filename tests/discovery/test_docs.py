"""docs/discovery.md and the code agree: every hex example decodes, every datagram field is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.discovery import (
    DEFAULT_DISCOVERY_PORT,
    MAX_DATAGRAM,
    Announcement,
    Query,
    Reply,
    decode_datagram,
)
from shared.schema import Message

from .examples import EXAMPLES

DOC = (Path(__file__).parents[2] / "docs" / "discovery.md").read_text(encoding="utf-8")
HEX_BLOCKS = re.findall(r"```hex\n(.*?)```", DOC, re.S)


def datagram_bytes(block: str) -> bytes:
    """The bytes of a hex block; ``00*446`` stands for 446 zero bytes."""
    out = bytearray()
    for token in block.split():
        value, _, count = token.partition("*")
        out += bytes.fromhex(value) * (int(count) if count else 1)
    return bytes(out)


def test_the_doc_has_one_example_per_datagram_type() -> None:
    """Three hex examples: a beacon, a query and a reply."""
    kinds = sorted(type(decode_datagram(datagram_bytes(block))).__name__ for block in HEX_BLOCKS)
    assert kinds == ["Announcement", "Query", "Reply"]


@pytest.mark.parametrize("block", HEX_BLOCKS)
def test_every_hex_example_is_a_reference_datagram(block: str) -> None:
    """Each example is byte for byte what the codec produces for the reference values."""
    data = datagram_bytes(block)
    assert len(data) <= MAX_DATAGRAM
    assert data in EXAMPLES.values()


@pytest.mark.parametrize("cls", [Announcement, Query, Reply], ids=lambda cls: cls.TYPE)
def test_every_field_is_documented(cls: type[Message]) -> None:
    """Each wire field of each datagram is named (as `key`) in the doc."""
    missing = [spec.name for spec in cls.FIELDS if f"`{spec.name}`" not in DOC]
    assert missing == []


def test_the_documented_port_is_the_default() -> None:
    """The port the doc names is the one the code uses."""
    assert f"**{DEFAULT_DISCOVERY_PORT}**" in DOC
