"""``chat-client --local``: run a chat server inside the client process, for a one-command start.

The server (`chat_server.ChatServer`, threaded) listens on 127.0.0.1 only, keeps its history in the
client's data folder, and is stopped when the client exits.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from shared.limits import DEFAULT_MAX_NICK
from shared.text import nick_problem

log = logging.getLogger(__name__)


#: The nick `--local` uses when no nick was given or remembered and the login name makes none.
FALLBACK_NICK = "guest"
# What a nick may not hold, in an ASCII login name; other names are checked character by character.
_NOT_NICK = re.compile(r"[^A-Za-z0-9_.\-]+")


def login_nick(max_len: int = DEFAULT_MAX_NICK) -> str:
    """A nick made from the login name, for ``chat-client --local`` with no nick given or remembered.

    Characters a nick may not hold become ``_`` (``Bob Smith`` -> ``Bob_Smith``), the result is cut to
    `max_len`; `FALLBACK_NICK` when nothing usable is left.
    """
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in the password database
        return FALLBACK_NICK
    if name.isascii():
        name = _NOT_NICK.sub("_", name)
    else:
        name = "".join(char if nick_problem(char, 1) is None else "_" for char in name)
    name = name.strip("_.-")[:max_len].strip("_.-")
    return name if name and nick_problem(name, max_len) is None else FALLBACK_NICK


class LocalServerError(RuntimeError):
    """The embedded server could not start (the package is missing, or the port is taken)."""


@contextlib.contextmanager
def local_server(port: int, data_dir: Path) -> Iterator[tuple[str, int]]:
    """Run a server on 127.0.0.1:`port` (0: any free port) and yield its address."""
    try:
        from chat_server.config import ServerConfig
        from chat_server.server import ChatServer
    except ImportError as error:  # pragma: no cover - only when the server package is absent
        raise LocalServerError(f"the chat server is not installed ({error})") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(host="127.0.0.1", port=port, data_dir=data_dir)
    try:
        server = ChatServer(config)
        server.__enter__()
    except OSError as error:
        raise LocalServerError(
            f"cannot start a local server on port {port}: {error.strerror or error}"
        ) from None
    try:
        host, bound = server.address[0], server.address[1]
        log.info("local server listening on %s:%d, history in %s", host, bound, data_dir)
        yield host, bound
    finally:
        server.__exit__(None, None, None)
