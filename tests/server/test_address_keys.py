"""What the per-address limits count by (`shared.addresses`): IPv4 as is, IPv6 by its /64, IPv4-mapped IPv6
as IPv4; and ``host:port`` text with IPv6 in brackets. Plus the wrong-password limit keyed that way."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chat_server.config import ServerConfig
from chat_server.reader.gate import AccessRefused, Gate
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Hello
from shared.addresses import address_key, host_port, plain_address


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack listener's view of an IPv4 client
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),  # a privacy address of the same host
        ("2001:DB8:1:2:0:0:0:9", "2001:db8:1:2::/64"),  # any spelling
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64: another host
        ("fd12:3456:789a:1::5", "fd12:3456:789a:1::/64"),  # unique local addresses too
        ("::1", "::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),  # link-local: every host on the link shares fe80::/64
        ("not an address", "not an address"),
    ],
)
def test_address_key(address: str, key: str) -> None:
    """Each address is counted under its key."""
    assert address_key(address) == key


def test_link_local_neighbours_are_not_one_host() -> None:
    """Two link-local addresses are two keys, although both are in fe80::/64."""
    assert address_key("fe80::1") != address_key("fe80::2")


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("192.0.2.7", "192.0.2.7"),
        ("::1", "::1"),
        ("name", "name"),
    ],
)
def test_plain_address(address: str, shown: str) -> None:
    """Addresses are shown compressed, IPv4-mapped ones as IPv4."""
    assert plain_address(address) == shown


def test_host_port_brackets_ipv6() -> None:
    """``[::1]:7878`` for IPv6, ``host:port`` otherwise."""
    assert host_port("::1", 7878) == "[::1]:7878"
    assert host_port("2001:db8::7", 5555) == "[2001:db8::7]:5555"
    assert host_port("192.0.2.7", 7878) == "192.0.2.7:7878"
    assert host_port("chat.lan", 7878) == "chat.lan:7878"


def test_wrong_passwords_from_one_ipv6_64_share_one_budget(tmp_path: Path) -> None:
    """Guessing from new addresses of the same /64 does not earn new tries; another /64 still has its own,
    and an IPv4 client of a dual-stack listener shares the budget of its plain IPv4 address."""
    config = ServerConfig(data_dir=tmp_path, password="right", password_failures=2)
    gate = Gate(config)

    def no_db() -> sqlite3.Connection:
        raise AssertionError("no nick password was given")

    hello = Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="mallory", password="wrong")

    def attempt(address: str) -> str:
        with pytest.raises(AccessRefused) as refused:
            gate.admit(address, hello, no_db)
        return refused.value.code

    assert attempt("2001:db8:1:2::1") == "bad_password"
    assert attempt("2001:db8:1:2::2") == "bad_password"
    assert attempt("2001:db8:1:2:ffff::3") == "too_many_attempts"  # same /64: no tries left
    assert attempt("2001:db8:1:3::1") == "bad_password"  # another /64
    assert attempt("192.0.2.7") == "bad_password"
    assert attempt("::ffff:192.0.2.7") == "bad_password"
    assert attempt("192.0.2.7") == "too_many_attempts"
