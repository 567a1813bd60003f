"""Moderation through the client library and the plain line mode, against a real server: `moderate()`
returns the server's answer or raises `ServerError`; `join(key=...)` gets into a keyed room and the key is
given again on a reconnect; the plain mode runs the same commands and prints the same lines."""

from __future__ import annotations

import pytest

from chat_client import ChatClient
from chat_client.net.errors import ServerError
from chat_client.net.events import Connected
from shared import Ack, BanList, Kick, Left, ListBans, Moderated, Mute, RoomState, SetMode
from tests.waiting import wait_until, wait_until_answered

from .helpers import LiveServer
from .test_library import FAST, Recorder
from .test_plain import killed_on_exit, plain_client


async def test_library_moderates_and_rejoins_a_keyed_room(server: LiveServer) -> None:
    async with (
        ChatClient(server.host, server.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
    ):
        state = await alice.join("vault")
        assert state is not None
        assert [(m.nick, m.op) for m in state.members] == [("alice", True)]
        answer = await alice.moderate(SetMode(room="vault", key="open sesame"))
        assert isinstance(answer, RoomState)
        assert answer.key == "open sesame"
        with pytest.raises(ServerError) as refused:
            await bob.join("vault")
        assert refused.value.code == "bad_key"
        joined = await bob.join("vault", key="open sesame")
        assert joined is not None
        assert joined.keyed
        with pytest.raises(ServerError) as refused:
            await bob.moderate(Kick(room="vault", nick="alice"))
        assert refused.value.code == "not_operator"
        ack = await alice.moderate(Mute(room="vault", nick="bob", duration=60))
        assert isinstance(ack, Ack)
        bans = await alice.moderate(ListBans(room="vault"))
        assert isinstance(bans, BanList)
        assert bans.bans == ()
        # A dropped connection comes back into the keyed room by itself: the key was remembered.
        events = Recorder(bob)
        await server.astop()
        await server.astart()

        def since_reconnect() -> list[object]:
            starts = [i for i, e in enumerate(events.events) if isinstance(e, Connected)]
            return events.events[starts[-1] :] if len(starts) >= 2 else []

        def back_in_vault() -> bool:
            return any(isinstance(e, RoomState) and e.room == "vault" for e in since_reconnect())

        await wait_until(back_in_vault, 20, "bob back in vault")
        assert not [e for e in since_reconnect() if getattr(e, "code", None) == "bad_key"]


async def wait_for_operator(client: ChatClient, room: str, nick: str, timeout: float = 15.0) -> None:
    """Ask `who` until `nick` is listed as an operator of `room`; fail after `timeout` seconds."""

    async def is_operator() -> bool:
        try:
            state = await client.who(room)
        except ServerError:
            return False  # the room does not exist yet
        return state is not None and any(m.nick == nick and m.op for m in state.members)

    await wait_until_answered(is_operator, timeout, f"{nick} to become an operator of {room}")


async def test_plain_mode_runs_the_moderation_commands(server: LiveServer) -> None:
    """alice in the plain mode creates `mod`, mutes and kicks bob; her output shows each action once."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        events = Recorder(bob)
        with killed_on_exit(plain_client(server, "alice", "--room", "mod")) as process:
            assert process.stdin is not None

            await wait_for_operator(bob, "mod", "alice")
            await bob.join("mod")
            process.stdin.write("/mute bob 10m noisy\n/kick bob flood\n/bans\n/quit\n")
            process.stdin.flush()
            await wait_until(lambda: any(e.nick == "bob" for e in events.of(Left)), 15, "bob kicked")
            out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        actions = [e.action for e in events.of(Moderated)]
        assert actions == ["mute", "kick"]
        assert "mod -!- alice muted bob until " in out
        assert out.count("alice kicked bob (flood)") == 1
        assert "no bans in mod" in out
