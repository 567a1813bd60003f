"""How a message class describes its wire fields, and the checks that validate each field.

A message class declares each field with `wire(check)`: the field's name is its key on the wire, and `check`
is a function that takes the received value and the receiver's `Limits`, and either returns the value to
store or raises `RemoteProtocolError` with the right error code. `message()` turns a class into a frozen,
slotted, keyword-only dataclass and registers it under its wire type for the side that may send it.

The checks are deliberately strict about types: msgpack has separate integer, boolean, string and binary
types, and a field that wants an integer never accepts a boolean, a float or a numeric string.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable
from enum import Flag, auto
from typing import Any, ClassVar, TypeVar, cast, dataclass_transform

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .limits import Limits
from .text import nick_problem, reaction_problem, room_problem, text_problem

#: The fields of `Limits`, which `welcome.limits` carries as a plain map.
LIMIT_FIELDS = dataclasses.fields(Limits)

Check = Callable[[Any, Limits], Any]

#: The largest integer the protocol carries: 2^53 - 1, JavaScript's largest safe integer (a msgpack decoder in
#: JavaScript gives a float past it), so every id, token, size and offset means the same in every language.
MAX_UINT = 2**53 - 1
MAX_TOKEN = 64
#: What each composed check (a list, a record, a choice of records, a short text) was built from, for the
#: schema generator (`shared.jsonschema`). Filled as the message modules are imported; never read per frame.
COMPOSED: dict[Check, tuple[str, Any]] = {}
#: Longest file name in a `file_offer`, in bytes of UTF-8 (the common file-system limit; display data only).
MAX_FILE_NAME = 255


class Sender(Flag):
    """Which side may send a message type."""

    CLIENT = auto()
    SERVER = auto()
    BOTH = CLIENT | SERVER


class Message:
    """Base class of every frame: a frozen dataclass whose fields are the frame's map entries."""

    __slots__ = ()
    TYPE: ClassVar[str]
    SENDER: ClassVar[Sender]
    #: A request's direct answers on success: the wire types of the frames that answer it (carrying its
    #: `ref`), in the order they come; empty when only a broadcast (or nothing) shows the effect.
    ANSWERS: ClassVar[tuple[str, ...]] = ()
    #: The error codes a request's handling can refuse it with, besides those of its fields' rules and
    #: `COMMON_ERRORS` (`request_errors` gives all of them). Empty for notifications.
    ERRORS: ClassVar[frozenset[ErrorCode]] = frozenset()
    FIELDS: ClassVar[tuple[dataclasses.Field[Any], ...]]
    #: (name, check, required) per field, precomputed because `build` runs for every received frame.
    CHECKS: ClassVar[tuple[tuple[str, Check, bool], ...]]
    #: The field names, a getter of all their values at once, and the fields that may hold a record, a list
    #: or `Limits` (the others hold plain values): precomputed because `to_wire` runs for every sent frame.
    NAMES: ClassVar[tuple[str, ...]]
    VALUES: ClassVar[Callable[[Any], tuple[Any, ...]]]
    NESTED: ClassVar[frozenset[str]]


#: Wire type -> class, one table per receiving side.
SENT_BY_CLIENT: dict[str, type[Message]] = {}
SENT_BY_SERVER: dict[str, type[Message]] = {}
#: Every record class (a value inside frames, with no wire type of its own).
RECORDS: list[type[Message]] = []

M = TypeVar("M", bound=type[Message])


def wire(check: Check, *, default: Any = dataclasses.MISSING, secret: bool = False) -> Any:
    """Declare a wire field validated by `check`; without `default` the field is required.

    A `secret` field (a password) is left out of the message's repr, so logs and tracebacks never show it.
    """
    return dataclasses.field(default=default, metadata={"check": check}, repr=not secret)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(wire,))
