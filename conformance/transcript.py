"""The transcript format: cases as JSON lines, patterns that match frames, and variables.

A transcript file (`conformance/transcripts/*.jsonl`) holds one JSON object per line. A line with a
``case`` key starts a case; the lines after it, up to the next case, are its steps. Lines starting with
``//`` are comments. docs/conformance.md describes every step and pattern; in short:

* ``{"case": "framing/byte-by-byte", "spec": "2", "doc": "..."}`` names a case and the spec section it checks;
  ``"peers": ["a", "b"]`` lists its connections (default ``["a"]``).
* Steps: ``open``, ``send`` (with ``how``: ``whole``, ``bytes`` or ``coalesced``), ``send_hex``, ``expect``,
  ``expect_next``, ``expect_silence``, ``expect_closed``, ``close``, and the shorthand ``login``.
* Groups: a file may start with a header line ``{"group": "configured", "doc": "...", "server": {...}}``;
  its cases belong to that group and need a server configured with the settings under ``server``. Files
  without one belong to the ``default`` group, which needs a server with its default settings.
* Variables: every peer name is bound to a fresh nick (``"${a}"``, upper-cased as ``"${a_upper}"``)
  and ``"${room}"`` to a fresh room name, so cases never collide with each other or with earlier runs;
  ``"${max_text}"`` is a text of exactly the default ``max_text`` bytes, ``"${long_text}"`` one byte over.
  In a pattern, ``"?name"`` captures a value and ``"=name"`` requires the captured one; in a frame to send,
  ``"${name}"`` is replaced by it.
* Patterns match a frame partially: every key of the pattern must be in the frame and match; keys the pattern
  does not name are ignored (servers may add optional fields, section 4). ``null`` means absent or nil.
  ``"$any"``, ``"$uint"``, ``"$str"``, ``"$bool"``, ``"$bin"`` match by type; ``{"$gt": "=name"}`` and
  ``{"$lt": ...}`` compare; ``{"$in": [v, ...]}`` is one of the values (``null`` among them: absent
  is fine too); ``{"$len": N}`` checks a list's length; ``{"$all": [p, ...]}`` needs a list holding an
  element matching each pattern, ``{"$none": [p, ...]}`` one holding none.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The protocol's default text limit, in bytes (section 8).
DEFAULT_MAX_TEXT = 4096
#: The default `files.chunk` (section 12): the most bytes one `file_chunk` may carry.
DEFAULT_FILE_CHUNK = 49_152

#: Where the suite's own transcripts live.
TRANSCRIPTS = Path(__file__).with_name("transcripts")
#: The group of the cases of a file without a header: they need a server with its default settings.
DEFAULT_GROUP = "default"

STEP_KINDS = frozenset(
    {
        "open",
        "send",
        "send_hex",
        "expect",
        "expect_next",
        "expect_silence",
        "expect_closed",
        "close",
        "login",
    }
)

_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TranscriptError(Exception):
    """A transcript file is malformed (a bug in the case, not in the peer under test)."""


class Mismatch(Exception):
    """A frame did not match a pattern; the message says where and why."""


@dataclass
class Case:
    """One case: its name, the spec section it checks, its peers and its steps."""

    name: str
    spec: str
    doc: str
    peers: list[str]
    steps: list[dict[str, Any]]
    source: str
    #: Cases that need more than one connection, or server-only behaviour, cannot be played by `--serve`.
    servable: bool = True
    #: The group of its file: which server configuration it needs (`Group`).
    group: str = DEFAULT_GROUP


@dataclass(frozen=True)
class Group:
    """A file's header: the group its cases belong to, and the server settings they need."""

    name: str
    doc: str
    #: The settings, by the names of docs/server.md (what another server's author reproduces).
    server: dict[str, Any]
    source: str


def load(paths: list[Path] | None = None, group: str | None = DEFAULT_GROUP) -> list[Case]:
    """Every case of the given transcript files (default: the suite's own), in file order; with `group`, only
    the cases of that group (None: every group)."""
    files = paths if paths is not None else sorted(TRANSCRIPTS.glob("*.jsonl"))
    cases: list[Case] = []
    for path in files:
        cases.extend(_load_file(path))
    names = [case.name for case in cases]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise TranscriptError(f"case names used twice: {sorted(duplicates)}")
    return [case for case in cases if group is None or case.group == group]


def groups(paths: list[Path] | None = None) -> dict[str, Group]:
    """The groups that the files declare in a header, by name."""
    found: dict[str, Group] = {}
    for path in paths if paths is not None else sorted(TRANSCRIPTS.glob("*.jsonl")):
        header = _header(path)
        if header is not None:
            found[header.name] = header
    return found


def _header(path: Path) -> Group | None:
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise TranscriptError(f"{path.name}:{number}: not JSON: {error}") from error
        if not isinstance(item, dict) or "group" not in item:
            return None
        return Group(
            name=str(item["group"]),
            doc=str(item.get("doc", "")),
            server=dict(item.get("server", {})),
            source=f"{path.name}:{number}",
        )
    return None


