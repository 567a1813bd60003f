"""Reading a classic pcap file of loopback traffic without Wireshark: the independent side of the dissector's
test. Loopback loses and reorders nothing, so each direction's TCP payloads, in capture order, are its byte
stream (retransmissions do not happen there; a repeated sequence number is skipped all the same)."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

#: Link types: Ethernet (Linux loopback, as dumpcap records it) and Linux "cooked" capture.
ETHERNET, LINUX_SLL = 1, 113

Flow = tuple[int, int]  # (source port, destination port)


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
    streams: dict[Flow, bytearray] = defaultdict(bytearray)
    next_seq: dict[Flow, int] = {}
    for ip in packets(path):
        if not ip or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        header = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[header:total]
        source, destination, seq = struct.unpack("!HHI", tcp[:8])
        payload = tcp[(tcp[12] >> 4) * 4 :]
        flow = (source, destination)
        if payload and next_seq.get(flow, seq) <= seq:
            streams[flow] += payload
            next_seq[flow] = seq + len(payload)
    return {flow: bytes(data) for flow, data in streams.items()}


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
