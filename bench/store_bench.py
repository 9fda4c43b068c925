"""Subscriber store throughput: durable unsubscribes from 16 threads, and a 20,000-row import.

References measured in the same run, on the same disk:
- unsubscribes: a bare sqlite3 ``INSERT`` + ``COMMIT`` per call in WAL mode with
  ``synchronous=FULL`` from 16 threads (the floor for one durable write each);
- import: a bare ``executemany`` of the same rows in one transaction.

Run: ``.venv/bin/python bench/store_bench.py``
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from newsletter.audience.store import SubscriberStore  # noqa: E402
from newsletter.audience.subscribers import Subscriber  # noqa: E402

THREADS = 16
PER_THREAD = 125  # 2,000 unsubscribes
IMPORT_ROWS = 20_000


def timed_threads(work) -> tuple[float, list[float]]:
    """Run ``work(thread_index, latencies)`` on THREADS threads; wall seconds and every call's latency."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        mine: list[float] = []
        work(t, mine)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies


def bare_commits(folder: Path) -> tuple[float, list[float]]:
    path = folder / "bare.sqlite"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (key TEXT PRIMARY KEY, status TEXT)")
    setup.close()

    def work(t: int, lat: list[float]) -> None:
        conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        for i in range(PER_THREAD):
            s = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, 'unsubscribed')", (f"r{t}-{i}@example.org",))
            conn.execute("COMMIT")
            lat.append(time.perf_counter() - s)
        conn.close()

    return timed_threads(work)


def store_unsubscribes(folder: Path) -> tuple[float, list[float]]:
    with SubscriberStore.open(folder) as store:
        store.subscribe_many((Subscriber(f"r{t}-{i}@example.org", None, {}, 0) for t in range(THREADS) for i in range(PER_THREAD)),
                             how="import", status="confirmed")

        def work(t: int, lat: list[float]) -> None:
            for i in range(PER_THREAD):
                s = time.perf_counter()
                store.unsubscribe(f"r{t}-{i}@example.org", via="one-click")
                lat.append(time.perf_counter() - s)

        result = timed_threads(work)
        assert store.counts()["unsubscribed"] == THREADS * PER_THREAD
        return result


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "a").mkdir()
        (base / "b").mkdir()
        bare_s, bare_lat = bare_commits(base / "a")
        store_s, store_lat = store_unsubscribes(base / "b")
        n = THREADS * PER_THREAD
        print(f"unsubscribes, {n} from {THREADS} threads, each committed with fsync:")
        print(f"  store.unsubscribe     {n / store_s:8.0f}/s  p99 {p99(store_lat) * 1000:6.1f} ms  median {statistics.median(store_lat) * 1000:6.1f} ms  max {max(store_lat) * 1000:6.1f} ms")
        print(f"  bare INSERT + COMMIT  {n / bare_s:8.0f}/s  p99 {p99(bare_lat) * 1000:6.1f} ms")
        print(f"  ratio store/bare      {(n / store_s) / (n / bare_s):8.2f}x")

        rows = [Subscriber(f"import{i:06d}@example.org", f"Reader {i}", {"city": "Oslo"}, i) for i in range(IMPORT_ROWS)]
        (base / "c").mkdir()
        start = time.perf_counter()
        with SubscriberStore.open(base / "c") as store:
            counts = store.subscribe_many(rows, how="import", source="imported from bench.csv")
        import_s = time.perf_counter() - start
        assert counts["added"] == IMPORT_ROWS
        conn = sqlite3.connect(base / "c" / "bare.sqlite")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (key TEXT PRIMARY KEY, email TEXT, name TEXT, fields TEXT)")
        start = time.perf_counter()
        with conn:
            conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", ((s.email, s.email, s.name, '{"city": "Oslo"}') for s in rows))
        bare_import_s = time.perf_counter() - start
        conn.close()
        print(f"import of {IMPORT_ROWS} rows (validation, consent and an event each):")
        print(f"  subscribe_many        {import_s:8.2f} s  ({IMPORT_ROWS / import_s:.0f} rows/s)")
        print(f"  bare executemany      {bare_import_s:8.2f} s")
        print(f"  ratio                 {import_s / bare_import_s:8.1f}x")


if __name__ == "__main__":
    main()
