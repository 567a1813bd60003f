"""Read another process's CPU time and resident memory from /proc (Linux), for the server-side figures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Clock ticks per second: /proc/PID/stat counts CPU time in these (10 ms on most Linux systems).
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a process: CPU seconds (user + system, all threads) and resident set size in KiB."""

    cpu_s: float
    rss_kb: int
    #: Context switches of all its live threads (voluntary + involuntary): mostly thread wake-ups.
    switches: int


def sample(pid: int) -> Sample:
    """Read `pid`'s CPU time and VmRSS now. Raises OSError if the process is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of the whole line, i.e. 12 and 13 after the name.
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
            break
    return Sample(cpu_s=cpu, rss_kb=rss, switches=context_switches(pid))


def context_switches(pid: int) -> int:
    """The context switches of `pid`'s threads that are alive now (threads that ended are not counted)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{task}/status").read_text()
        except OSError:
            continue  # the thread ended while we looked
        for line in text.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def threads(pid: int) -> int:
    """How many threads `pid` has."""
    return len(os.listdir(f"/proc/{pid}/task"))