def message(
    type_name: str,
    sender: Sender,
    *,
    answers: tuple[str, ...] | None = None,
    errors: tuple[ErrorCode, ...] = (),
) -> Callable[[M], M]:
    """Make a class a frozen, slotted, keyword-only dataclass sent as ``{"type": type_name, ...}``.

    A request (a type the client sends) also declares its protocol metadata here, next to its fields, so a
    new request type is still written in one place: `answers`, the wire types of the frames that answer it
    directly on success (``()`` when only a broadcast shows the effect), and `errors`, the codes its handling
    can refuse it with (`request_errors` adds those of its fields and `COMMON_ERRORS`). The schema
    (`shared.wireschema`) publishes both, and tests/protocol/test_replies.py checks them against the
    conformance transcripts, docs/protocol.md and our server.
    """
    if sender & Sender.CLIENT and answers is None:
        raise RuntimeError(f"request type {type_name!r} must declare its answers (() for none)")
    if not sender & Sender.CLIENT and (answers or errors):
        raise RuntimeError(f"{type_name!r} is not a request: it has no answers or errors")

    def decorate(cls: M) -> M:
        built: Any = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
        built.TYPE = type_name
        built.SENDER = sender
        built.ANSWERS = answers or ()
        built.ERRORS = frozenset(errors)
        _precompute_field_tables(built)
        for side, table in ((Sender.CLIENT, SENT_BY_CLIENT), (Sender.SERVER, SENT_BY_SERVER)):
            if sender & side:
                if type_name in table:
                    raise RuntimeError(f"two message classes claim wire type {type_name!r}")
                table[type_name] = built
        return cast(M, built)

    return decorate


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(wire,))
def record(cls: M) -> M:
    """Make `cls` a frozen dataclass used *inside* a message (a list entry), with wire fields."""
    built: Any = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    _precompute_field_tables(built)
    RECORDS.append(built)
    return cast(M, built)


#: Field annotations whose values msgpack packs as they are (`from __future__ import annotations` keeps them
#: as strings). Any other annotation is walked by `_plain`.
PLAIN_TYPES = frozenset(
    f"{kind}{optional}" for kind in ("str", "int", "bool", "float", "bytes") for optional in ("", " | None")
)


def _precompute_field_tables(cls: Any) -> None:
    """Work out once per class what `build` and `to_wire` would otherwise work out for every frame.

    A tuning, not part of the protocol: `build` could loop over `dataclasses.fields(cls)` and read each
    field's metadata, and `to_wire` could `getattr` each field, with the same result. They run for every frame
    received and every broadcast encoded, so the server's reader and history threads use these tables instead
    (docs/performance.md, "Follow one message: where the time goes"): `CHECKS` (name, check, required),
    `NAMES` and `VALUES` (one `attrgetter` for every field) and `NESTED` (the fields that may hold a
    record, a list or `Limits`, which alone need walking).
    """
    cls.FIELDS = dataclasses.fields(cls)
    cls.CHECKS = tuple(
        (spec.name, spec.metadata["check"], spec.default is dataclasses.MISSING) for spec in cls.FIELDS
    )
    cls.NAMES = tuple(spec.name for spec in cls.FIELDS)
    # attrgetter of one name returns the value itself, not a 1-tuple: wrap it so both cases are tuples.
    getter = operator.attrgetter(*cls.NAMES) if cls.NAMES else None
    if getter is None:
        cls.VALUES = staticmethod(lambda _value: ())
    elif len(cls.NAMES) == 1:
        cls.VALUES = staticmethod(lambda value: (getter(value),))
    else:
        cls.VALUES = staticmethod(getter)
    cls.NESTED = frozenset(spec.name for spec in cls.FIELDS if str(spec.type) not in PLAIN_TYPES)


# -- The errors a request can get -------------------------------------------------------------------------

#: The codes any request can be refused with, whatever its type: `invalid_field` (a field missing, of the
#: wrong type or out of range: every request has fields), `bad_hello` (any request sent before `hello`, fatal)
#: and `internal_error` (a bug in the server: the request was not carried out). docs/protocol.md, section 10.
COMMON_ERRORS = frozenset({ErrorCode.INVALID_FIELD, ErrorCode.BAD_HELLO, ErrorCode.INTERNAL_ERROR})


def check_errors(field_check: Check) -> frozenset[ErrorCode]:
    """The codes a field's check can raise (tests/protocol/test_replies.py probes every check for them)."""
    plain = _PLAIN_CHECK_ERRORS.get(field_check)
    if plain is not None:
        return plain
    kind, part = COMPOSED[field_check]
    if kind == "short_text":
        return _TEXT_ERRORS
    if kind == "array":
        return frozenset({ErrorCode.INVALID_FIELD, ErrorCode.TOO_LONG}) | check_errors(part)
    if kind == "choice":
        return frozenset({ErrorCode.INVALID_FIELD})
    classes = (part,) if kind == "record" else part
    return frozenset({ErrorCode.INVALID_FIELD}).union(*(field_errors(cls) for cls in classes))


