"""The coordinator: start the worker processes, step them through login and messages, merge their results.

The coordinator owns no client connection. It samples the server's CPU time and memory between the phases
(before any connection, after every client logged in, after the last delivery), picks the common start time
t0 a little in the future so every worker starts its share of the schedule together, and waits for each
phase with a deadline. Workers that do not answer in time are terminated, and the run reports what arrived.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from . import histogram, procstat
from .spec import LoadSpec
from .worker import worker_main

#: Head start between "go" and t0, so every worker is waiting when the schedule begins.
START_DELAY_S = 0.2
#: Extra time, on top of each phase's own timeouts, before a silent worker is given up on.
GRACE_S = 10.0


class LoadError(RuntimeError):
    """The run could not be carried out (a worker died or never answered)."""


def raise_fd_limit(wanted: int) -> None:
    """Raise this process's open-file soft limit towards `wanted` (each client is one descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_load(
    spec: LoadSpec, server_pid: int | None = None, on_ready: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run `spec` against the server at `spec.host:spec.port`; return the merged result (JSON-able).

    `on_ready` is called once every client is logged in, just before the messages start (a profiler
    attaches there, so that it samples the message phase only).
    """
    raise_fd_limit(spec.clients // spec.workers + 256)
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    loadavg = os.getloadavg()
    before = procstat.sample(server_pid) if server_pid else None
    for index in range(spec.workers):
        ours, theirs = context.Pipe()
        process = context.Process(target=worker_main, args=(spec, index, theirs), daemon=True)
        process.start()
        theirs.close()
        pipes.append(ours)
        processes.append(process)
    try:
        for pipe in pipes:
            pipe.send(("login",))
        ready = _collect(pipes, "ready", spec.login_timeout + GRACE_S)
        if on_ready is not None:
            on_ready()
        at_ready = procstat.sample(server_pid) if server_pid else None
        ready_at = time.monotonic()
        t0_ns = time.monotonic_ns() + int(START_DELAY_S * 1e9)
        for pipe in pipes:
            pipe.send(("go", t0_ns))
        done = _collect(pipes, "done", START_DELAY_S + spec.duration + spec.drain_timeout + GRACE_S)
        at_end = procstat.sample(server_pid) if server_pid else None
        message_wall_s = time.monotonic() - ready_at
        server_threads = procstat.threads(server_pid) if server_pid else None
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process in processes:
            process.join(GRACE_S)
            if process.is_alive():
                process.terminate()
                process.join(GRACE_S)
    result = _merge(spec, t0_ns, ready, done, loadavg)
    if before and at_ready and at_end:
        result["server"] = _server_figures(result, before, at_ready, at_end, message_wall_s, server_threads)
    return result


def _collect(pipes: list[Connection], kind: str, timeout: float) -> list[dict[str, Any]]:
    """Wait for message `kind` from every worker, in worker order, at most `timeout` seconds."""
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < len(pipes):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LoadError(
                f"{len(pipes) - len(answers)} worker(s) did not report {kind!r} in {timeout:.0f} s"
            )
        for pipe in wait([p for i, p in enumerate(pipes) if i not in answers], remaining):
            assert isinstance(pipe, Connection)
            try:
                message = pipe.recv()
            except EOFError:
                raise LoadError(f"a worker exited before reporting {kind!r}") from None
            if message[0] != kind:
                raise LoadError(f"a worker sent {message[0]!r} while {kind!r} was expected")
            answers[pipes.index(pipe)] = message[1]
    return [answers[index] for index in range(len(pipes))]


def _merge(
    spec: LoadSpec,
    t0_ns: int,
    ready: list[dict[str, Any]],
    done: list[dict[str, Any]],
    loadavg: tuple[float, float, float],
) -> dict[str, Any]:
    """Add the workers' counts together and compute the run's figures."""
    errors: dict[str, int] = {}
    for report in done:  # each worker's error counts are cumulative: its "done" report includes the login's
        for key, value in report["errors"].items():
            errors[key] = errors.get(key, 0) + value
    login_ms = sorted(ms for report in ready for ms in report["login_ms"])
    hist = histogram.merge(report["histogram"] for report in done)
    points = histogram.percentiles(hist, (50, 90, 99))
    delivered = sum(report["delivered"] for report in done)
    expected = spec.expected_deliveries()
    last_ns = max(report["last_delivery_ns"] for report in done)
    elapsed = (last_ns - t0_ns) / 1e9 if last_ns > t0_ns else 0.0
    loadgen_cpu = sum(report["cpu_s"] for report in done)
    return {
        "label": spec.label,
        "clients": spec.clients,
        "rooms": spec.rooms,
        "senders": spec.senders,
        "stalled": spec.stalled,
        "workers": spec.workers,
        "rate_offered": spec.rate,
        "duration_s": spec.duration,
        "text_bytes": spec.text_bytes,
        "sent": sum(report["sent"] for report in done),
        "acked": sum(report["acks"] for report in done),
        "delivered": delivered,
        "expected_deliveries": expected,
        "delivery_ratio": round(delivered / expected, 6) if expected else 1.0,
        "duplicates": sum(report["duplicates"] for report in done),
        "misrouted": sum(report["misrouted"] for report in done),
        "deliveries_per_s": round(delivered / elapsed) if elapsed else 0,
        "p50_ms": points[50],
        "p90_ms": points[90],
        "p99_ms": points[99],
        "max_ms": round(max(report["max_latency_ns"] for report in done) / 1e6, 3),
        "send_lag_max_ms": round(max(report["send_lag_max_ns"] for report in done) / 1e6, 3),
        "logged_in": len(login_ms),
        "login_s": round(
            (max(r["ready_ns"] for r in ready) - min(r["first_connect_ns"] for r in ready)) / 1e9, 3
        ),
        "login_ms_p50": login_ms[len(login_ms) // 2] if login_ms else None,
        "login_ms_max": login_ms[-1] if login_ms else None,
        "loadgen_cpu_s": round(loadgen_cpu, 3),
        "loadgen_cpu_us_per_delivery": round(loadgen_cpu / delivered * 1e6, 3) if delivered else None,
        "errors": errors,
        "loadavg_start": [round(x, 2) for x in loadavg],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


def _server_figures(
    result: dict[str, Any],
    before: procstat.Sample,
    at_ready: procstat.Sample,
    at_end: procstat.Sample,
    message_wall_s: float,
    server_threads: int | None,
) -> dict[str, Any]:
    """Server CPU per delivery (message phase only) and resident memory per logged-in connection."""
    cpu_msg = at_end.cpu_s - at_ready.cpu_s
    delivered = result["delivered"]
    return {
        "cpu_login_s": round(at_ready.cpu_s - before.cpu_s, 3),
        "cpu_msg_s": round(cpu_msg, 3),
        "cpu_us_per_delivery": round(cpu_msg / delivered * 1e6, 3) if delivered else None,
        # Share of one core the server used during the message phase (drain included).
        "cpu_msg_pct": round(100 * cpu_msg / message_wall_s, 1),
        # Thread wake-ups per delivered message: what a thread-per-connection writer costs at low rates.
        "switches_per_delivery": round((at_end.switches - at_ready.switches) / delivered, 3)
        if delivered
        else None,
        "rss_kb_start": before.rss_kb,
        "rss_kb_ready": at_ready.rss_kb,
        "rss_kb_end": at_end.rss_kb,
        "rss_kb_per_connection": round((at_ready.rss_kb - before.rss_kb) / max(1, result["logged_in"]), 2),
        "threads": server_threads,
    }
