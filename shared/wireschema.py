"""The protocol as a machine-readable schema (JSON Schema 2020-12), generated from the message catalogue.

`docs/protocol.schema.json` is this module's output, checked in so that authors of clients and servers in
other languages (and their tools: code generators, validators) can read it without Python. A test fails when
the file and the catalogue differ; regenerate it with

    python -m shared.wireschema --write docs/protocol.schema.json

What the schema holds: every frame type with its fields, each field's type, whether it is required, its
default and its limit; who sends each frame; the records used inside frames; the limits with their defaults;
every error code and whether it is fatal; and for each request (a frame the client sends), which frames answer
it and which error codes it can get: ``"x-answers"``, the frame types that answer it directly on success and
carry its `ref` (an empty list: only a broadcast shows the effect), and ``"x-errors"``, every code an `error`
answering it may carry (its own, those of its fields' rules, and ``"x-common-errors"``, which every request
can get). Both come from the request's class (`shared.schema.message`).

msgpack has two things JSON has not: binary (marked ``"x-msgpack": "bin"``) and the difference between an
integer and a float (``"type": "integer"`` means a msgpack int, never a float). Length limits counted in bytes
of UTF-8 rather than characters are given as ``"x-max-bytes"``, naming the limit (a field of `welcome.limits`,
whose default is in ``x-limits``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from . import messages as _messages  # noqa: F401  (importing the catalogue registers every frame type)
from . import schema as check
from .errors import ErrorCode
from .limits import DEFAULT_LIMITS
from .schema import (
    COMMON_ERRORS,
    COMPOSED,
    MAX_FILE_NAME,
    MAX_TOKEN,
    MAX_UINT,
    SENT_BY_CLIENT,
    SENT_BY_SERVER,
    Message,
    request_errors,
)
from .text import MAX_REACTION_BYTES

#: The protocol version this schema describes.
VERSION = 1


def _plain_checks() -> dict[Any, dict[str, Any]]:
    """The schema of each check that is a plain function of `shared.schema`."""
    return {
        check.uint: {"type": "integer", "minimum": 0, "maximum": MAX_UINT},
        check.number: {"type": "number", "minimum": 0, "x-integer-maximum": MAX_UINT},
        check.boolean: {"type": "boolean"},
        check.nick: {"type": "string", "minLength": 1, "x-max-chars": "max_nick", "x-rule": "nick"},
        check.room: {"type": "string", "minLength": 1, "x-max-chars": "max_room", "x-rule": "room"},
        check.text: {"type": "string", "minLength": 1, "x-max-bytes": "max_text", "x-rule": "text"},
        check.token: {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN, "pattern": "^[ -~]+$"},
        check.file_name: {
            "type": "string",
            "minLength": 1,
            "x-max-bytes": MAX_FILE_NAME,
            "x-rule": "short text",
        },
        check.sha256_hex: {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        check.reaction: {
            "type": "string",
            "minLength": 1,
            "x-max-bytes": MAX_REACTION_BYTES,
            "x-rule": "reaction",
        },
        check.blob: {"x-msgpack": "bin"},
        check.room_ids: {
            "type": "object",
            "x-keys": {"type": "string", "minLength": 1, "x-max-chars": "max_room", "x-rule": "room"},
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": MAX_UINT},
            "x-max-items": "max_list",
        },
        check.limits_map: {
            "type": "object",
            "properties": {
                spec.name: {"type": "integer", "minimum": 1, "default": getattr(DEFAULT_LIMITS, spec.name)}
                for spec in dataclasses.fields(DEFAULT_LIMITS)
            },
        },
    }


def field_schema(field_check: Any) -> dict[str, Any]:
    """The schema of one field, from the check that validates it."""
    plain = _plain_checks()
    if field_check in plain:
        return plain[field_check]
    kind, part = COMPOSED[field_check]
    if kind == "array":
        return {"type": "array", "x-max-items": "max_list", "items": field_schema(part)}
    if kind == "record":
        return {"$ref": f"#/$defs/{part.__name__}"}
    if kind == "one_of":
        return {"oneOf": [{"$ref": f"#/$defs/{cls.TYPE}"} for cls in part]}
    if kind == "short_text":
        return {"type": "string", "x-max-bytes": part, "x-rule": "short text"}
    if kind == "choice":
        return {"type": "string", "enum": list(part)}
    raise ValueError(f"no schema for check {field_check!r}")


def _fields(cls: type[Message]) -> tuple[dict[str, Any], list[str]]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for spec in cls.FIELDS:
        described = dict(field_schema(spec.metadata["check"]))
        if spec.default is dataclasses.MISSING:
            required.append(spec.name)
        elif spec.default is not None and isinstance(spec.default, bool | int | str):
            described["default"] = spec.default
        properties[spec.name] = described
    return properties, required


def frame_schema(cls: type[Message], sender: str) -> dict[str, Any]:
    """The schema of one frame type: a map with its `type` and its fields."""
    properties, required = _fields(cls)
    described: dict[str, Any] = {
        "type": "object",
        "description": (cls.__doc__ or "").strip().splitlines()[0],
        "x-sent-by": sender,
    }
    if sender != "server":
        described["x-answers"] = list(cls.ANSWERS)
        described["x-errors"] = sorted(code.value for code in request_errors(cls))
    described["properties"] = {"type": {"const": cls.TYPE}, **properties}
    described["required"] = ["type", *required]
    return described


def _records() -> dict[str, type[Message]]:
    """Every record class (a map inside a frame, with no wire type), found through the composed checks."""
    found: dict[str, type[Message]] = {}
    for kind, part in list(COMPOSED.values()):
        if kind == "record":
            found[part.__name__] = part
    return found


def protocol_schema() -> dict[str, Any]:
    """The whole protocol as one JSON Schema document (a frame is one of the frame types)."""
    defs: dict[str, Any] = {}
    types = sorted(set(SENT_BY_CLIENT) | set(SENT_BY_SERVER))
    for name in types:
        by_client, by_server = name in SENT_BY_CLIENT, name in SENT_BY_SERVER
        cls = SENT_BY_CLIENT.get(name) or SENT_BY_SERVER[name]
        sender = "both" if by_client and by_server else "client" if by_client else "server"
        defs[name] = frame_schema(cls, sender)
    for name, cls in sorted(_records().items()):
        properties, required = _fields(cls)
        defs[name] = {
            "type": "object",
            "description": (cls.__doc__ or "").strip().splitlines()[0],
            "properties": properties,
            "required": required,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"mpchat protocol, version {VERSION}",
        "description": "One frame's body: a msgpack map (docs/protocol.md). Generated by "
        "`python -m shared.wireschema` from the shared message catalogue; do not edit by hand.",
        "x-version": VERSION,
        "x-framing": "a 4-byte big-endian unsigned length, then a msgpack map of that many bytes",
        "x-limits": dataclasses.asdict(DEFAULT_LIMITS),
        "x-error-codes": {code.value: {"fatal": code.fatal} for code in ErrorCode},
        "x-common-errors": sorted(code.value for code in COMMON_ERRORS),
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in types],
        "$defs": defs,
    }


def render() -> str:
    """The schema as the text of docs/protocol.schema.json."""
    return json.dumps(protocol_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the schema, or write it to a file (`--write PATH`)."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.wireschema",
        description="Generate the protocol's JSON Schema from the message catalogue.",
    )
    parser.add_argument("--write", type=Path, metavar="PATH", help="write it to PATH instead of stdout")
    args = parser.parse_args(argv)
    text = render()
    if args.write is None:
        sys.stdout.write(text)
    else:
        args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
