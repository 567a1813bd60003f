"""Rules for names and text, shared by both sides: what is allowed, how names compare, how text is shown.

* A **nick** is 1 to `max_nick` characters, each a Unicode letter, digit or mark, or one of ``_ - .``
  (no spaces, punctuation, symbols, control, format, bidi or zero-width characters).
* A **room** name follows the same rules with `max_room`, and may also use ``+``.
* Two names are the same name when their *fold keys* are equal: NFKC normalisation plus Unicode case folding
  (the "NFKC_Casefold" identity of Unicode identifiers), so ``Zoë``, ``ZOË`` and ``Zoe\u0308`` are one nick.
* **Message text** is 1 to `max_text` bytes of UTF-8 with no C0 control characters except newline and tab,
  no DEL and no C1 controls. Bidi and zero-width characters are allowed in text (real scripts need them);
  clients show the dangerous ones visibly with `visible()`.
* **Short text** (topic, reasons, away message) follows the text rules without newlines.

Untrusted text is never trusted for display: `visible()` turns every control, bidi control and invisible
format character into a visible placeholder, so a string can never reach a terminal as an escape sequence
and never reorders or hides what is around it. The two joiners are the exception: ZERO WIDTH JOINER (U+200D)
builds emoji sequences (a family, a rainbow flag) and ZERO WIDTH NON-JOINER (U+200C) is part of Persian and
Indic spelling; both are passed to the terminal, which draws them as it draws any other text.
"""

from __future__ import annotations

import re
import unicodedata

# Letters, digits and the spacing and non-spacing marks that scripts such as Devanagari or a decomposed "é"
# need. Everything else (spaces, symbols, controls, the format category Cf where bidi and zero-width
# characters live) is refused. A name may not start with a mark, which would attach to the text before it.
_NAME_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd", "Nl", "No"})
_NICK_PUNCTUATION = frozenset("_-.")
_ROOM_PUNCTUATION = frozenset("_-.+")
# Most names are plain ASCII; this pattern accepts those without looking up each character's category.
_ASCII_NAME = {"nick": re.compile(r"[A-Za-z0-9_.\-]+"), "room name": re.compile(r"[A-Za-z0-9_.\-+]+")}

# What text may not contain: C0 controls other than tab and newline, DEL, and the C1 controls.
_TEXT_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SHORT_TEXT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# What `visible()` replaces: every control (except newline), the bidi marks, embeddings, overrides and
# isolates, and the zero-width and other invisible format characters that can hide or reorder text on screen.
# Not the joiners U+200C and U+200D: emoji sequences and Persian or Indic words need them, and they can
# neither move text nor start an escape sequence.
_INVISIBLE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)

#: How clients mark the further lines of a multi-line message (indented under its text, behind this mark),
#: so that no line of a message can pass for another message.
CONTINUATION = "\u2506"  # ┆