def field_errors(cls: type[Message]) -> frozenset[ErrorCode]:
    """The codes the rules of `cls`'s fields can refuse a frame with (sections 3, 8 and 9)."""
    return frozenset({ErrorCode.INVALID_FIELD}).union(
        *(check_errors(field_check) for _name, field_check, _required in cls.CHECKS)
    )


def request_errors(cls: type[Message]) -> frozenset[ErrorCode]:
    """Every code a request of type `cls` can be answered with: its own, its fields' and the common ones."""
    return cls.ERRORS | field_errors(cls) | COMMON_ERRORS


# -- Building values from wire maps ------------------------------------------------------------------------


def build(cls: type[Message], data: dict[Any, Any], limits: Limits) -> Message:
    """Validate the wire map `data` against `cls`'s fields and return the instance.

    Unknown keys are ignored (forward compatibility); a missing required field is `invalid_field`.
    """
    values: dict[str, Any] = {}
    # Records nested in a frame (a room list entry, a member) have no wire type: name them by class.
    what = getattr(cls, "TYPE", cls.__name__)
    for name, check, required in cls.CHECKS:
        raw = data.get(name)
        if raw is None:
            if required:
                raise invalid(ErrorCode.INVALID_FIELD, f"{what}: missing field {name!r}")
            continue
        try:
            values[name] = check(raw, limits)
        except RemoteProtocolError as error:
            raise invalid(error.code, f"{what}.{name}: {error.message}") from None
    return cls(**values)


def check_outgoing(message: Message, limits: Limits) -> None:
    """Check a message built locally against the rules its receiver will apply, before sending it.

    Raises `LocalProtocolError` with the code the peer would answer (e.g. `too_long` for an overlong text).
    """
    try:
        build(type(message), to_wire(message), limits)
    except RemoteProtocolError as error:
        raise LocalProtocolError(error.code, error.message) from None


def to_wire(value: Message) -> dict[str, Any]:
    """Return the wire map of a message or record: its fields, without those that are None."""
    out: dict[str, Any] = {}
    type_name = getattr(value, "TYPE", None)
    if type_name is not None:
        out["type"] = type_name
    nested = value.NESTED
    for name, item in zip(value.NAMES, type(value).VALUES(value), strict=True):
        if item is None:
            continue
        out[name] = _plain(item) if name in nested else item
    return out


def _plain(item: Any) -> Any:
    if isinstance(item, Message):
        return to_wire(item)
    if isinstance(item, Limits):
        # Its fields are plain integers: no need for `dataclasses.asdict`, which deep-copies each one.
        return {spec.name: getattr(item, spec.name) for spec in LIMIT_FIELDS}
    if isinstance(item, tuple | list):
        return [_plain(x) for x in item]
    return item


def invalid(code: ErrorCode, message: str) -> RemoteProtocolError:
    """Build the (non-fatal unless the code is) error for a value that broke a rule."""
    return RemoteProtocolError(code, message)


# -- The checks --------------------------------------------------------------------------------------------


def uint(value: Any, limits: Limits) -> int:
    """An unsigned integer up to `MAX_UINT` (2^53 - 1: every language, JavaScript included, holds it)."""
    if type(value) is not int or not 0 <= value <= MAX_UINT:
        raise invalid(ErrorCode.INVALID_FIELD, f"expected an integer from 0 to 2**53-1, got {_kind(value)}")
    return value


def number(value: Any, limits: Limits) -> int | float:
    """A non-negative finite number: an integer as for `uint`, or a float (a rate, a latency)."""
    if type(value) is float and math.isfinite(value) and value >= 0:
        return value
    return uint(value, limits)


def boolean(value: Any, limits: Limits) -> bool:
    """A msgpack boolean (never an integer)."""
    if type(value) is not bool:
        raise invalid(ErrorCode.INVALID_FIELD, f"expected a boolean, got {_kind(value)}")
    return value


