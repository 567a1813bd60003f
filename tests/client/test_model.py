"""The UI-free chat model: buffers, unread counts, mentions, members, outbox lines and bounds."""

from __future__ import annotations

from chat_client.events import Connected, Disconnected, OutboxChanged, Reconnecting
from chat_client.model import SERVER_KEY, ChatModel, ConnectionStatus, LineKind
from chat_client.outbox import DeliveryState, OutboxEntry
from shared import History, Joined, Left, Member, NickChanged, RoomState, Said, SignedOff, Told, Welcome

TS = 1_763_750_000_000


def said(message_id: int, text: str, nick: str = "bob", room: str = "lobby") -> Said:
    return Said(id=message_id, room=room, nick=nick, text=text, ts=TS + message_id)


def joined_model(*rooms: str) -> ChatModel:
    """A model for alice, connected, in `rooms` (the first one shown)."""
    model = ChatModel("alice", clock=lambda: 1000.0)
    welcome = Welcome(version=1, nick="alice", server="test", ts=TS)
    model.apply(Connected(welcome, resumed=False))
    for room in rooms:
        model.apply(Joined(room=room, nick="alice", ts=TS))
    return model


def test_own_join_creates_and_shows_the_room() -> None:
    """The first room joined becomes the current buffer."""
    model = joined_model("lobby")
    assert model.current == "#lobby"
    assert model.buffers["#lobby"].joined
    assert model.status is ConnectionStatus.CONNECTED


def test_messages_in_other_rooms_count_as_unread() -> None:
    """A message in a room not on screen raises its unread count; switching clears it."""
    model = joined_model("lobby", "dev")
    changes = model.apply(said(1, "hi", room="dev"))
    assert model.buffers["#dev"].unread == 1
    assert changes.buffers
    assert model.buffers["#lobby"].unread == 0
    model.switch("#dev")
    assert model.buffers["#dev"].unread == 0


def test_mentions_are_detected_as_words() -> None:
    """My nick as a word is a mention (any case); inside another word it is not."""
    model = joined_model("lobby", "dev")
    changes = model.apply(said(1, "hey ALICE, look", room="dev"))
    assert changes.mentions
    assert model.buffers["#dev"].mentioned
    assert not model.apply(said(2, "malice is not a name", room="dev")).mentions
    assert not model.apply(said(3, "alice_bot is someone else", room="dev")).mentions


def test_direct_messages_open_a_conversation_and_count_as_mentions() -> None:
    """A Told opens the @peer buffer and notifies."""
    model = joined_model("lobby")
    changes = model.apply(Told(id=5, nick="bob", to="alice", text="psst", ts=TS))
    assert "@bob" in model.buffers
    assert changes.mentions
    assert model.buffers["@bob"].unread == 1


def test_duplicate_message_ids_are_shown_once() -> None:
    """The same message arriving live and in a replay is one line."""
    model = joined_model("lobby")
    model.apply(said(7, "once"))
    model.apply(History(room="lobby", messages=(said(7, "once"), said(8, "new"))))
    texts = [line.text for line in model.buffers["#lobby"].lines if line.kind is LineKind.MESSAGE]
    assert texts == ["once", "new"]


def test_older_history_is_inserted_at_the_top() -> None:
    """A page of older messages goes before the oldest line and asks for a redraw."""
    model = joined_model("lobby")
    model.apply(History(room="lobby", messages=(said(10, "ten"), said(11, "eleven")), more=True))
    changes = model.apply(History(room="lobby", messages=(said(3, "three"), said(4, "four")), more=False))
    assert "#lobby" in changes.redraw
    texts = [line.text for line in model.buffers["#lobby"].lines if line.id is not None]
    assert texts == ["three", "four", "ten", "eleven"]
    assert not model.buffers["#lobby"].more_before


def test_scrollback_is_bounded() -> None:
    """A buffer keeps at most max_lines lines, dropping the oldest."""
    model = ChatModel("alice", max_lines=5)
    model.apply(Joined(room="lobby", nick="alice", ts=TS))
    for n in range(1, 21):
        model.apply(said(n, f"m{n}"))
    lines = model.buffers["#lobby"].lines
    assert len(lines) == 5
    assert [line.text for line in lines] == ["m16", "m17", "m18", "m19", "m20"]
    assert model.buffers["#lobby"].oldest_id == 16