def fold(name: str) -> str:
    """Return the key under which two names are the same name (NFKC + case folding)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def nick_problem(nick: str, max_len: int) -> str | None:
    """Say what is wrong with `nick`, or return None when it is a valid nick."""
    return _name_problem(nick, max_len, _NICK_PUNCTUATION, "nick")


def room_problem(room: str, max_len: int) -> str | None:
    """Say what is wrong with a room name, or return None when it is valid."""
    return _name_problem(room, max_len, _ROOM_PUNCTUATION, "room name")


def _name_problem(name: str, max_len: int, punctuation: frozenset[str], what: str) -> str | None:
    if not name:
        return f"{what} is empty"
    if len(name) > max_len:
        return f"{what} is longer than {max_len} characters"
    if _ASCII_NAME[what].fullmatch(name):
        return None
    if unicodedata.category(name[0]).startswith("M"):
        return f"{what} may not start with a combining mark"
    for char in name:
        if char not in punctuation and unicodedata.category(char) not in _NAME_CATEGORIES:
            allowed = " ".join(sorted(punctuation))
            return f"{what} may hold only letters, digits and {allowed}, not U+{ord(char):04X}"
    return None


def text_problem(text: str, max_bytes: int, *, multiline: bool = True) -> tuple[str, bool] | None:
    """Say what is wrong with message or short text as ``(reason, too_long)``, or return None if valid."""
    if not text:
        return ("text is empty", False)
    # Cheap bound first: a str never has more code points than its UTF-8 has bytes.
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        return (f"text is longer than {max_bytes} bytes of UTF-8", True)
    forbidden = _TEXT_FORBIDDEN if multiline else _SHORT_TEXT_FORBIDDEN
    match = forbidden.search(text)
    if match is not None:
        return (f"text holds the control character U+{ord(match.group()):04X}", False)
    return None


def visible(text: str, *, keep_newlines: bool = True) -> str:
    """Return `text` safe to put on a terminal: controls, bidi and invisible characters become visible.

    C0 controls map to their Control Pictures (ESC shows as ``␛``), DEL to ``␡``, and every other replaced
    character to ``\ufffd``. Tab becomes one space. Newline is kept unless `keep_newlines` is false.
    """

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        code = ord(char)
        if char == "\t":
            return " "
        if code < 0x20:
            return chr(0x2400 + code)
        if code == 0x7F:
            return "\u2421"
        return "\ufffd"

    cleaned = _INVISIBLE.sub(replace, text)
    if not keep_newlines:
        cleaned = cleaned.replace("\n", "\u2424")
    return cleaned


# -- Reactions ---------------------------------------------------------------------------------------------

#: Longest reaction, in bytes of UTF-8: room for the longest emoji ZWJ sequences (a family with skin tones is
#: about 40 bytes) and for a `:name:` of `MAX_REACTION_NAME` characters.
MAX_REACTION_BYTES = 64
#: Longest name of a `:name:` reaction, in characters (between the colons).
MAX_REACTION_NAME = 32
#: Emoji elements joined by ZERO WIDTH JOINER in one reaction, at most (the longest standard ones have 4).
MAX_REACTION_ELEMENTS = 8

_REACTION_NAME = re.compile(rf":[a-z0-9_+\-]{{1,{MAX_REACTION_NAME}}}:")
_ZWJ = "\u200d"
_VS16, _VS15 = "\ufe0f", "\ufe0e"
_KEYCAP = "\u20e3"
_KEYCAP_BASES = frozenset("0123456789#*")
_TAG_CANCEL = "\U000e007f"

# Code points that start an emoji: the pictographic blocks of Unicode 15 (Extended_Pictographic is a superset
# of these ranges inside the BMP's symbol blocks and the supplementary emoji planes), plus the handful of
# older symbols that have an emoji presentation with VS16.
_PICTOGRAPHIC = (
    (0x1F000, 0x1FAFF),  # Mahjong, domino, playing cards, enclosed, symbols and pictographs, emoticons, ...
    (0x2600, 0x27BF),  # miscellaneous symbols, dingbats
    (0x2300, 0x23FF),  # miscellaneous technical (watch, hourglass, keyboard, ...)
    (0x2B00, 0x2BFF),  # arrows and stars (⭐, ⬛, ...)
    (0x2190, 0x21FF),  # arrows
    (0x25A0, 0x25FF),  # geometric shapes
    (0x2900, 0x297F),  # supplemental arrows
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x24C2, 0x24C2),
)


def _pictographic(char: str) -> bool:
    code = ord(char)
    if 0x1F1E6 <= code <= 0x1F1FF or 0x1F3FB <= code <= 0x1F3FF:
        return False  # regional indicators and skin tones are not emoji on their own
    return any(low <= code <= high for low, high in _PICTOGRAPHIC)


def _emoji_element(text: str, at: int) -> int:
    """Parse one emoji element of a ZWJ sequence starting at `at`; return where it ends, or -1."""
    end = len(text)
    char = text[at]
    code = ord(char)
    if 0x1F1E6 <= code <= 0x1F1FF:  # a flag: exactly two regional indicators
        if at + 1 < end and 0x1F1E6 <= ord(text[at + 1]) <= 0x1F1FF:
            return at + 2
        return -1
    if char in _KEYCAP_BASES:  # a keycap: 1️⃣ (the VS16 may be left out)
        at += 1
        if at < end and text[at] == _VS16:
            at += 1
        return at + 1 if at < end and text[at] == _KEYCAP else -1
    if not _pictographic(char):
        return -1
    at += 1
    if at < end and text[at] in (_VS16, _VS15):
        at += 1
    if at < end and 0x1F3FB <= ord(text[at]) <= 0x1F3FF:  # a skin tone
        at += 1
    if at < end and 0xE0020 <= ord(text[at]) <= 0xE007E:  # a tag sequence (🏴 subdivision flags)
        while at < end and 0xE0020 <= ord(text[at]) <= 0xE007E:
            at += 1
        if at >= end or text[at] != _TAG_CANCEL:
            return -1
        at += 1
    return at


def reaction_problem(reaction: str) -> str | None:
    """Say what is wrong with a reaction, or return None when it is one.

    A reaction is either **one emoji** (one grapheme cluster: a pictographic character with its optional
    presentation selector, skin tone or tag sequence, a flag of two regional indicators, a keycap, or up to
    `MAX_REACTION_ELEMENTS` of these joined by ZERO WIDTH JOINER), or a **short name** between colons,
    ``:name:``, of 1 to `MAX_REACTION_NAME` lowercase ASCII letters, digits and ``_ + -``. At most
    `MAX_REACTION_BYTES` bytes of UTF-8 either way. Nothing else: no text, no spaces, no controls.
    """
    if not reaction:
        return "a reaction is empty"
    if len(reaction.encode("utf-8", "surrogatepass")) > MAX_REACTION_BYTES:
        return f"a reaction is longer than {MAX_REACTION_BYTES} bytes"
    if reaction[0] == ":":
        if _REACTION_NAME.fullmatch(reaction):
            return None
        return f"a :name: reaction is 1 to {MAX_REACTION_NAME} of a-z 0-9 _ + - between colons"
    at, elements = 0, 0
    while True:
        at = _emoji_element(reaction, at)
        elements += 1
        if at < 0 or elements > MAX_REACTION_ELEMENTS:
            return "a reaction is one emoji or a :name:"
        if at == len(reaction):
            return None
        if reaction[at] != _ZWJ or at + 1 == len(reaction):
            return "a reaction is one emoji or a :name:"
        at += 1
