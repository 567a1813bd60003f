"""Every command of `chat-lab proxy`'s console (docs/lab.md, the table) is understood, answered as the docs
say, and sets the switch it names, on TCP and on UDP; the console's `help` lists them all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from chat_lab.proxy import FaultProxy, UdpFaultProxy
from chat_lab.proxycli import HELP, command

Check = Callable[[FaultProxy | UdpFaultProxy], bool]

TCP_COMMANDS: list[tuple[str, str, Check]] = [
    ("delay 100 up", "ok delay 100 up", lambda p: (p.to_server.delay, p.to_client.delay) == (0.1, 0.0)),
    ("jitter 20", "ok jitter 20 both", lambda p: p.to_server.jitter == p.to_client.jitter == 0.02),
    ("bandwidth 1000 down", "ok bandwidth 1000 down", lambda p: p.to_client.bandwidth == 1000),
    ("split 1", "ok split 1 both", lambda p: p.to_server.split == p.to_client.split == 1),
    ("coalesce 50 up", "ok coalesce 50 up", lambda p: p.to_server.coalesce == 0.05),
    ("discard on down", "ok discard on down", lambda p: p.to_client.discard and not p.to_server.discard),
    ("drop-after 10 down", "ok drop-after 10 down", lambda p: p.to_client.drop_after == 10),
    ("drop-at 500", "ok drop-at 500", lambda p: isinstance(p, FaultProxy) and p.drop_at == 0.5),
    ("corrupt 3 up", "ok corrupt 3 up", lambda p: (p.to_server.corrupt, p.to_client.corrupt) == (3, -1)),
    ("freeze down", "ok freeze down", lambda p: p.to_client.frozen and not p.to_server.frozen),
    ("thaw", "ok thaw both", lambda p: not p.to_client.frozen),
    ("refuse on", "ok refuse on", lambda p: isinstance(p, FaultProxy) and p.refuse),
    ("cut", "ok cut", lambda p: True),
    ("loss 0.5", "error loss: only for udp (--udp)", lambda p: p.to_server.loss == 0),
    ("duplicate 0.5", "error duplicate: only for udp (--udp)", lambda p: p.to_server.duplicate == 0),
    ("delay soon", "error delay: could not convert string to float: 'soon'", lambda p: not p.to_server.delay),
]
UDP_COMMANDS: list[tuple[str, str, Check]] = [
    ("loss 0.25 up", "ok loss 0.25 up", lambda p: (p.to_server.loss, p.to_client.loss) == (0.25, 0.0)),
    ("duplicate 0.5", "ok duplicate 0.5 both", lambda p: p.to_server.duplicate + p.to_client.duplicate == 1),
    ("jitter 80 down", "ok jitter 80 down", lambda p: p.to_client.jitter == 0.08),
    ("corrupt 0", "ok corrupt 0 both", lambda p: p.to_server.corrupt == 0),
    ("freeze up", "ok freeze up", lambda p: p.to_server.frozen),
    ("split 1", "error split: only for tcp", lambda p: p.to_server.split == 0),
    ("drop-at 100", "error drop-at: only for tcp", lambda p: True),
    ("refuse on", "error refuse: only for tcp", lambda p: True),
]


@pytest.mark.parametrize(("line", "answer", "check"), TCP_COMMANDS, ids=[c[0] for c in TCP_COMMANDS])
def test_each_tcp_console_command(line: str, answer: str, check: Check) -> None:
    """The command's answer line, and the switch it set."""
    proxy = FaultProxy(("127.0.0.1", 9))
    if line == "thaw":
        proxy.freeze("down", new_connections=True)
    assert asyncio.run(command(proxy, line)) == answer
    assert check(proxy)


@pytest.mark.parametrize(("line", "answer", "check"), UDP_COMMANDS, ids=[c[0] for c in UDP_COMMANDS])
def test_each_udp_console_command(line: str, answer: str, check: Check) -> None:
    """On a UDP proxy: its own switches, and the TCP ones refused with the reason."""
    proxy = UdpFaultProxy(("127.0.0.1", 9))
    assert asyncio.run(command(proxy, line)) == answer
    assert check(proxy)


def test_help_lists_every_command_of_the_docs() -> None:
    """`help` answers with every command the docs' table names."""
    proxy = FaultProxy(("127.0.0.1", 9))
    text = asyncio.run(command(proxy, "help"))
    assert text == HELP
    listed = {line.split()[0] for line in text.splitlines()[1:]}
    documented = {line.split()[0] for line, _, _ in TCP_COMMANDS + UDP_COMMANDS}
    assert documented | {"status", "help", "quit"} <= listed