def test_outbox_entry_is_pending_then_a_line() -> None:
    """A sent message is pending until acked, then becomes one own line with its id."""
    model = joined_model("lobby")
    entry = OutboxEntry(client_msg_id="c1", text="mine", room="lobby", created=1.0)
    model.apply(OutboxChanged(entry))
    assert model.buffers["#lobby"].pending == [entry]
    acked = OutboxEntry(
        client_msg_id="c1", text="mine", room="lobby", state=DeliveryState.ACKNOWLEDGED, id=9, ts=TS
    )
    changes = model.apply(OutboxChanged(acked))
    assert model.buffers["#lobby"].pending == []
    line = changes.lines["#lobby"][-1]
    assert line.own
    assert (line.id, line.nick, line.text) == (9, "alice", "mine")


def test_failed_message_becomes_an_error_line() -> None:
    """A refused message is shown as not delivered, with the reason."""
    model = joined_model("lobby")
    failed = OutboxEntry(
        client_msg_id="c1", text="x", room="lobby", state=DeliveryState.FAILED, error_code="too_long"
    )
    changes = model.apply(OutboxChanged(failed))
    assert changes.lines["#lobby"][-1].kind is LineKind.ERROR
    assert "not delivered (too_long): x" in changes.lines["#lobby"][-1].text
    assert changes.alerts


def test_members_follow_joins_leaves_quits_and_renames() -> None:
    """The member list tracks room state, joins, leaves, quits and nick changes."""
    model = joined_model("lobby")
    model.apply(RoomState(room="lobby", members=(Member(nick="alice"), Member(nick="bob"))))
    model.apply(Joined(room="lobby", nick="carol", ts=TS))
    assert set(model.buffers["#lobby"].members) == {"alice", "bob", "carol"}
    model.apply(Left(room="lobby", nick="carol", ts=TS))
    model.apply(NickChanged(old="bob", new="robert", ts=TS))
    assert [m.nick for m in model.buffers["#lobby"].members.values()] == ["alice", "robert"]
    model.apply(SignedOff(nick="robert", ts=TS))
    assert list(model.buffers["#lobby"].members) == ["alice"]


def test_my_own_nick_change_updates_mentions() -> None:
    """After my nick changes, the new nick is what counts as a mention."""
    model = joined_model("lobby", "dev")
    model.apply(NickChanged(old="alice", new="alicia", ts=TS))
    assert model.nick == "alicia"
    assert model.apply(said(1, "alicia?", room="dev")).mentions


def test_leaving_a_room_closes_its_buffer() -> None:
    """My own Left removes the buffer and shows another one."""
    model = joined_model("lobby", "dev")
    model.switch("#dev")
    model.apply(Left(room="dev", nick="alice", ts=TS))
    assert "#dev" not in model.buffers
    assert model.current == "#lobby"


def test_connection_status_follows_events() -> None:
    """Disconnected and Reconnecting set the status and the countdown."""
    model = joined_model("lobby")
    model.apply(Disconnected("server_shutdown", "server_shutdown", will_retry=True))
    assert model.status is ConnectionStatus.RECONNECTING
    model.apply(Reconnecting(delay=4.0, attempt=1, reason="down"))
    assert model.reconnect_at == 1004.0
    assert any("disconnected" in line.text for line in model.buffers[SERVER_KEY].lines)


def test_backfill_on_first_join_highlights_but_does_not_notify() -> None:
    """Old mentions in a fresh room's backfill are highlighted; only new ones raise notifications."""
    model = joined_model("lobby")
    changes = model.apply(History(room="lobby", messages=(said(1, "alice: old news"),)))
    assert changes.mentions == []
    assert model.buffers["#lobby"].lines[-1].mention
    later = model.apply(History(room="lobby", messages=(said(2, "alice: missed while away"),)))
    assert [line.text for _, line in later.mentions] == ["alice: missed while away"]


def test_direct_message_backfill_at_login_is_quiet() -> None:
    """The direct messages fetched at login open their conversations without unread counts or alerts."""
    model = joined_model("lobby")
    old = tuple(Told(id=n, nick="bob", to="alice", text=f"old {n}", ts=TS) for n in range(1, 4))
    changes = model.apply(History(direct=True, messages=old))
    assert changes.mentions == []
    assert model.buffers["@bob"].unread == 0
    assert [line.text for line in model.buffers["@bob"].lines] == ["old 1", "old 2", "old 3"]
