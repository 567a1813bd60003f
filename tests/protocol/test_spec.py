"""docs/protocol.md and the code agree: every hex example decodes, every type and field is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest

from shared import (
    DEFAULT_LIMITS,
    SENT_BY_CLIENT,
    SENT_BY_SERVER,
    FrameReassembler,
    Message,
    RemoteProtocolError,
    decode_body,
)

from .examples import CLIENT_EXAMPLES, SERVER_EXAMPLES

SPEC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
HEX_BLOCKS = re.findall(r"```hex\n(.*?)```", SPEC, re.S)
#: Each hex block with the "decodes to `...`" text that follows it.
DECODED_AS = re.findall(r"```hex\n(.*?)```\s*\ndecodes to `(.*?)`", SPEC, re.S)


def frame_bytes(block: str) -> bytes:
    """The bytes of a hex block, with its `# ...` comments removed."""
    return bytes.fromhex(" ".join(line.split("#")[0] for line in block.splitlines()))


def decode_example(data: bytes) -> Message:
    """Reassemble one frame from `data` and decode it as whichever side may send its type."""
    reassembler = FrameReassembler(DEFAULT_LIMITS.max_frame)
    reassembler.feed(data)
    bodies = list(reassembler.frames())
    assert len(bodies) == 1, "a hex example must be exactly one frame"
    assert reassembler.buffered == 0, "a hex example must be exactly one frame"
    for table in (SENT_BY_CLIENT, SENT_BY_SERVER):
        try:
            return decode_body(bodies[0], table, DEFAULT_LIMITS)
        except RemoteProtocolError:
            continue
    raise AssertionError("the example decodes on neither side")


def as_json(text: str) -> Any:
    """A "decodes to" text as a value: JSON, where ``<bin: 68 65>`` stands for binary (msgpack bin)."""
    marked = re.sub(r"<bin: ([0-9a-f ]*)>", lambda m: json.dumps({"$bin": m.group(1)}), text)
    return json.loads(marked, object_hook=lambda d: bytes.fromhex(d["$bin"]) if set(d) == {"$bin"} else d)


def test_every_decodes_to_text_is_what_the_bytes_decode_to() -> None:
    """The text after each hex example is exactly the map its bytes hold (a reader can trust either)."""
    assert len(DECODED_AS) == len(HEX_BLOCKS)
    for block, text in DECODED_AS:
        body = msgpack.unpackb(frame_bytes(block)[4:], raw=False)
        assert as_json(text) == body, text


def section(type_name: str) -> str:
    """The text of the spec's section headed with `type_name`."""
    match = re.search(rf"^### `{type_name}`.*?(?=^##)", SPEC, re.S | re.M)
    assert match is not None, f"no section for {type_name}"
    return match.group(0)


def test_the_spec_has_examples() -> None:
    """The spec holds one hex example per section (so the checks below are not vacuous)."""
    assert len(HEX_BLOCKS) >= len(set(SENT_BY_CLIENT) | set(SENT_BY_SERVER))


@pytest.mark.parametrize("block", HEX_BLOCKS)
def test_every_hex_example_decodes_to_a_known_example(block: str) -> None:
    """Each hex example is a valid frame equal to one of the reference examples."""
    assert decode_example(frame_bytes(block)) in CLIENT_EXAMPLES + SERVER_EXAMPLES


def test_every_message_type_has_a_hex_example() -> None:
    """No frame type is left without an example."""
    shown = {decode_example(frame_bytes(block)).TYPE for block in HEX_BLOCKS}
    assert shown == set(SENT_BY_CLIENT) | set(SENT_BY_SERVER)


@pytest.mark.parametrize(
    "cls", sorted({*SENT_BY_CLIENT.values(), *SENT_BY_SERVER.values()}, key=lambda c: c.__name__)
)
def test_every_field_is_documented_in_its_section(cls: type[Message]) -> None:
    """Each field of each frame type is named in that type's section of the spec."""
    heading = "ping` and `pong" if cls.TYPE in {"ping", "pong"} else cls.TYPE
    text = section(heading)
    missing = [spec.name for spec in cls.FIELDS if f"`{spec.name}`" not in text]
    assert missing == []
