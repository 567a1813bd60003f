"""The project's load generator: many chat clients in several processes, an open-loop sender schedule.

    python -m benchmarks.loadgen --port 7878 -n 100 -r 1 -s 10 --rate 1000 -d 5 [--server-pid PID] [--json]

N clients log in to R rooms (client i in room i % R); S of them send `rate` messages/s in total, evenly paced
by the clock (open loop: a slow server does not slow the schedule down, its latency grows instead) for D
seconds, and every client reads everything. Each message's text carries its send time and number, so each
receiver measures the latency and checks that it got every message meant for it exactly once.

The clients are split over `workers` processes (each one selectors loop), so the load is not limited by one
Python process; the coordinator merges their results. Modules: `spec` (the workload and its arithmetic),
`worker` (one process's clients), `coordinator` (phases and merging), `histogram`, `procstat` (server CPU and
memory from /proc), `report` (the table).
"""

from .coordinator import LoadError, run_load
from .report import table
from .spec import LoadSpec

__all__ = ["LoadError", "LoadSpec", "run_load", "table"]