def _load_file(path: Path) -> Iterator[Case]:
    current: Case | None = None
    header = _header(path)
    group = header.name if header is not None else DEFAULT_GROUP
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        where = f"{path.name}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise TranscriptError(f"{where}: not JSON: {error}") from error
        if not isinstance(item, dict):
            raise TranscriptError(f"{where}: a line must be a JSON object")
        if "group" in item:
            if current is not None or header is None or header.source != where:
                raise TranscriptError(f"{where}: a group header must be the file's first line")
            continue
        if "case" in item:
            if current is not None:
                yield current
            peers = item.get("peers", ["a"])
            current = Case(
                name=item["case"],
                spec=str(item.get("spec", "")),
                doc=item.get("doc", ""),
                peers=list(peers),
                steps=[],
                source=where,
                servable=bool(item.get("servable", len(peers) == 1)),
                group=group,
            )
            continue
        if current is None:
            raise TranscriptError(f"{where}: a step before the first case")
        kinds = STEP_KINDS & item.keys()
        if len(kinds) != 1:
            raise TranscriptError(f"{where}: a step needs exactly one of {sorted(STEP_KINDS)}")
        peer = item[next(iter(kinds))]
        if kinds != {"login"} and peer not in current.peers:
            raise TranscriptError(f"{where}: unknown peer {peer!r} (peers: {current.peers})")
        item["_where"] = where
        current.steps.append(item)
    if current is not None:
        yield current


@dataclass
class Variables:
    """The values a case has bound: fresh names at its start, then what its patterns captured."""

    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, case: Case) -> Variables:
        """Fresh nicks for the peers and a fresh room, unique to this run (section 9's rules)."""
        tag = secrets.token_hex(3)
        values: dict[str, Any] = {}
        for peer in case.peers:
            values[peer] = f"cf{tag}{peer}"[:32]
            values[f"{peer}_upper"] = values[peer].upper()
        values["room"] = f"cf-{tag}"
        values["max_text"] = "x" * DEFAULT_MAX_TEXT
        values["long_text"] = "x" * (DEFAULT_MAX_TEXT + 1)
        values["long_chunk"] = b"x" * (DEFAULT_FILE_CHUNK + 1)
        return cls(values)

    def substitute(self, value: Any) -> Any:
        """`value` with every ``${name}`` replaced (a string that is only ``${name}`` keeps its type)."""
        if isinstance(value, str):
            whole = _TEMPLATE.fullmatch(value)
            if whole:
                return self._get(whole.group(1))
            return _TEMPLATE.sub(lambda m: str(self._get(m.group(1))), value)
        if isinstance(value, list):
            return [self.substitute(item) for item in value]
        if isinstance(value, dict):
            if value.keys() == {"$hex"}:  # binary (msgpack bin), written as hex digits
                return bytes.fromhex(value["$hex"])
            return {self.substitute(key): self.substitute(item) for key, item in value.items()}
        return value

    def _get(self, name: str) -> Any:
        if name not in self.values:
            raise TranscriptError(f"variable {name!r} is used before it is bound")
        return self.values[name]


def match(pattern: Any, value: Any, variables: Variables, path: str = "frame") -> None:
    """Raise `Mismatch` unless `value` matches `pattern`; bind its captures only if the whole match holds."""
    captured: dict[str, Any] = {}
    _match(pattern, value, variables, captured, path)
    variables.values.update(captured)


_TYPES: dict[str, tuple[type, ...]] = {
    "$str": (str,),
    "$bool": (bool,),
    "$bin": (bytes,),
    "$list": (list,),
    "$map": (dict,),
}


def _match(pattern: Any, value: Any, variables: Variables, captured: dict[str, Any], path: str) -> None:
    if isinstance(pattern, str) and pattern[:1] in "$?=" and len(pattern) > 1:
        _match_special(pattern, value, variables, captured, path)
    elif isinstance(pattern, dict) and pattern.keys() == {"$hex"}:
        expected = bytes.fromhex(pattern["$hex"])
        if type(value) is not bytes or value != expected:
            raise Mismatch(f"{path}: expected the bytes {pattern['$hex']:.60}, got {value!r:.60}")
    elif isinstance(pattern, dict) and any(key.startswith("$") for key in pattern):
        _match_operator(pattern, value, variables, captured, path)
    elif isinstance(pattern, dict):
        if not isinstance(value, dict):
            raise Mismatch(f"{path}: expected a map, got {value!r:.60}")
        for key, sub in pattern.items():
            if sub is None:
                if value.get(key) is not None:
                    raise Mismatch(f"{path}.{key}: expected absent, got {value[key]!r:.60}")
                continue
            if key not in value or value[key] is None:
                if isinstance(sub, dict) and None in sub.get("$in", ()):
                    continue
                raise Mismatch(f"{path}.{key}: missing")
            _match(sub, value[key], variables, captured, f"{path}.{key}")
    elif isinstance(pattern, list):
        if not isinstance(value, list) or len(value) != len(pattern):
            raise Mismatch(f"{path}: expected a list of {len(pattern)}, got {value!r:.80}")
        for index, (sub, item) in enumerate(zip(pattern, value, strict=True)):
            _match(sub, item, variables, captured, f"{path}[{index}]")
    else:
        expected = variables.substitute(pattern)
        if type(expected) is not type(value) or expected != value:
            raise Mismatch(f"{path}: expected {expected!r:.60}, got {value!r:.60}")


