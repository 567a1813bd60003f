"""docs/protocol.schema.json is generated from the catalogue, matches it, and accepts every documented
frame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgpack
import pytest

from shared import SENT_BY_CLIENT, SENT_BY_SERVER, ErrorCode
from shared.schema import COMMON_ERRORS, request_errors
from shared.wireschema import protocol_schema, render

from .test_spec import HEX_BLOCKS, frame_bytes

ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "docs" / "protocol.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(protocol_schema())


def body_of(block: str) -> dict[str, Any]:
    """The decoded map of a hex example (msgpack, without the reference decoder's validation)."""
    data = frame_bytes(block)
    value: dict[str, Any] = msgpack.unpackb(data[4:], raw=False)
    return value


def test_the_checked_in_schema_is_the_generated_one() -> None:
    """The file in docs/ is what the generator makes from the catalogue (regenerate it with
    `python -m shared.wireschema --write docs/protocol.schema.json`)."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "docs/protocol.schema.json is stale: regenerate it with "
        "`python -m shared.wireschema --write docs/protocol.schema.json`"
    )


def test_the_schema_is_a_valid_json_schema() -> None:
    """The document is itself valid under the JSON Schema 2020-12 meta-schema."""
    jsonschema.Draft202012Validator.check_schema(protocol_schema())


def test_every_frame_type_field_and_error_code_is_in_it() -> None:
    """Each frame type of either side, each of its fields, and each error code appears in the schema."""
    schema = protocol_schema()
    for table in (SENT_BY_CLIENT, SENT_BY_SERVER):
        for name, cls in table.items():
            described = schema["$defs"][name]["properties"]
            assert set(described) == {"type", *cls.NAMES}, name
    assert set(schema["x-error-codes"]) == {code.value for code in ErrorCode}
    assert schema["x-error-codes"]["bad_frame"] == {"fatal": True}


def test_the_schema_publishes_the_table() -> None:
    """Each request frame has `x-answers` and `x-errors` from its class (tests/protocol/test_replies.py checks
    the table itself); a frame only the server sends has neither."""
    schema = protocol_schema()
    assert schema["x-common-errors"] == sorted(code.value for code in COMMON_ERRORS)
    for name, cls in SENT_BY_CLIENT.items():
        described = schema["$defs"][name]
        assert described["x-answers"] == list(cls.ANSWERS), name
        assert described["x-errors"] == sorted(code.value for code in request_errors(cls)), name
        assert set(described["x-errors"]) <= set(schema["x-error-codes"]), name
    for name in set(SENT_BY_SERVER) - set(SENT_BY_CLIENT):
        assert "x-answers" not in schema["$defs"][name], name


@pytest.mark.parametrize("block", HEX_BLOCKS)
def test_every_documented_example_is_valid_under_the_schema(block: str) -> None:
    """Each hex example of docs/protocol.md validates against the schema."""
    VALIDATOR.validate(body_of(block))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "say", "room": "lobby", "text": 7},
        {"type": "say", "room": "lobby"},
        {"type": "join", "room": "lobby", "after": 2**53},
        {"type": "join", "room": "lobby", "after": True},
        {"type": "ack", "id": 1.5, "ts": 1},
        {"type": "file_offer", "name": "a", "size": 1, "sha256": "ABC"},
        {"type": "teleport"},
    ],
)
def test_frames_that_break_the_rules_are_invalid(frame: dict[str, Any]) -> None:
    """Wrong types, missing fields, out-of-range integers and unknown types fail validation."""
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(frame)


def test_the_command_prints_the_schema() -> None:
    """`python -m shared.wireschema` prints the same document."""
    result = subprocess.run(
        [sys.executable, "-m", "shared.wireschema"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == protocol_schema()
