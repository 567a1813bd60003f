"""Reading a classic pcap file of loopback traffic without Wireshark: the independent side of the dissector's
test. Each direction's TCP payloads are put in the order of their sequence numbers (counted from the SYN's,
modulo 2**32), not in capture order: on a loaded machine the capture of loopback traffic has been seen out of
order, and a repeated or overlapping segment is taken once."""

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


def tcp_streams(path: Path) -> dict[Flow, bytes]:
    """Each TCP direction's payload bytes, keyed by (source port, destination port)."""
    first: dict[Flow, int] = {}  # the sequence number of each direction's first payload byte
    segments: dict[Flow, dict[int, bytes]] = defaultdict(dict)  # offset from `first` -> payload
    for ip in packets(path):
        if not ip or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        header = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[header:total]
        source, destination, seq = struct.unpack("!HHI", tcp[:8])
        flow = (source, destination)
        if tcp[13] & SYN:
            first[flow] = (seq + 1) % 2**32
            continue
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload:
            offset = (seq - first.setdefault(flow, seq)) % 2**32
            if len(payload) > len(segments[flow].get(offset, b"")):
                segments[flow][offset] = payload
    streams: dict[Flow, bytes] = {}
    for flow, parts in segments.items():
        stream = bytearray()
        for offset in sorted(parts):
            if offset + len(parts[offset]) > len(stream):  # what is not there yet (overlaps taken once)
                stream += parts[offset][max(0, len(stream) - offset) :]
        streams[flow] = bytes(stream)
    return streams


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