def nick(value: Any, limits: Limits) -> str:
    """A nick (see `shared.text`)."""
    problem = nick_problem(_string(value), limits.max_nick)
    if problem is not None:
        raise invalid(ErrorCode.INVALID_NICK, problem)
    return str(value)


def room(value: Any, limits: Limits) -> str:
    """A room name (see `shared.text`)."""
    problem = room_problem(_string(value), limits.max_room)
    if problem is not None:
        raise invalid(ErrorCode.INVALID_ROOM, problem)
    return str(value)


def room_ids(value: Any, limits: Limits) -> dict[str, int]:
    """A map from room name to a message id (`hello.after`): at most `max_list` rooms."""
    if not isinstance(value, dict):
        raise invalid(ErrorCode.INVALID_FIELD, f"expected a map, got {_kind(value)}")
    if len(value) > limits.max_list:
        raise invalid(ErrorCode.TOO_LONG, f"map larger than {limits.max_list} entries")
    return {room(name, limits): uint(last, limits) for name, last in value.items()}


def text(value: Any, limits: Limits) -> str:
    """Chat message text: 1 to `max_text` bytes, newlines and tabs allowed, no other control characters."""
    problem = text_problem(_string(value), limits.max_text)
    if problem is not None:
        reason, too_long = problem
        raise invalid(ErrorCode.TOO_LONG if too_long else ErrorCode.INVALID_TEXT, reason)
    return str(value)


def short_text(limit: Callable[[Limits], int], limit_name: str) -> Check:
    """One line of text (a topic, a reason, an away message) of at most `limit(limits)` bytes, maybe empty.

    `limit_name` names the limit for the schema (a `Limits` field, or a constant's name)."""

    def check(value: Any, limits: Limits) -> str:
        line = _string(value)
        if line == "":
            return line
        problem = text_problem(line, limit(limits), multiline=False)
        if problem is not None:
            reason, too_long = problem
            raise invalid(ErrorCode.TOO_LONG if too_long else ErrorCode.INVALID_TEXT, reason)
        return line

    COMPOSED[check] = ("short_text", limit_name)
    return check


topic = short_text(lambda limits: limits.max_topic, "max_topic")
reason = short_text(lambda limits: limits.max_reason, "max_reason")
#: A word that highlights a message like a mention of one's nick: at most `max_nick` bytes.
keyword = short_text(lambda limits: limits.max_nick, "max_nick")


def choice(*values: str) -> Check:
    """One of a few fixed strings (a setting's name)."""
    allowed = frozenset(values)

    def check_choice(value: Any, limits: Limits) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise invalid(ErrorCode.INVALID_FIELD, f"expected one of {', '.join(values)}, got {value!r:.40}")
        return value

    COMPOSED[check_choice] = ("choice", values)
    return check_choice


def reaction(value: Any, limits: Limits) -> str:
    """A reaction: one emoji (a grapheme cluster) or a short ``:name:`` (`shared.text.reaction_problem`)."""
    problem = reaction_problem(_string(value))
    if problem is not None:
        raise invalid(ErrorCode.INVALID_REACTION, problem)
    return str(value)


def token(value: Any, limits: Limits) -> str:
    """An opaque identifier: 1 to 64 printable ASCII characters (a UUID, a counter, a magic word)."""
    word = _string(value)
    if not 0 < len(word) <= MAX_TOKEN or not (word.isascii() and word.isprintable()):
        raise invalid(ErrorCode.INVALID_FIELD, "expected 1 to 64 printable ASCII characters")
    return word


def file_name(value: Any, limits: Limits) -> str:
    """A file's name as offered: 1 to 255 bytes, one line, no control characters. Display data only: no
    receiver ever uses it as a path (the server stores by content hash, the client sanitises it)."""
    name = _string(value)
    problem = text_problem(name, MAX_FILE_NAME, multiline=False)
    if problem is not None:
        reason, too_long = problem
        raise invalid(ErrorCode.TOO_LONG if too_long else ErrorCode.INVALID_FIELD, f"file name: {reason}")
    return name


def sha256_hex(value: Any, limits: Limits) -> str:
    """A SHA-256 digest as 64 lowercase hexadecimal digits."""
    digest = _string(value)
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise invalid(ErrorCode.INVALID_FIELD, "a SHA-256 is 64 lowercase hex digits")
    return digest


