"""`--serve`: play the server side of the cases one client can play, so a client's author can test a client.

For each case, in order, the suite accepts one connection and plays the case backwards: a frame the case
sends becomes a frame the client must send (matched loosely: names and texts the client chose are
captured, the case's literal values must be there), and a frame the case expects becomes a frame the suite
sends, built from the pattern (a captured name is sent back as the client chose it; the `ref` of the
client's last request is echoed where the case expects a `ref`). The client's own `ping`s are answered
with `pong` at any point. Each case prints a line saying what the client should do, then PASS or FAIL.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any

from .peer import Peer
from .runner import Result, expand
from .transcript import _TEMPLATE, Case, Mismatch, Variables, example, match

#: Steps a served case may hold: a real client sends whole frames only, and there is one client.
_SERVABLE_STEPS = frozenset(
    {"open", "send", "expect", "expect_next", "expect_silence", "expect_closed", "close"}
)

#: Fields the client chooses freely in its requests: captured, never required to equal the case's values.
_CLIENT_CHOSEN = frozenset({"ref", "client", "client_msg_id", "token"})


def servable(case: Case) -> bool:
    """Whether one client can play the client side of `case` against `--serve`."""
    if not case.servable or len(case.peers) != 1:
        return False
    for step in expand(case.steps):
        kind = next(iter(_SERVABLE_STEPS & step.keys()), None)
        if kind is None or step.get("how", "whole") != "whole" or "frames" in step:
            return False
    return True


def request_pattern(frame: Any, variables: Variables) -> Any:
    """The pattern a client's frame must match for the case's frame `frame`."""
    if isinstance(frame, dict):
        pattern: dict[str, Any] = {}
        for key, value in frame.items():
            if key in _CLIENT_CHOSEN:
                continue
            pattern[key] = request_pattern(value, variables)
        return pattern
    if isinstance(frame, list):
        return [request_pattern(item, variables) for item in frame]
    if isinstance(frame, str):
        whole = _TEMPLATE.fullmatch(frame)
        if whole:
            name = whole.group(1)
            return f"={name}" if name in variables.values else f"?{name}"
        if _TEMPLATE.search(frame):
            return "$str"
    return frame


#: Fields a served notification needs that its pattern may leave out (section 7's required fields).
def _defaults(now: int) -> dict[str, dict[str, Any]]:
    stamped = {"ts": now}
    return {
        "welcome": {"version": 1, "server": "mpchat conformance", "ts": now},
        "joined": stamped,
        "left": stamped,
        "said": stamped,
        "told": stamped,
        "ack": stamped,
        "signed_off": stamped,
        "nick_changed": stamped,
        "topic_changed": stamped,
        "away_changed": stamped,
        "history": {"messages": []},
        "room_state": {"members": []},
        "room_list": {"rooms": []},
        "error": {"message": ""},
    }


def notification(pattern: Any, variables: Variables, counter: Iterator[int], last_ref: int | None) -> Any:
    """A concrete frame for the pattern the case expects, with the required fields filled in."""
    built = example(pattern, variables, counter)
    return _complete(built, _defaults(int(time.time() * 1000)), last_ref, top=True)


def _complete(
    value: Any, defaults: dict[str, dict[str, Any]], last_ref: int | None, top: bool = False
) -> Any:
    if isinstance(value, list):
        return [_complete(item, defaults, None) for item in value]
    if not isinstance(value, dict):
        return value
    filled = {key: _complete(item, defaults, None) for key, item in value.items()}
    for key, default in defaults.get(str(filled.get("type")), {}).items():
        filled.setdefault(key, default)
    if top and "ref" in filled:
        if last_ref is None:
            del filled["ref"]
        else:
            filled["ref"] = last_ref
    return filled


class ServedCase:
    """One case played as the server, on one accepted connection."""

    def __init__(self, case: Case, listener: socket.socket, timeout: float) -> None:
        self.case = case
        self.listener = listener
        self.timeout = timeout
        self.variables = Variables()
        self.counter = itertools.count(1000)
        self.last_ref: int | None = None
        self.last_token: int = 0
        self.peer: Peer | None = None

    def run(self) -> Result:
        """Play the steps; the first one that fails ends the case. After the last one, the client is given
        `timeout` seconds to hang up by itself (its pings answered), so it never sees its server vanish
        in the middle of what it was doing."""
        started = time.monotonic()
        try:
            for step in expand(self.case.steps):
                try:
                    self._step(step)
                except Mismatch as error:
                    return Result(self.case, False, f"{error} [{step['_where']}]", time.monotonic() - started)
            passed = Result(self.case, True, "", time.monotonic() - started)
            if self.peer is not None and not self.peer.closed:
                with contextlib.suppress(Mismatch):
                    self._receive({"type": "(the client hangs up)"})  # answers pings meanwhile
            return passed
        finally:
            if self.peer is not None:
                self.peer.close()

    def _client(self) -> Peer:
        if self.peer is None:
            raise Mismatch("no client connected")
        return self.peer

    def _step(self, step: dict[str, Any]) -> None:
        if "open" in step:
            self.listener.settimeout(None)
            sock, _ = self.listener.accept()
            self.peer = Peer(sock, "client")
        elif "send" in step:
            self._receive(request_pattern(step["frame"], self.variables))
        elif "expect" in step or "expect_next" in step:
            frame = notification(step["frame"], self.variables, self.counter, self.last_ref)
            if frame.get("type") == "pong":
                frame["token"] = self.last_token  # a pong carries the token of the ping it answers
            self._client().send_frames([frame])
        elif "expect_closed" in step:
            self._client().close()
        elif "close" in step:
            self._client().expect_closed(self.timeout)

    def _receive(self, pattern: Any) -> None:
        """Wait for the client's frame that matches `pattern`, answering its pings meanwhile."""
        client = self._client()
        deadline = time.monotonic() + self.timeout
        while True:
            frame = client.expect({}, self.variables, max(0.0, deadline - time.monotonic()))
            if frame.get("type") == "ping" and pattern.get("type") != "ping":
                pong = {"type": "pong", "token": frame.get("token"), "ref": frame.get("ref")}
                client.send_frames([{key: value for key, value in pong.items() if value is not None}])
                continue
            try:
                match(pattern, frame, self.variables)
            except Mismatch as error:
                if time.monotonic() >= deadline:
                    raise
                if frame.get("type") == pattern.get("type"):
                    raise Mismatch(f"client: {error}") from error
                continue
            if isinstance(frame.get("ref"), int):
                self.last_ref = frame["ref"]
            if frame.get("type") == "ping" and isinstance(frame.get("token"), int):
                self.last_token = frame["token"]
            return


def serve(cases: list[Case], host: str, port: int, timeout: float, *, once: bool = False) -> int:
    """Listen on `host`:`port` and play each servable case for one connection; 0 if every one passed."""
    playable = [case for case in cases if servable(case)]
    if not playable:
        print("conformance: none of these cases can be served (they need raw bytes or two clients)")
        return 2
    with socket.create_server((host, port)) as listener:
        bound = listener.getsockname()
        print(f"conformance server on {bound[0]}:{bound[1]}: {len(playable)} case(s)", flush=True)
        failed = 0
        for case in playable[:1] if once else playable:
            print(f"next: {case.name} (§{case.spec}): {case.doc}", flush=True)
            result = ServedCase(case, listener, timeout).run()
            print(result.line(), flush=True)
            failed += not result.passed
    print(f"{len(playable[:1] if once else playable) - failed} passed, {failed} failed")
    return 1 if failed else 0
