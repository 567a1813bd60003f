"""Desktop notifications through the terminal: the escape sequences some terminals turn into a notification.

Three conventions exist, and a terminal understands one or none of them, so the person chooses (the
`--desktop-notify` option, remembered in the settings):

* `osc9`: ``ESC ] 9 ; body BEL`` (iTerm2, WezTerm, Windows Terminal, foot, kitty, ConEmu);
* `osc777`: ``ESC ] 777 ; notify ; title ; body BEL`` (urxvt, foot, Ghostty, VTE-based terminals);
* `osc99`: kitty's protocol, ``ESC ] 99 ; i=ID:d=0:e=1:p=title ; BASE64 ESC \\`` then the body the same way
  with ``p=body`` (kitty).

The title and body come from other people (a nick, a message), so they are untrusted: control characters
become visible symbols (`shared.text.visible`, ESC and BEL included, so nothing can end the sequence early
or start another), newlines become spaces, `;` in an OSC 777 title (its field separator) becomes `,`, and the
text is cut at `MAX_CHARS`. kitty's fields are base64 (``e=1``): any text is safe there.
"""

from __future__ import annotations

import base64
import itertools

from chat_client.settings import DESKTOP_NOTIFY_STYLES
from shared.text import visible

#: The styles that send something (`DESKTOP_NOTIFY_STYLES` without "off").
STYLES = tuple(style for style in DESKTOP_NOTIFY_STYLES if style != "off")
#: Most characters of a title or a body put in a notification.
MAX_CHARS = 200

_ids = itertools.count(1)


def clean(text: str) -> str:
    """`text` fit for a notification: one line of visible characters, at most `MAX_CHARS`."""
    one_line = visible(text, keep_newlines=False).replace("\u2424", " ")
    return one_line if len(one_line) <= MAX_CHARS else one_line[: MAX_CHARS - 1] + "…"


def notification(style: str, title: str, body: str) -> str:
    """The escape sequence that asks a terminal of `style` to show a notification."""
    title, body = clean(title), clean(body)
    if style == "osc9":
        return f"\x1b]9;{title}: {body}\x07"
    if style == "osc777":
        return f"\x1b]777;notify;{title.replace(';', ',')};{body}\x07"
    if style == "osc99":
        number = next(_ids)
        head = base64.b64encode(title.encode()).decode()
        rest = base64.b64encode(body.encode()).decode()
        return (
            f"\x1b]99;i={number}:d=0:e=1:p=title;{head}\x1b\\\x1b]99;i={number}:d=1:e=1:p=body;{rest}\x1b\\"
        )
    raise ValueError(f"unknown desktop notification style {style!r} (one of {', '.join(STYLES)})")
