"""`chat-lab timeline`: a short scripted chat against a server under a tracer, written as a trace file that
shows the server's threads (acceptor, one reader per connection, history, sender) and what each did when.

The server runs in this process (port 0, its history in a temporary folder), started after the tracer so
that every one of its threads is traced. Three clients log in to one room and take turns saying a few lines;
then everything stops and the trace is saved. Open the file in https://ui.perfetto.dev (or `vizviewer
FILE`): one row per thread, and on each say the hand-offs: the sender's `conn-N-reader` decodes it and
hands it to the queue, `history` stores it and fans it out to the send queues, `sender` writes it to each
member's socket, and the other members' readers are idle the whole time.

Needs the `lab` extra (`pip install -e '.[lab]'`: viztracer).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import Message, Said, Say

from .lessons.wire import LessonClient
from .timelinesvg import draw

#: Where the trace goes unless `--out` says.
DEFAULT_TRACE = Path("mpchat-timeline.json")
#: Lines each client says.
DEFAULT_LINES = 3
#: Calls deeper than this are not recorded (the file stays small; the hand-offs are near the top).
MAX_STACK_DEPTH = 15
NICKS = ("alice", "bob", "carol")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_TRACE, help=f"the trace file (default {DEFAULT_TRACE})"
    )
    parser.add_argument(
        "--lines", type=int, default=DEFAULT_LINES, help="lines each of the three clients says"
    )
    parser.add_argument(
        "--svg", type=Path, metavar="FILE", help="also draw the server threads' lanes as an SVG"
    )


def said(text: str) -> Callable[[Message], bool]:
    """A test for the `said` carrying `text`."""
    return lambda message: isinstance(message, Said) and message.text == text


def scripted_chat(address: tuple[str, int], lines: int) -> None:
    """Three clients in one room take turns; each line is awaited by everyone before the next."""
    clients = [LessonClient(address, nick) for nick in NICKS]
    try:
        for number in range(lines):
            for nick, speaker in zip(NICKS, clients, strict=True):
                text = f"line {number} from {nick}"
                speaker.send(Say(room="lobby", text=text))
                for listener in clients:
                    if listener is not speaker:
                        listener.wait_for(said(text))
    finally:
        for client in clients:
            client.close()


def record_timeline(out: Path, lines: int = DEFAULT_LINES) -> Path:
    """Trace a server and a scripted chat into `out`; return the path."""
    from viztracer import VizTracer  # the optional `lab` extra

    # No include_files: with it, viztracer records nothing on threads whose first frames (threading's) are
    # outside the included folders, which is every server thread.
    tracer = VizTracer(
        output_file=str(out), max_stack_depth=MAX_STACK_DEPTH, ignore_c_function=True, verbose=0
    )
    with tempfile.TemporaryDirectory() as folder:
        config = ServerConfig(host="127.0.0.1", port=0, data_dir=Path(folder), history_sync="NORMAL")
        tracer.start()
        try:
            with ChatServer(config) as server:
                scripted_chat(server.address[:2], lines)
        finally:
            tracer.stop()
    tracer.save()
    return out


def run(args: argparse.Namespace) -> int:
    """`chat-lab timeline`."""
    try:
        path = record_timeline(args.out, args.lines)
        print(f"trace written to {path}: open it in https://ui.perfetto.dev or with `vizviewer {path}`")
        if args.svg is not None:
            print(f"picture written to {draw(path, args.svg)}")
    except ModuleNotFoundError as error:
        if error.name not in ("viztracer", "matplotlib"):
            raise
        print(f"chat-lab timeline needs {error.name}: pip install 'mpchat[lab]' (or -e '.[lab]')")
        return 2
    return 0
