"""`shared.messages` is the one list of frame types: its docstring table matches what the decoder knows."""

from __future__ import annotations

import re

import shared.messages
from shared import SENT_BY_CLIENT, SENT_BY_SERVER
from shared.schema import Sender

ROW = re.compile(r"^ {4}(?P<module>\w+)? +(?P<type>\w+) +(?P<cls>\w+) +(?P<sender>client|server|both)$")
SENDERS = {Sender.CLIENT: "client", Sender.SERVER: "server", Sender.BOTH: "both"}


def table() -> dict[str, tuple[str, str, str]]:
    """The docstring's rows: wire type -> (module, class, sender), the module carried down its group."""
    rows: dict[str, tuple[str, str, str]] = {}
    module = ""
    for line in (shared.messages.__doc__ or "").splitlines():
        match = ROW.match(line)
        if match is None or match["type"] == "type":
            continue
        module = match["module"] or module
        assert match["type"] not in rows, f"{match['type']} is listed twice"
        rows[match["type"]] = (module, match["cls"], match["sender"])
    return rows


def test_the_table_lists_every_frame_type_where_it_is_defined() -> None:
    """Every registered wire type has one row naming its class, its module and who sends it; no other rows."""
    known = {**SENT_BY_CLIENT, **SENT_BY_SERVER}
    rows = table()
    assert set(rows) == set(known)
    for type_name, cls in known.items():
        module = cls.__module__.rsplit(".", 1)[-1]
        assert rows[type_name] == (module, cls.__name__, SENDERS[cls.SENDER]), type_name
