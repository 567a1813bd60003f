"""The UI-free chat model: buffers, unread counts, mentions, members, outbox lines and bounds."""

from __future__ import annotations

from chat_client.model.chat import SERVER_KEY, ChatModel, ConnectionStatus, LineKind
from chat_client.net.events import Connected, Disconnected, OutboxChanged, Reconnecting
from chat_client.net.outbox import DeliveryState, OutboxEntry
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
    assert model.buffers["#lobby"].lines[0].mention
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


def test_backfill_on_join_comes_before_the_joined_line_with_a_divider() -> None:
    """The history sent on joining runs in time order before "you joined", then a divider, then live lines."""
    model = joined_model("lobby")
    model.apply(History(room="lobby", messages=(said(1, "first"), said(2, "second"))))
    model.apply(said(3, "live"))
    lines = list(model.buffers["#lobby"].lines)
    assert [line.text for line in lines] == [
        "first",
        "second",
        "history above · live below",
        "you joined lobby",
        "live",
    ]
    assert lines[2].kind is LineKind.DIVIDER
    # A later page (after a reconnect) is appended as before, with no second divider.
    model.apply(History(room="lobby", messages=(said(4, "missed"),)))
    assert [line.text for line in model.buffers["#lobby"].lines][-1] == "missed"
    assert sum(line.kind is LineKind.DIVIDER for line in model.buffers["#lobby"].lines) == 1


def test_coming_back_to_a_room_marks_where_the_reader_left_off() -> None:
    """The first line that arrived while another room was shown becomes the buffer's marker on return."""
    model = joined_model("lobby", "dev")
    model.switch("#lobby")
    model.apply(said(1, "seen", room="dev"))
    model.switch("#dev")
    marker = model.buffers["#dev"].marker
    assert marker is not None
    assert marker.text == "seen"
    model.switch("#lobby")
    model.apply(said(2, "unseen one", room="dev"))
    model.apply(said(3, "unseen two", room="dev"))
    model.switch("#dev")
    marker = model.buffers["#dev"].marker
    assert marker is not None
    assert marker.text == "unseen one"
    model.switch("#lobby")
    model.switch("#dev")  # nothing new: no marker
    assert model.buffers["#dev"].marker is None


def test_members_of_a_room_get_distinct_colours() -> None:
    """No two members of a room share a colour while the palette has free ones; a nick keeps its colour."""
    from chat_client.model.colours import PALETTE_SIZE, preferred_slot

    # Nicks whose preferred colours collide, found by their hash.
    by_slot: dict[int, list[str]] = {}
    for n in range(400):
        by_slot.setdefault(preferred_slot(f"user{n}"), []).append(f"user{n}")
    crowd = next(nicks for nicks in by_slot.values() if len(nicks) >= 3)[:3]
    others = [f"other{n}" for n in range(PALETTE_SIZE - 3)]
    model = joined_model("lobby")
    buffer = model.buffers["#lobby"]
    model.apply(RoomState(room="lobby", members=tuple(Member(nick=n) for n in ["alice", *crowd])))
    for nick in others[:-1]:
        model.apply(Joined(room="lobby", nick=nick, ts=TS))
    members = ["alice", *crowd, *others[:-1]]
    assert len(members) == PALETTE_SIZE
    slots = [buffer.colours.slot(nick) for nick in members]
    assert len(set(slots)) == PALETTE_SIZE
    before = {nick: buffer.colours.slot(nick) for nick in members}
    model.apply(Left(room="lobby", nick=crowd[0], ts=TS))
    model.apply(Joined(room="lobby", nick="latecomer", ts=TS))
    assert buffer.colours.slot("latecomer") == before[crowd[0]]  # the only free colour
    assert all(buffer.colours.slot(nick) == before[nick] for nick in members if nick != crowd[0])
    # Outside a room (and for the same nick in another model) the colour is the hash: deterministic.
    assert joined_model().buffers[SERVER_KEY].colours.slot("zoe") == preferred_slot("zoe")


def test_a_client_stopped_by_a_bug_says_so_without_python_text() -> None:
    """A `Closed` caused by an unexpected exception shows a sentence, never the exception's own text."""
    from chat_client.net.errors import ConnectionLost
    from chat_client.net.events import Closed

    model = joined_model("lobby")
    model.apply(Closed(KeyError("internal detail")))
    assert model.status is ConnectionStatus.OFFLINE
    assert model.status_reason == "an unexpected error"
    assert "internal detail" not in " ".join(line.text for line in model.buffers[SERVER_KEY].lines)
    model.apply(Closed(ConnectionLost("cannot connect: the network is unreachable")))
    assert model.status_reason == "cannot connect: the network is unreachable"
