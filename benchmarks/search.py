"""Search latency over a large history: p50/p99 of typical queries, as the server runs them.

    python -m benchmarks.search                      # 1,000,000 messages, 200 runs of each query
    python -m benchmarks.search --messages 100000 --runs 50

It fills a history database in a temporary folder with the server's own schema (`executemany`, 10,000 rows a
transaction): 100 rooms and direct messages between 1,000 nicks, words drawn from a Zipf-like vocabulary so
that a few words are very common and most are rare. Then it builds the search index as the ``search-indexer``
thread does after an upgrade (`IndexWriter`, 2,000 messages a transaction, into its own file), and runs each
query through the same code a reader thread runs for a `search` (the query syntax read by
`chat_server.reader.search`: `find` with the default `search_scan` and page size, the ranking, the snippets
cut), for a searcher who is in 10 of the rooms, on a read connection of its own with the index
attached, and prints the latency of each query (p50, p99, max) in milliseconds. The figures are in
docs/performance.md ("Search"); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from chat_server.config import DEFAULT_SEARCH_PAGE, DEFAULT_SEARCH_SCAN
from chat_server.indexer.indexer import INDEX_BATCH
from chat_server.reader.search import Highlight, find, parse, snippet_parts
from chat_server.searchdb import IndexWriter, Scope, attach, index_path
from chat_server.storage import SCHEMA, connect

ROOMS = 100
NICKS = 1_000
#: The searcher is in this many rooms (the default `max_rooms_per_client` is 64).
SEARCHER_ROOMS = 10
VOCABULARY = 20_000
BATCH = 10_000

#: Syllables of the made-up vocabulary (pronounceable words, so prefixes behave as in a real language).
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def vocabulary_words(seed: int) -> list[str]:
    """`VOCABULARY` distinct made-up words of 2 to 4 syllables; the list's order is their frequency rank."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < VOCABULARY:
        found["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(found)


def queries(words: list[str]) -> list[tuple[str, str, dict[str, object]]]:
    """Typical queries (and two hard ones): the most common word (in about half the messages, like "the"), a
    word of middle rank (in about 0.8 %), a rare one, two words, a phrase of two common words, a prefix, an
    exclusion, a filter by sender, one room only, a word nobody wrote."""
    return [
        ("common word", words[0], {}),
        ("mid word", words[150], {}),
        ("rare word", words[9000], {}),
        ("two words", f"{words[12]} {words[345]}", {}),
        ("phrase", f'"{words[3]} {words[4]}"', {}),
        ("prefix", words[150][:3] + "*", {}),
        ("exclusion", f"{words[50]} -{words[1]}", {}),
        ("by sender", words[30], {"sender": "nick7"}),
        ("one room", words[200], {"room": True}),
        ("word nobody wrote", "zebra", {}),
    ]


def draw(rng: random.Random, words: list[str]) -> Iterator[str]:
    """Words of `words` drawn so that the one of rank k comes about 1/(k+1) as often as the first."""
    while True:
        yield words[int(VOCABULARY ** rng.random()) - 1]


def fill(path: Path, messages: int, seed: int) -> float:
    """Store `messages` messages (10 % direct) with the schema of a server before search (no index yet);
    return the seconds it took."""
    db = connect(path, synchronous="OFF")
    db.executescript(SCHEMA)
    rng = random.Random(seed)
    vocabulary = draw(rng, vocabulary_words(seed))
    started = time.perf_counter()
    ts = 1_763_750_000_000
    done = 0
    while done < messages:
        rows, directs = [], []
        for _ in range(min(BATCH, messages - done)):
            ts += 50
            text = " ".join(next(vocabulary) for _ in range(rng.randint(3, 20)))
            sender = rng.randrange(NICKS)
            if rng.random() < 0.1:
                peer = (sender + 1 + rng.randrange(NICKS - 1)) % NICKS  # never oneself
                directs.append((ts, f"nick{sender}", f"nick{peer}", text))
            else:
                room = rng.randrange(ROOMS)
                rows.append((ts, f"room{room}", f"room{room}", f"nick{sender}", f"nick{sender}", text))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO messages (ts, room_key, room, sender, sender_key, text) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        for when, source, target, body in directs:
            cursor = db.execute(
                "INSERT INTO messages (ts, sender, sender_key, recipient, recipient_key, text)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (when, source, source, target, target, body),
            )
            db.execute("INSERT INTO direct_index VALUES (?, ?, ?)", (source, target, cursor.lastrowid))
            db.execute("INSERT INTO direct_index VALUES (?, ?, ?)", (target, source, cursor.lastrowid))
        db.execute("COMMIT")
        done += len(rows) + len(directs)
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def build(path: Path) -> None:
    """Index the whole history as the ``search-indexer`` does after an upgrade: `INDEX_BATCH` at a time."""
    writer = IndexWriter(index_path(path), path)
    try:
        while writer.add(INDEX_BATCH):
            pass
    finally:
        writer.close()


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure(path: Path, runs: int, seed: int) -> list[tuple[str, str, float, float, float, int]]:
    """Run each query `runs` times; (name, query, p50 ms, p99 ms, max ms, hits on the first page) each."""
    db = connect(path)
    attach(db, index_path(path))
    rooms = tuple(f"room{n}" for n in range(SEARCHER_ROOMS))
    results = []
    for name, query, options in queries(vocabulary_words(seed)):
        scope = Scope(
            room_keys=(rooms[3],) if options.get("room") else rooms,
            direct_owner=None if options.get("room") else "nick1",
            sender_key=str(options["sender"]) if "sender" in options else None,
        )
        terms = parse(query)
        highlight = Highlight.of(terms)
        times: list[float] = []
        hits = 0
        for _ in range(runs):
            started = time.perf_counter()
            found, _more = find(
                db, terms, scope, offset=0, limit=DEFAULT_SEARCH_PAGE, scan=DEFAULT_SEARCH_SCAN
            )
            for row in found:
                snippet_parts(row.text, highlight)
            times.append((time.perf_counter() - started) * 1000)
            hits = len(found)
        results.append((name, query, statistics.median(times), percentile(times, 0.99), max(times), hits))
    db.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Fill, measure, print."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200, help="runs of each query")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument(
        "--keep", type=Path, help="a database file to fill once and reuse (for repeated runs)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mpchat-search-") as folder:
        path = Path(folder) / "history.sqlite3" if args.keep is None else args.keep
        if not path.exists():
            seconds = fill(path, args.messages, args.seed)
            before = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
            print(f"{args.messages:,} messages stored in {seconds:.1f} s ({before:.0f} MiB), no index yet")
        if not index_path(path).exists():
            started = time.perf_counter()
            build(path)
            index = sum(p.stat().st_size for p in path.parent.glob(index_path(path).name + "*")) / 2**20
            took = time.perf_counter() - started
            print(f"the index built as after an upgrade: {took:.1f} s ({index:.0f} MiB, a file of its own)")
        results = measure(path, args.runs, args.seed)
    print(f"\n{'query':<20} {'as typed':<24} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'hits':>5}")
    for name, query, p50, p99, worst, hits in results:
        print(f"{name:<20} {query:<24} {p50:8.2f} {p99:8.2f} {worst:8.2f} {hits:5}")
    worst_p99 = max(p99 for _name, _query, _p50, p99, _worst, _hits in results)
    print(f"\nworst p99: {worst_p99:.2f} ms over {len(results)} queries, {args.runs} runs each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
