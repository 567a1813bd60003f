"""Reading a classic pcap file of loopback traffic without Wireshark: the independent side of the dissector's
test. Each direction's TCP payloads are put in the order of their sequence numbers (counted from the SYN's,
modulo 2**32), not in capture order, and a repeated or overlapping segment is taken once; a port pair used
again by a later connection starts a stream of its own at its SYN."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

#: Link types: Ethernet (Linux loopback, as dumpcap records it) and Linux "cooked" capture.
ETHERNET, LINUX_SLL = 1, 113

Flow = tuple[int, int]  # (source port, destination port)
#: The SYN bit of the TCP flags byte.
SYN = 0x02


def packets(path: Path) -> list[bytes]:
    """The IP packets of a pcap file (the link-layer header removed)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(order + "I", data[20:24])[0]
    strip = {ETHERNET: 14, LINUX_SLL: 16}[link]
    found, offset = [], 24
    while offset + 16 <= len(data):
        captured = struct.unpack(order + "I", data[offset + 8 : offset + 12])[0]
        found.append(data[offset + 16 + strip : offset + 16 + captured])
        offset += 16 + captured
    return found


def tcp_streams(path: Path) -> dict[Flow, list[bytes]]:
    """Each TCP direction's payload bytes, keyed by (source port, destination port): one byte string per
    connection, in the order the connections began. A busy machine may give a later connection the same
    port pair (Linux reuses a loopback port in TIME_WAIT; the conformance suite opens a hundred
    connections): its SYN starts a new stream of that pair."""
    connections: dict[Flow, list[tuple[int, dict[int, bytes]]]] = defaultdict(list)  # (first seq, segments)
    for ip in packets(path):
        if not ip or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        header = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[header:total]
        source, destination, seq = struct.unpack("!HHI", tcp[:8])
        flow = (source, destination)
        if tcp[13] & SYN:
            connections[flow].append(((seq + 1) % 2**32, {}))  # the SYN takes one sequence number
            continue
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if not payload:
            continue
        if not connections[flow]:  # the connection began before the capture
            connections[flow].append((seq, {}))
        first, segments = connections[flow][-1]
        offset = (seq - first) % 2**32
        if len(payload) > len(segments.get(offset, b"")):
            segments[offset] = payload
    return {flow: [_joined(segments) for _first, segments in found] for flow, found in connections.items()}


def _joined(segments: dict[int, bytes]) -> bytes:
    """One connection's bytes from its segments by offset (overlaps taken once)."""
    stream = bytearray()
    for offset in sorted(segments):
        if offset + len(segments[offset]) > len(stream):
            stream += segments[offset][max(0, len(stream) - offset) :]
    return bytes(stream)


def udp_datagrams(path: Path) -> list[tuple[Flow, bytes]]:
    """Every UDP datagram, with its ports, in capture order."""
    found = []
    for ip in packets(path):
        if not ip or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        header = (ip[0] & 0x0F) * 4
        source, destination, length = struct.unpack("!HHH", ip[header : header + 6])
        found.append(((source, destination), ip[header + 8 : header + length]))
    return found
