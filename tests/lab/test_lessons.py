"""Each lesson (docs/lessons.md) runs, on real sockets on 127.0.0.1, and still shows what its page says."""

from __future__ import annotations

import io
import subprocess
import sys

from chat_lab.lessons import LESSONS, echo, faults, many, sticky, udp


def test_lesson_1_echo_states_and_reuseaddr() -> None:
    """The echo comes back; ss shows ESTAB, then FIN-WAIT-2/CLOSE-WAIT, then TIME-WAIT; a restart on the
    port fails with EADDRINUSE without SO_REUSEADDR and binds with it; a SYN nobody answers is SYN-SENT."""
    found = echo.run(io.StringIO())
    assert found.echoed == b"hello, echo"
    listening, connected, server_closed, both_closed, unanswered = (
        sorted(line.split()[0] for line in lines) for lines in found.states.values()
    )
    assert listening == ["LISTEN"]
    (line,) = found.states["listening"]
    state, local, peer = line.split()
    assert (state, local.rsplit(":", 1)[0], peer) == ("LISTEN", "127.0.0.1", "0.0.0.0:*")
    assert connected == ["ESTAB", "ESTAB", "LISTEN"]
    assert server_closed == ["CLOSE-WAIT", "FIN-WAIT-2", "LISTEN"]
    assert both_closed == ["LISTEN", "TIME-WAIT"]
    assert "SYN-SENT" in unanswered
    assert "LISTEN" in unanswered
    assert found.restart_without_reuseaddr == "EADDRINUSE"
    assert found.restart_with_reuseaddr == "bound"


def test_lesson_2_sticky_packets() -> None:
    """Merged writes arrive as one recv and split ones as many; the length prefix recovers the three
    messages both times; a split struct header breaks the naive reader, not the exact one; mpchat's transfer
    through the same split, cut mid-upload, resumes after the first chunk and arrives whole."""
    found = sticky.run(io.StringIO())
    merged, split = found.naive.values()
    assert merged == [b"".join(sticky.MESSAGES)]
    assert len(split) > len(sticky.MESSAGES)
    assert max(len(piece) for piece in split) <= 2
    assert list(found.framed.values()) == [list(sticky.MESSAGES)] * 2
    assert "struct.error" in found.header_naive["split 7"]
    exact = set(found.header_exact.values())
    assert len(exact) == 1
    assert exact.pop().startswith("notes.txt 1024 bytes, sha256 ")
    assert found.resumed_from > 0
    assert found.mpchat_saved == found.mpchat_sent
    assert found.mpchat_sent.startswith(f"notes.bin {sticky.MPCHAT_FILE_SIZE} bytes, sha256 ")


def test_lesson_3_udp_loss_duplication_reordering() -> None:
    """Through the lossy proxy some time queries go unanswered, some answers come twice, out of order; some
    beacons are heard, not all."""
    found = udp.run(io.StringIO())
    lost, duplicated, reordered = udp.summarise(found.replies)
    assert lost >= 1
    assert duplicated >= 1
    assert reordered
    assert 0 < found.beacons_heard < found.beacons_sent


def test_lesson_4_tutorial_stalls_mpchat_does_not() -> None:
    """A member that stops reading stalls the tutorial server for everyone; mpchat delivers every message."""
    tutorial, mpchat = many.run(io.StringIO())
    assert tutorial.stalled
    assert tutorial.received < tutorial.sent
    assert not mpchat.stalled
    assert mpchat.received == mpchat.sent == many.BATCH * many.BATCHES


def test_lesson_5_every_fault_ends_the_reader() -> None:
    """A vanished, a frozen and a garbling peer each end their reader thread: the first at once, the frozen
    one after the ping deadline, the garbling one with a protocol error."""
    vanish, freeze, garbage = faults.run(io.StringIO())
    assert all(run.reader_ended for run in (vanish, freeze, garbage))
    assert vanish.seconds < faults.PING_INTERVAL + faults.PING_TIMEOUT
    assert freeze.seconds >= faults.PING_TIMEOUT
    assert any("event=protocol_error" in line for line in garbage.log)
    assert any("out {'type': 'ping'" in line for line in freeze.log)
    assert any("reason='ping timeout'" in line for line in freeze.log)


def test_chat_lab_lesson_lists_the_lessons() -> None:
    """`chat-lab lesson` with no number lists every lesson with its title."""
    result = subprocess.run(
        [sys.executable, "-m", "chat_lab", "lesson"], capture_output=True, text=True, timeout=60, check=True
    )
    for number, (_, title) in LESSONS.items():
        assert f"{number}. {title}" in result.stdout
