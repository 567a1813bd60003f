"""The table of which frames answer which request and which error codes each request can get (issue 16).

Each request class declares its `answers` and `errors` where it is declared (`shared.schema.message`); the
schema publishes them (`x-answers`, `x-errors`). These tests hold the table to what it describes: the field
checks' codes to what the checks raise, the conformance transcripts (which pass against our server in CI)
to the table, and docs/protocol.md to it, request by request. tests/server/test_replies.py checks it
against the real server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conformance.runner import expand
from conformance.transcript import load
from shared import schema as check
from shared.errors import ErrorCode, RemoteProtocolError
from shared.limits import Limits
from shared.messages import Pong, Quit, RateLimits
from shared.schema import (
    COMMON_ERRORS,
    COMPOSED,
    SENT_BY_CLIENT,
    SENT_BY_SERVER,
    Message,
    check_errors,
    field_errors,
    request_errors,
)

ROOT = Path(__file__).parents[2]
SPEC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
REQUESTS = sorted(SENT_BY_CLIENT)
#: Requests that carry no `ref` (their errors cannot be matched to them) or answer nothing (`pong`).
WITHOUT_REF = {cls.TYPE for cls in SENT_BY_CLIENT.values() if "ref" not in cls.NAMES}


# -- The table is well formed ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUESTS)
def test_each_answer_is_a_server_frame_that_carries_the_ref(name: str) -> None:
    """A request's answers are frame types the server sends, each with a `ref` field to echo."""
    cls = SENT_BY_CLIENT[name]
    assert len(set(cls.ANSWERS)) == len(cls.ANSWERS), name
    for answer in cls.ANSWERS:
        assert answer in SENT_BY_SERVER, f"{name}: {answer!r} is not a frame the server sends"
        assert "ref" in SENT_BY_SERVER[answer].NAMES, f"{name}: {answer!r} cannot carry the ref"
    assert all(isinstance(code, ErrorCode) for code in cls.ERRORS), name


def test_notifications_declare_no_answers_or_errors() -> None:
    """Only requests have answers and errors: a frame only the server sends declares none."""
    for name, cls in SENT_BY_SERVER.items():
        if name not in SENT_BY_CLIENT:
            assert cls.ANSWERS == (), name
            assert not cls.ERRORS, name


def test_a_request_without_declared_answers_is_refused_at_import() -> None:
    """A new request type must say what answers it (an empty tuple for "only a broadcast")."""
    with pytest.raises(RuntimeError, match="must declare its answers"):
        check.message("teleport_for_test", check.Sender.CLIENT)


# -- The codes of the field rules --------------------------------------------------------------------------

#: Values that break each rule a check enforces, and some that pass.
PROBES: list[Any] = [
    None,
    True,
    1,
    -1,
    2**53,
    1.5,
    float("nan"),
    "",
    "ok",
    "OK",
    "x" * 100_000,
    "two words",
    "a\nb",
    "\x1b[2J",
    "e" * 64,
    b"bytes",
    [],
    ["ok"],
    ["ok"] * 2_000,
    [1],
    {},
    {"ok": 1},
    {1: 2},
    {"type": "said"},
    {"max_frame": 0},
    {"two words": 1},
    {f"room{n}": n for n in range(2_000)},
]


def raised_by(field_check: check.Check) -> set[ErrorCode]:
    """The codes `field_check` raises for the probe values."""
    limits = Limits()
    codes: set[ErrorCode] = set()
    for value in PROBES:
        try:
            field_check(value, limits)
        except RemoteProtocolError as error:
            codes.add(error.code)
    return codes


def every_check() -> list[check.Check]:
    """Every check used by a field of a frame, or of a record inside one (not the LAN beacon's records, which
    are not frames and answer no request)."""
    frames: list[type[Message]] = [*SENT_BY_CLIENT.values(), *SENT_BY_SERVER.values()]
    todo = [field_check for cls in frames for _name, field_check, _required in cls.CHECKS]
    found: set[check.Check] = set()
    while todo:
        field_check = todo.pop()
        if field_check in found:
            continue
        found.add(field_check)
        kind, part = COMPOSED.get(field_check, ("plain", None))
        if kind == "array":
            todo.append(part)
        elif kind in ("record", "one_of"):
            for cls in (part,) if kind == "record" else part:
                todo.extend(field_check for _name, field_check, _required in cls.CHECKS)
    return sorted(found, key=check_name)


