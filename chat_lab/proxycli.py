"""`chat-lab proxy`: the fault proxy on the command line, with a console on stdin for live toggles.

Started, it prints ``chat-lab proxy listening on HOST:PORT -> HOST:PORT (tcp)`` and then reads commands, one
per line, answering each with one line that starts with ``ok`` or ``error``. `HELP` is the list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from typing import TextIO, cast

from shared.addresses import host_port

from .proxy import SWITCHES, TCP_ONLY, UDP_ONLY, Direction, FaultProxy, UdpFaultProxy

HELP = """commands (times in ms; DIR is up, down or both, default both):
  delay MS [DIR]        hold each block MS ms
  jitter MS [DIR]       plus up to MS ms more, at random (reorders udp datagrams)
  bandwidth B [DIR]     at most B bytes a second (tcp)
  split N [DIR]         write N bytes at a time (tcp; 1: byte by byte)
  coalesce MS [DIR]     gather blocks for MS ms, write them as one (tcp)
  discard on|off [DIR]  throw the bytes away, keep the connection
  drop-after N [DIR]    close the connection once N bytes went that way (tcp)
  drop-at MS            close each new connection MS ms after it opened (tcp; 0: never)
  corrupt N [DIR]       invert byte N of each connection's stream, of each datagram on udp (-1: off)
  loss P [DIR]          lose each datagram with probability P (udp)
  duplicate P [DIR]     send each datagram twice with probability P (udp)
  freeze [DIR]          hold the bytes of the current and new connections
  thaw [DIR]            let them go (what was held goes out in one write)
  refuse on|off         close new connections at once (tcp)
  cut                   close every connection now
  status                the switches and the counters
  help                  this text
  quit                  stop the proxy"""

DIRECTIONS = ("up", "down", "both")


def address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or a bare ``PORT`` (on 127.0.0.1) as a pair."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or PORT, not {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The proxy's options: where, where to, and the faults it starts with."""
    parser.add_argument(
        "--listen",
        type=address,
        required=True,
        metavar="[HOST:]PORT",
        help="where to listen (HOST defaults to 127.0.0.1; PORT 0 picks a free one)",
    )
    parser.add_argument("--to", type=address, required=True, metavar="HOST:PORT", help="the server")
    parser.add_argument("--udp", action="store_true", help="forward UDP datagrams instead of TCP")
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="both",
        help="which way the switches below act: up (to the server), down, both (default)",
    )
    for name in SWITCHES:
        unit = {
            "delay": "MS",
            "jitter": "MS",
            "coalesce": "MS",
            "bandwidth": "BYTES_PER_S",
            "loss": "P",
            "duplicate": "P",
            "discard": "on|off",
        }.get(name, "N")
        parser.add_argument(f"--{name}", metavar=unit, help=_help_of(name))
    parser.add_argument("--drop-at", metavar="MS", help="close each connection MS ms after it opened (tcp)")
    parser.add_argument("--freeze", choices=DIRECTIONS, help="start with that way frozen")
    parser.add_argument("--seed", type=int, help="seed of the random faults (jitter, loss, duplicate)")
    parser.add_argument("--quiet", action="store_true", help="no console: do not read commands from stdin")


def _help_of(name: str) -> str:
    return {
        "delay": "hold each block that long (order kept on tcp)",
        "jitter": "plus a random part up to that long (reorders udp datagrams)",
        "bandwidth": "at most that many bytes a second (tcp)",
        "split": "write N bytes at a time (tcp; 1: byte by byte)",
        "coalesce": "gather blocks for that long and write them as one (tcp)",
        "discard": "throw the bytes away, keep the connection",
        "drop-after": "close the connection once N bytes went that way (tcp)",
        "corrupt": "invert byte N of each connection's stream (of each datagram on udp)",
        "loss": "lose each datagram with probability P (udp)",
        "duplicate": "send each datagram twice with probability P (udp)",
    }[name]