def blob(value: Any, limits: Limits) -> bytes:
    """Raw bytes (msgpack bin): a file chunk. Its size is bounded by the frame it travels in."""
    if type(value) is not bytes:
        raise invalid(ErrorCode.INVALID_FIELD, f"expected binary, got {_kind(value)}")
    return value


def list_of(check: Check) -> Check:
    """A list (msgpack array) of at most `max_list` items, each validated by `check`; stored as a tuple."""

    def check_list(value: Any, limits: Limits) -> tuple[Any, ...]:
        if type(value) is not list:
            raise invalid(ErrorCode.INVALID_FIELD, f"expected an array, got {_kind(value)}")
        if len(value) > limits.max_list:
            raise invalid(ErrorCode.TOO_LONG, f"array longer than {limits.max_list} items")
        return tuple(check(item, limits) for item in value)

    COMPOSED[check_list] = ("array", check)
    return check_list


def nested(cls: type[Message]) -> Check:
    """A map holding a record of class `cls`."""

    def check_nested(value: Any, limits: Limits) -> Message:
        return build(cls, map_of_strings(value), limits)

    COMPOSED[check_nested] = ("record", cls)
    return check_nested


def one_of(*classes: type[Message]) -> Check:
    """A map holding one of several message types, chosen by its ``type`` key (e.g. history entries)."""
    by_type = {cls.TYPE: cls for cls in classes}

    def check_one_of(value: Any, limits: Limits) -> Message:
        data = map_of_strings(value)
        cls = by_type.get(data.get("type"))  # type: ignore[arg-type]
        if cls is None:
            raise invalid(ErrorCode.INVALID_FIELD, f"expected one of {sorted(by_type)}")
        return build(cls, data, limits)

    COMPOSED[check_one_of] = ("one_of", classes)
    return check_one_of


def limits_map(value: Any, limits: Limits) -> Limits:
    """The `Limits` a server announces: a map of positive integers; unknown limits are ignored."""
    data = map_of_strings(value)
    known = {name: uint(data[name], limits) for name in Limits.__slots__ if name in data}
    try:
        return Limits(**known)
    except ValueError as error:
        raise invalid(ErrorCode.INVALID_FIELD, str(error)) from None


def map_of_strings(value: Any) -> dict[str, Any]:
    """A map whose keys are all strings."""
    if type(value) is not dict:
        raise invalid(ErrorCode.INVALID_FIELD, f"expected a map, got {_kind(value)}")
    for key in value:
        if type(key) is not str:
            raise invalid(ErrorCode.INVALID_FIELD, "map keys must be strings")
    return value


_INVALID = frozenset({ErrorCode.INVALID_FIELD})
_TEXT_ERRORS = frozenset({ErrorCode.INVALID_FIELD, ErrorCode.TOO_LONG, ErrorCode.INVALID_TEXT})
#: What each plain check can raise (`check_errors`): a check added without an entry here fails the schema.
_PLAIN_CHECK_ERRORS: dict[Check, frozenset[ErrorCode]] = {
    uint: _INVALID,
    number: _INVALID,
    boolean: _INVALID,
    nick: frozenset({ErrorCode.INVALID_FIELD, ErrorCode.INVALID_NICK}),
    room: frozenset({ErrorCode.INVALID_FIELD, ErrorCode.INVALID_ROOM}),
    text: _TEXT_ERRORS,
    token: _INVALID,
    reaction: frozenset({ErrorCode.INVALID_FIELD, ErrorCode.INVALID_REACTION}),
    file_name: frozenset({ErrorCode.INVALID_FIELD, ErrorCode.TOO_LONG}),
    sha256_hex: _INVALID,
    blob: _INVALID,
    limits_map: _INVALID,
    room_ids: frozenset({ErrorCode.INVALID_FIELD, ErrorCode.INVALID_ROOM, ErrorCode.TOO_LONG}),
}


def _string(value: Any) -> str:
    # msgpack only ever produces exact `str` objects, so isinstance() here is as strict as a type() check.
    if not isinstance(value, str):
        raise invalid(ErrorCode.INVALID_FIELD, f"expected a string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "nil" if value is None else type(value).__name__
