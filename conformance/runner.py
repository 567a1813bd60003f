"""Play the client side of each case against a server, and report PASS or FAIL per case."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .peer import DEFAULT_TIMEOUT, Peer
from .transcript import Case, Mismatch, TranscriptError, Variables
from .wire import encode_body

#: How long `expect_silence` listens when a step does not say.
DEFAULT_SILENCE_MS = 300


@dataclass(frozen=True)
class Result:
    """The outcome of one case."""

    case: Case
    passed: bool
    detail: str
    seconds: float

    def line(self) -> str:
        """One report line: ``PASS name (§spec)`` or ``FAIL name (§spec): why``."""
        mark = "PASS" if self.passed else "FAIL"
        text = f"{mark}  {self.case.name}  (§{self.case.spec})"
        return text if self.passed else f"{text}: {self.detail}"


def login_steps(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps the ``login`` shorthand stands for: open, hello, and the `welcome` that answers it."""
    peer = step["login"]
    hello: dict[str, Any] = {"type": "hello", "proto": "mpchat", "version": 1, "nick": "${" + peer + "}"}
    hello.update(step.get("hello", {}))
    where = step.get("_where", "")
    opening: dict[str, Any] = {"open": peer, "_where": where}
    if "rcvbuf" in step:
        opening["rcvbuf"] = step["rcvbuf"]
    return [
        opening,
        {"send": peer, "frame": hello, "_where": where},
        {"expect_next": peer, "frame": {"type": "welcome", "nick": "=" + peer}, "_where": where},
    ]


def expand(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps with every shorthand written out."""
    out: list[dict[str, Any]] = []
    for step in steps:
        out.extend(login_steps(step) if "login" in step else [step])
    return out


class CaseRun:
    """One case played against `host`:`port`."""

    def __init__(self, case: Case, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.case = case
        self.host = host
        self.port = port
        self.timeout = timeout
        self.variables = Variables.fresh(case)
        self.peers: dict[str, Peer] = {}

    def run(self) -> Result:
        """Play every step; the first one that fails ends the case."""
        started = time.monotonic()
        try:
            for step in expand(self.case.steps):
                try:
                    self._step(step)
                except Mismatch as error:
                    return Result(self.case, False, f"{error} [{step['_where']}]", time.monotonic() - started)
        finally:
            for peer in self.peers.values():
                peer.close()
        return Result(self.case, True, "", time.monotonic() - started)

    def _peer(self, name: str) -> Peer:
        if name not in self.peers:
            raise TranscriptError(f"{self.case.name}: peer {name!r} is used before `open`")
        return self.peers[name]

    def _step(self, step: dict[str, Any]) -> None:
        timeout = float(step.get("timeout", self.timeout))
        if "open" in step:
            try:
                self.peers[step["open"]] = Peer.connect(
                    self.host, self.port, step["open"], timeout, step.get("rcvbuf")
                )
            except OSError as error:
                raise Mismatch(f"could not connect to {self.host}:{self.port}: {error}") from error
        elif "send" in step:
            frames = step["frames"] if "frames" in step else [step["frame"]]
            self._peer(step["send"]).send_frames(self.variables.substitute(frames), step.get("how", "whole"))
        elif "send_hex" in step:
            body = bytes.fromhex(step["hex"])
            data = encode_body(body) if step.get("framed", False) else body
            self._peer(step["send_hex"]).send_bytes([data], step.get("how", "whole"))
        elif "expect" in step:
            self._peer(step["expect"]).expect(step["frame"], self.variables, timeout)
        elif "expect_next" in step:
            self._peer(step["expect_next"]).expect(step["frame"], self.variables, timeout, first=True)
        elif "expect_silence" in step:
            seconds = step.get("ms", DEFAULT_SILENCE_MS) / 1000
            self._peer(step["expect_silence"]).expect_silence(step["frame"], self.variables, seconds)
        elif "expect_closed" in step:
            self._peer(step["expect_closed"]).expect_closed(timeout)
        elif "close" in step:
            self._peer(step["close"]).close()


def run_cases(
    cases: list[Case],
    host: str,
    port: int,
    timeout: float = DEFAULT_TIMEOUT,
    report: Callable[[str], object] | None = None,
) -> list[Result]:
    """Every case in order, each on its own connections; `report` gets each result's line as it comes."""
    results = []
    for case in cases:
        result = CaseRun(case, host, port, timeout).run()
        if report is not None:
            report(result.line())
        results.append(result)
    return results