def configure(proxy: FaultProxy | UdpFaultProxy, args: argparse.Namespace) -> None:
    """Apply the command line's switches to a proxy that has not started yet."""
    udp = isinstance(proxy, UdpFaultProxy)
    for name in [*SWITCHES, "drop-at"]:
        value = getattr(args, name.replace("-", "_"))
        if value is None:
            continue
        problem = _misplaced(name, udp)
        if problem:
            raise SystemExit(f"chat-lab proxy: --{name}: {problem}")
        try:
            proxy.set(name, value, args.direction)
        except ValueError as error:
            raise SystemExit(f"chat-lab proxy: --{name}: {error}") from None
    if args.freeze:
        proxy.freeze(args.freeze, new_connections=True)


def _misplaced(name: str, udp: bool) -> str:
    if udp and name in TCP_ONLY:
        return "only for tcp"
    if not udp and name in UDP_ONLY:
        return "only for udp (--udp)"
    return ""


async def command(proxy: FaultProxy | UdpFaultProxy, line: str) -> str:
    """Carry out one console command and return the answer line."""
    words = line.split()
    if not words:
        return ""
    name, rest = words[0].lower(), words[1:]
    try:
        if name == "help":
            return HELP
        if name == "status":
            return "ok\n" + proxy.status()
        if name in ("freeze", "thaw"):
            way = _direction(rest[:1])
            if name == "freeze":
                proxy.freeze(way, new_connections=True)
            else:
                proxy.thaw(way)
            return f"ok {name} {way}"
        if name == "cut":
            await proxy.cut()
            return "ok cut"
        if name == "refuse" and len(rest) == 1:
            if not isinstance(proxy, FaultProxy):
                return f"error {name}: only for tcp"
            proxy.refuse = cast(bool, SWITCHES["discard"][1](rest[0]))
            return f"ok refuse {rest[0]}"
        if (name in SWITCHES or name == "drop-at") and 1 <= len(rest) <= 2:
            problem = _misplaced(name, isinstance(proxy, UdpFaultProxy))
            if problem:
                return f"error {name}: {problem}"
            way = _direction(rest[1:])
            proxy.set(name, rest[0], way)
            return f"ok {name} {rest[0]}" + ("" if name == "drop-at" else f" {way}")
    except ValueError as error:
        return f"error {name}: {error}"
    return f"error unknown command {line.strip()!r} (try help)"


def _direction(words: list[str]) -> Direction:
    way = words[0].lower() if words else "both"
    if way not in DIRECTIONS:
        raise ValueError(f"a direction is up, down or both, not {way!r}")
    return cast(Direction, way)


def run(args: argparse.Namespace) -> int:
    """Run the proxy until `quit`, Ctrl-C or SIGTERM."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args, sys.stdin, sys.stdout))
    return 0


async def serve(args: argparse.Namespace, source: TextIO, out: TextIO) -> None:
    """Start the proxy, print where it listens, and carry out console commands from `source`."""
    proxy: FaultProxy | UdpFaultProxy
    if args.udp:
        proxy = UdpFaultProxy(args.to, listen=args.listen, seed=args.seed)
    else:
        proxy = FaultProxy(args.to, listen=args.listen, seed=args.seed)
    configure(proxy, args)
    await proxy.start()
    kind = "udp" if args.udp else "tcp"
    print(
        f"chat-lab proxy listening on {host_port(*proxy.address)} -> {host_port(*args.to)} ({kind})",
        file=out,
        flush=True,
    )
    stop = asyncio.Event()
    try:
        if args.quiet:
            await stop.wait()  # until Ctrl-C or SIGTERM
        else:
            await _console(proxy, source, out)
    finally:
        await proxy.close()


async def _console(proxy: FaultProxy | UdpFaultProxy, source: TextIO, out: TextIO) -> None:
    """Read commands on a thread (stdin blocks) and carry them out on the loop, in order, until `quit`."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in source:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="proxy-console", daemon=True).start()
    while True:
        line = await lines.get()
        if line is None:  # stdin closed: keep forwarding until Ctrl-C, as with --quiet
            await asyncio.Event().wait()
            return
        if line.strip().lower() == "quit":
            print("ok quit", file=out, flush=True)
            return
        answer = await command(proxy, line)
        if answer:
            print(answer, file=out, flush=True)
