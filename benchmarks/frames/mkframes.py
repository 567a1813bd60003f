"""Write a `frames` config for the C reference load generator, speaking the mpchat protocol.

    python -m benchmarks.frames.mkframes [--size 64] [--room bench] [-o /tmp/mpchat.frames]

The config (see ../shared/bench/README.md, "Writing a frames config") holds, as hex msgpack bodies:

* login: `hello` with proto "mpchat", version 1, nick "u%CONN%" (the C load generator puts the 6-digit
  connection index in place of %CONN%) and rooms ["bench"];
* the wait condition: a frame containing the bytes of ``"type": "history"``, the last frame of a login
  (after `welcome`, `joined` and `room_state`);
* the message template: a `say` frame whose text starts with the load generator's 20-byte marker
  placeholder ("T" + 19 zeros), which it overwrites with the send time, so msgpack lengths stay valid;
* `echo = 0`: the server sends the message to every other member and an `ack` (no text) to the sender.

Our server and the tutorial baseline speak the same protocol, so one config drives both. The frames are built
with the project's own encoder, so the config follows any change to the protocol.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import msgpack

from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Hello, Say, encode_body

#: The C load generator's marker placeholder: "T" and 19 digits, overwritten with CLOCK_MONOTONIC ns.
PLACEHOLDER = "T" + "0" * 19
#: The connection-index placeholder the C load generator replaces in `send` frames (6 bytes).
CONN = "%CONN%"


def text_of(size: int) -> str:
    """A chat text of `size` bytes starting with the marker placeholder."""
    if size < len(PLACEHOLDER) + 1:
        raise ValueError(f"size must be at least {len(PLACEHOLDER) + 1}")
    filler = "abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1)
    return PLACEHOLDER + " " + filler[: size - len(PLACEHOLDER) - 1]


def config_text(size: int, room: str) -> str:
    """The whole config file."""
    # "u%CONN%" is not a valid nick ("%" is refused), so build the hello with a stand-in of the same length
    # and put the placeholder back into the encoded bytes: the msgpack string length stays right.
    stand_in = "u" + "9" * len(CONN)
    hello = encode_body(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=stand_in, rooms=(room,)))
    hello = hello.replace(stand_in.encode(), b"u" + CONN.encode())
    say = encode_body(Say(room=room, text=text_of(size)))
    history = msgpack.packb("type") + msgpack.packb("history")
    lines = [
        f"# loadgen frames config for mpchat (benchmarks.frames.mkframes --size {size} --room {room})",
        f"# login: {msgpack.unpackb(hello)!r}",
        f"send = {hello.hex()}",
        "# logged in once the history backfill for the room arrives (after welcome, joined, room_state)",
        f"wait_bytes = {history.hex()}",
        f"# message template: {msgpack.unpackb(say)!r}",
        f"msg = {say.hex()}",
        "# no echo: the sender gets an ack, every other member the said frame",
        "echo = 0",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the config file."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.frames.mkframes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=int, default=64, help="chat text bytes, marker included (default 64)")
    parser.add_argument("--room", default="bench")
    parser.add_argument("-o", "--output", type=Path, default=Path("/tmp/mpchat.frames"))
    args = parser.parse_args(argv)
    try:
        text = config_text(args.size, args.room)
    except ValueError as error:
        parser.error(str(error))
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
