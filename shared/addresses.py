"""IP addresses as the project shows and counts them: ``host:port`` text and per-address keys (no I/O).

* `host_port(host, port)`: ``192.0.2.7:7878``, or ``[2001:db8::7]:7878`` for IPv6 (RFC 3986 brackets), as
  every log line, table and status line shows an endpoint.
* `plain_address(text)`: the address a peer is shown and counted as: an IPv4-mapped IPv6 address
  (``::ffff:192.0.2.7``, what a dual-stack listener reports for an IPv4 client) becomes its IPv4 address, and
  IPv6 is written in its compressed form.
* `parse_servers(text, default_port)`: the servers of one chat as a user writes them, ``HOST[:PORT]``
  entries separated by commas (``a.lan,b.lan:7000,[::1]:7000``); `describe_servers` writes them back, each
  as `host_port` does.
* `address_key(text)`: what the per-address limits count by. An IPv4 address is itself; a global or unique
  local IPv6 address stands for its /64 prefix (``2001:db8:1:2::/64``): one host normally owns a whole /64
  and may pick any address in it (privacy addresses change every day), so counting single IPv6 addresses
  would give one host 2⁶⁴ tries. Loopback and link-local IPv6 addresses are keyed as themselves: every host
  on a link shares the prefix fe80::/64, so that prefix says nothing about who is asking.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPV6_PREFIX", "address_key", "describe_servers", "host_port", "parse_servers", "plain_address"]

#: The IPv6 prefix length one host is assumed to own (RFC 4291's interface identifiers are 64 bits).
IPV6_PREFIX = 64


def host_port(host: str, port: int) -> str:
    """``host:port``; an IPv6 address (it contains ``:``) goes in brackets: ``[::1]:7878``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_servers(text: str, default_port: int) -> list[tuple[str, int]]:
    """The servers of one chat as `(host, port)` pairs, from ``HOST[:PORT]`` entries separated by commas.

    An entry without a port gets `default_port`. An IPv6 address takes a port only in brackets
    (``[::1]:7000``); written bare (``::1``, ``fe80::1%eth0``) it is the host alone. An entry given twice is
    kept once, in its first place. Raises `ValueError` (a message for people) on an empty entry or a bad port.
    """
    servers: list[tuple[str, int]] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"an empty server name in {text.strip()!r}")
        host, port = entry, default_port
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            if not bracket or not host or (rest and not rest.startswith(":")):
                raise ValueError(f"{entry!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
            if rest:
                port = _port(entry, rest[1:])
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
            if not host:
                raise ValueError(f"{entry!r}: no host before the port")
            port = _port(entry, port_text)
        if (host, port) not in servers:
            servers.append((host, port))
    return servers


def describe_servers(host: str, port: int) -> str:
    """`host` as people read it, one server or several: ``a.lan:7878, [::1]:7000`` (as `host_port`)."""
    try:
        return ", ".join(host_port(name, number) for name, number in parse_servers(host, port))
    except ValueError:
        return host_port(host, port)


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(text)


def plain_address(text: str) -> str:
    """`text` (an IP literal) as shown and counted: IPv4-mapped IPv6 becomes IPv4; not an IP: unchanged."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def address_key(text: str) -> str:
    """The key per-address limits count `text` under: IPv4 as is, IPv6 by its /64 (see the module doc)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if not isinstance(address, ipaddress.IPv6Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.is_loopback or address.is_link_local:
        return str(address)
    network = ipaddress.IPv6Network((int(address) >> (128 - IPV6_PREFIX) << (128 - IPV6_PREFIX), IPV6_PREFIX))
    return str(network)