def check_name(field_check: check.Check) -> str:
    """A stable name for a check (a test id): its function, or what a composed check was built from."""
    if field_check not in COMPOSED:
        return field_check.__name__
    kind, part = COMPOSED[field_check]
    if kind == "one_of":
        return f"one_of({','.join(cls.__name__ for cls in part)})"
    if kind == "choice":
        return f"choice({'|'.join(part)})"
    inner = part if isinstance(part, str) else check_name(part) if kind == "array" else part.__name__
    return f"{kind}({inner})"


def is_leaf(field_check: check.Check) -> bool:
    """A check of one value (not a list or a map of other checks)."""
    return field_check not in COMPOSED or COMPOSED[field_check][0] in ("short_text", "choice")


@pytest.mark.parametrize("field_check", [c for c in every_check() if is_leaf(c)], ids=check_name)
def test_each_check_raises_exactly_the_codes_the_table_gives_it(field_check: check.Check) -> None:
    """`check_errors` (which `x-errors` is built from) names what each field check really raises."""
    assert raised_by(field_check) == set(check_errors(field_check))


@pytest.mark.parametrize("field_check", [c for c in every_check() if not is_leaf(c)], ids=check_name)
def test_a_list_or_record_check_raises_only_codes_the_table_gives_it(field_check: check.Check) -> None:
    """A list or record check raises no code beyond those of its parts (which the test above pins)."""
    assert raised_by(field_check) <= set(check_errors(field_check))


def test_a_list_passes_on_the_codes_of_its_items() -> None:
    """`hello.rooms` (a list of rooms) refuses a bad room name with `invalid_room`, as a `room` field does."""
    rooms = dict((name, c) for name, c, _required in SENT_BY_CLIENT["hello"].CHECKS)["rooms"]
    with pytest.raises(RemoteProtocolError) as refused:
        rooms(["bad room!"], Limits())
    assert refused.value.code is ErrorCode.INVALID_ROOM
    assert {ErrorCode.INVALID_ROOM, ErrorCode.TOO_LONG} <= check_errors(rooms)


def test_field_errors_follow_the_fields() -> None:
    """A request's field codes come from its fields: a nick field brings `invalid_nick`, a text `too_long`."""
    assert ErrorCode.INVALID_NICK in field_errors(SENT_BY_CLIENT["tell"])
    assert ErrorCode.INVALID_NICK not in field_errors(SENT_BY_CLIENT["say"])
    assert field_errors(Pong) == {ErrorCode.INVALID_FIELD}
    assert field_errors(Quit) == {ErrorCode.INVALID_FIELD, ErrorCode.TOO_LONG, ErrorCode.INVALID_TEXT}
    assert ErrorCode.TOO_LONG in check_errors(next(c for c, (kind, _) in COMPOSED.items() if kind == "array"))
    assert field_errors(RateLimits) == {ErrorCode.INVALID_FIELD}


# -- The conformance transcripts agree with the table ------------------------------------------------------


def literal_codes(pattern: Any) -> list[str]:
    """The error codes a transcript pattern for `code` names (a literal, or the literals of `$in`)."""
    if isinstance(pattern, str) and not pattern.startswith(("$", "?", "=")):
        return [pattern]
    if isinstance(pattern, dict) and isinstance(pattern.get("$in"), list):
        return [code for code in pattern["$in"] if isinstance(code, str)]
    return []


def transcript_problems(cases: list[Any]) -> tuple[list[str], int]:
    """Each expectation of a frame carrying a request's `ref` that the table does not allow; and how many
    such expectations there were."""
    problems: list[str] = []
    checked = 0
    for case in cases:
        # Per peer: ref -> the type of the last request sent with it (a later one with the same ref wins).
        sent: dict[str, dict[Any, str]] = {}
        for step in expand(case.steps):
            if "send" in step:
                frames = step.get("frames") or [step.get("frame")]
                for frame in frames:
                    if isinstance(frame, dict) and "ref" in frame and frame.get("type") in SENT_BY_CLIENT:
                        sent.setdefault(step["send"], {})[frame["ref"]] = frame["type"]
                continue
            peer = step.get("expect", step.get("expect_next"))
            pattern = step.get("frame")
            if peer is None or not isinstance(pattern, dict) or "ref" not in pattern:
                continue
            request = sent.get(peer, {}).get(pattern["ref"])
            if request is None:
                continue  # a ref the case never sent with a known request (e.g. an unknown type)
            checked += 1
            cls = SENT_BY_CLIENT[request]
            where = step.get("_where", case.source)
            kind = pattern.get("type")
            if kind == "error":
                for code in literal_codes(pattern.get("code")):
                    if code not in {c.value for c in request_errors(cls)}:
                        problems.append(f"{where}: {request} answered by error {code!r}, not in its x-errors")
            elif kind not in cls.ANSWERS:
                problems.append(f"{where}: {request} answered by {kind!r}, not in its x-answers")
    return problems, checked