def _match_special(
    pattern: str, value: Any, variables: Variables, captured: dict[str, Any], path: str
) -> None:
    if pattern == "$any":
        return
    if pattern == "$uint":
        if type(value) is not int or value < 0:
            raise Mismatch(f"{path}: expected an unsigned integer, got {value!r:.60}")
        return
    if pattern in _TYPES:
        if type(value) not in _TYPES[pattern]:
            raise Mismatch(f"{path}: expected {pattern[1:]}, got {value!r:.60}")
        return
    if pattern.startswith("?"):
        captured[pattern[1:]] = value
        return
    if pattern.startswith("="):
        name = pattern[1:]
        expected = captured[name] if name in captured else variables.substitute("${" + name + "}")
        if type(expected) is not type(value) or expected != value:
            raise Mismatch(f"{path}: expected {name} = {expected!r:.60}, got {value!r:.60}")
        return
    if pattern.startswith("${"):
        _match(variables.substitute(pattern), value, variables, captured, path)
        return
    raise TranscriptError(f"{path}: unknown pattern {pattern!r}")


def _resolve(operand: Any, variables: Variables, captured: dict[str, Any]) -> Any:
    if isinstance(operand, str) and operand.startswith("="):
        name = operand[1:]
        return captured[name] if name in captured else variables.substitute("${" + name + "}")
    return variables.substitute(operand)


def _match_operator(
    pattern: dict[str, Any], value: Any, variables: Variables, captured: dict[str, Any], path: str
) -> None:
    for operator, operand in pattern.items():
        if operator in ("$gt", "$lt"):
            bound = _resolve(operand, variables, captured)
            if type(value) is not int or (value <= bound if operator == "$gt" else value >= bound):
                raise Mismatch(f"{path}: expected {operator[1:]} {bound!r}, got {value!r:.60}")
        elif operator == "$in":
            if not any(type(option) is type(value) and option == value for option in operand):
                raise Mismatch(f"{path}: expected one of {operand!r:.60}, got {value!r:.60}")
        elif operator == "$len":
            if not isinstance(value, list) or len(value) != operand:
                raise Mismatch(f"{path}: expected {operand} items, got {value!r:.80}")
        elif operator == "$all":
            if not isinstance(value, list):
                raise Mismatch(f"{path}: expected a list, got {value!r:.60}")
            for sub in operand:
                if not any(_try(sub, item, variables, captured) for item in value):
                    raise Mismatch(f"{path}: no element matches {sub!r:.80}")
        elif operator == "$none":
            if isinstance(value, list) and any(
                _try(sub, item, variables, captured) for sub in operand for item in value
            ):
                raise Mismatch(f"{path}: an element matches one of {operand!r:.80}")
        else:
            raise TranscriptError(f"{path}: unknown operator {operator!r}")


def _try(pattern: Any, value: Any, variables: Variables, captured: dict[str, Any]) -> bool:
    trial = dict(captured)
    try:
        _match(pattern, value, variables, trial, "item")
    except Mismatch:
        return False
    captured.update(trial)
    return True


def example(pattern: Any, variables: Variables, counter: Iterator[int]) -> Any:
    """A concrete value that matches `pattern` (what `--serve` sends where a case only states a pattern)."""
    if isinstance(pattern, str) and pattern[:1] in "$?=" and len(pattern) > 1:
        if pattern == "$uint":
            return next(counter)
        if pattern == "$str":
            return "x"
        if pattern == "$bool":
            return False
        if pattern == "$list":
            return []
        if pattern == "$map":
            return {}
        if pattern == "$bin":
            return b""
        if pattern == "$any":
            return None
        if pattern.startswith("?"):
            value = next(counter)
            variables.values[pattern[1:]] = value
            return value
        if pattern.startswith("="):
            return variables.substitute("${" + pattern[1:] + "}")
        return variables.substitute(pattern)
    if isinstance(pattern, dict):
        if pattern.keys() == {"$hex"}:
            return bytes.fromhex(pattern["$hex"])
        if "$gt" in pattern:
            return _resolve(pattern["$gt"], variables, {}) + 1 + next(counter)
        if "$all" in pattern:
            return [example(sub, variables, counter) for sub in pattern["$all"]]
        if any(key.startswith("$") for key in pattern):
            return [] if "$len" in pattern or "$none" in pattern else None
        built = {key: example(sub, variables, counter) for key, sub in pattern.items() if sub is not None}
        return {key: value for key, value in built.items() if value is not None}
    if isinstance(pattern, list):
        return [example(sub, variables, counter) for sub in pattern]
    return variables.substitute(pattern)
