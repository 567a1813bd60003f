"""kill -9 in the middle of a chat: every acknowledged message survives exactly once; resume fills the gap."""

from __future__ import annotations

import threading
from pathlib import Path

from shared import Ack, FetchHistory, History, Join, Said, Say

from .client import ChatTestClient, wait_until
from .process import ServerProcess

SENDERS = 3
ACKS_BEFORE_KILL = 150


def server_arguments(data_dir: Path) -> list[str]:
    """A durable server (synchronous=FULL) with rate limits out of the way."""
    return [
        "--port", "0", "--data-dir", str(data_dir), "--history-sync", "FULL",
        "--rate-messages", "100000", "--rate-burst", "100000", "--rate-bytes", "1e9",
        "--rate-bytes-burst", "1000000000", "--log-level", "WARNING",
    ]  # fmt: skip


class Sender(threading.Thread):
    """Says numbered messages with client_msg_ids until the connection dies; records what was acked."""

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        super().__init__(name=f"sender-{nick}", daemon=True)
        self.client = ChatTestClient(address)
        self.client.login(nick)
        self.nick = nick
        self.acked: dict[str, int] = {}  # client_msg_id -> id
        self.unacked: str | None = None

    def run(self) -> None:
        """Send messages one at a time until the server goes away."""
        number = 0
        try:
            while True:
                cmid = f"{self.nick}-{number}"
                self.unacked = cmid
                self.client.send(Say(room="lobby", text=cmid, client_msg_id=cmid, ref=number))
                ack = self.client.recv(Ack, ref=number)
                self.acked[cmid] = ack.id
                self.unacked = None
                number += 1
        except (AssertionError, OSError):
            return  # the server was killed
        finally:
            self.client.close()


def fetch_all(client: ChatTestClient, room: str) -> list[Said]:
    """Page back through a room's whole history; return it oldest first."""
    messages: list[Said] = []
    before = None
    for ref in range(1000):
        client.send(FetchHistory(room=room, before=before, limit=200, ref=ref))
        page = client.recv(History, ref=ref)
        messages[:0] = [m for m in page.messages if isinstance(m, Said)]
        if not page.more:
            return messages
        before = page.messages[0].id
    raise AssertionError("history never ended")


def test_acked_messages_survive_kill_9_and_resume_fills_the_gap(tmp_path: Path) -> None:
    """Kill -9 mid-chat; after restart every acked message is stored once, and a resume gets the rest."""
    with ServerProcess(*server_arguments(tmp_path)) as first:
        assert first.address is not None, first.first_line
        listener = ChatTestClient(first.address)
        listener.login("listener")
        senders = [Sender(first.address, f"s{n}") for n in range(SENDERS)]
        for sender in senders:
            sender.start()
        wait_until(lambda: sum(len(s.acked) for s in senders) >= ACKS_BEFORE_KILL, 30, "acks before kill")
        # The listener saw some prefix of the room; it will resume from the last id it saw.
        seen = [m.id for m in listener.drain(0.01) if isinstance(m, Said)]
        first.kill()
        for sender in senders:
            sender.join(10)
        listener.close()
    acked = {cmid: message_id for sender in senders for cmid, message_id in sender.acked.items()}
    assert len(acked) >= ACKS_BEFORE_KILL
    with ServerProcess(*server_arguments(tmp_path)) as second:
        assert second.address is not None, second.first_line
        with ChatTestClient(second.address) as client:
            client.login("auditor", rooms=["lobby"])
            history = fetch_all(client, "lobby")
            stored = [m.text for m in history]
            assert len(stored) == len(set(stored)), "a message was stored twice"
            by_text = {m.text: m.id for m in history}
            for cmid, message_id in acked.items():
                assert by_text.get(cmid) == message_id, f"acked message {cmid} (id {message_id}) lost"
            # Resending what was in flight is safe: acked once, as a duplicate if it was stored.
            for number, sender in enumerate(senders):
                if sender.unacked is not None:
                    cmid = sender.unacked
                    retry = ChatTestClient(second.address)
                    retry.login(sender.nick)
                    retry.send(Say(room="lobby", text=cmid, client_msg_id=cmid, ref=number))
                    ack = retry.recv(Ack, ref=number)
                    assert ack.duplicate == (cmid in by_text)
                    retry.close()
            # The listener resumes after the last id it saw and gets exactly the rest, in order.
            resumer = ChatTestClient(second.address)
            resumer.login("listener", rooms=[])
            after = seen[-1] if seen else 0
            resumer.send(Join(room="lobby", after=after, backfill=None, ref=1))
            page = resumer.recv(History, ref=1)
            history = fetch_all(client, "lobby")
            expected = [m.id for m in history if m.id > after]
            got = [m.id for m in page.messages]
            assert page.skipped + len(got) == len(expected)
            assert got == expected[page.skipped :]
            resumer.close()