def test_every_transcript_answer_is_in_the_table() -> None:
    """Every frame a conformance case expects with a request's `ref` is one of that request's answers, or
    an `error` whose code is in its errors (the transcripts pass against our server in CI)."""
    problems, checked = transcript_problems(load(group=None))
    assert checked >= 40, f"only {checked} answers checked: has the transcript format changed?"
    assert problems == []


def test_the_transcript_check_catches_an_answer_missing_from_the_table() -> None:
    """The check above fails for an expectation the table does not allow (it can fail)."""
    bad = ROOT / "conformance" / "transcripts"
    cases = load(sorted(bad.glob("*.jsonl")))
    case = cases[0]
    case.steps.append({"send": case.peers[0], "frame": {"type": "who", "room": "x", "ref": 99}})
    case.steps.append({"expect": case.peers[0], "frame": {"type": "error", "code": "muted", "ref": 99}})
    case.steps.append({"send": case.peers[0], "frame": {"type": "leave", "room": "x", "ref": 98}})
    case.steps.append({"expect": case.peers[0], "frame": {"type": "left", "ref": 98}})
    problems, _checked = transcript_problems([case])
    assert len(problems) == 2, problems
    assert "who answered by error 'muted'" in problems[0]
    assert "leave answered by 'left'" in problems[1]


# -- docs/protocol.md states the same list -----------------------------------------------------------------


def section(heading: str) -> str:
    """The text of the section of docs/protocol.md whose heading line matches `heading` (a regex), up to
    the next heading."""
    match = re.search(rf"^#+ {heading}.*?$(.*?)(?=^#)", SPEC, re.MULTILINE | re.DOTALL)
    assert match is not None, f"no section {heading!r} in docs/protocol.md"
    return match.group(1)


def request_section(name: str) -> str:
    """The `### `name`` section of a request (`ping` and `pong` share one)."""
    return section(rf"`{name}`(?: and `\w+`)?(?: \(|$)") if name != "pong" else section(r"`ping` and `pong`")


@pytest.mark.parametrize("name", REQUESTS)
def test_the_docs_name_each_request_s_errors(name: str) -> None:
    """Each code a request declares is named in its section of docs/protocol.md, so the docs, the schema
    and the code state the same list."""
    text = request_section(name)
    missing = [code.value for code in sorted(SENT_BY_CLIENT[name].ERRORS) if f"`{code.value}`" not in text]
    assert missing == [], f"docs/protocol.md, section `{name}`, does not name {missing}"


@pytest.mark.parametrize("name", REQUESTS)
def test_the_docs_name_each_request_s_answers(name: str) -> None:
    """Each frame type that answers a request is named in its section of docs/protocol.md; a request with
    no direct answer says so."""
    text = request_section(name)
    cls = SENT_BY_CLIENT[name]
    missing = [answer for answer in cls.ANSWERS if f"`{answer}`" not in text]
    assert missing == [], f"docs/protocol.md, section `{name}`, does not name {missing}"
    if not cls.ANSWERS and name not in WITHOUT_REF and name != "pong":
        assert "no direct answer" in text.lower(), f"section `{name}` does not say it has no direct answer"


def test_the_docs_name_the_common_errors_and_the_table() -> None:
    """Section 10 names the codes every request can get, and sections 5 and 10 point to `x-answers` and
    `x-errors`; so does docs/conformance.md."""
    errors = section(r"10\. Errors")
    common = errors[errors.index("Which request gets which code") :]
    for code in COMMON_ERRORS:
        assert f"`{code.value}`" in common.split("\n\n")[0], code
    for text in (section(r"5\. Message identity"), errors):
        assert "`x-answers`" in text
        assert "`x-errors`" in text
    conformance = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    assert "`x-answers`" in conformance
    assert "`x-errors`" in conformance
