"""How fast does ``newsletter serve`` answer RFC 8058 one-click unsubscribes?  Run: .venv/bin/python bench/unsubscribe_bench.py

A real ``newsletter serve`` process on a free 127.0.0.1 port, a store of N
confirmed subscribers (``bench/.work/unsubscribe/``), and N one-click POSTs
(``List-Unsubscribe=One-Click``, urlencoded, no cookies, each with that
reader's sealed token) from C client threads at once, each request on a new
connection as mail providers send them. Per request: waitress, the token
unsealed (ChaCha20-Poly1305), the store's durable commit (WAL,
``synchronous=FULL``) and the fixed answer page. Reports requests per second
and latency percentiles; afterwards checks that every address is
unsubscribed (no write lost).

The reference, measured in the same run with the same client: a bare WSGI app
that answers 200 with the same page on the same waitress settings, so the
ratio shows what the endpoint itself costs on top of HTTP and the client.
Targets (issue 11): >= 500 req/s and p99 < 50 ms. Prints figures only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "unsubscribe"
SECRET = "bench secret 0123456789abcdef"
BODY = b"List-Unsubscribe=One-Click"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}

# The reference server: the same waitress settings as `newsletter serve`, an app that does nothing.
REFERENCE = """
import sys, waitress
from newsletter.audience.server import THREADS
page = b"<!doctype html><title>You are unsubscribed</title>" + b"x" * 1400
def app(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))])
    return [page]
print("serving", flush=True)
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=THREADS, _quiet=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_folder(n: int) -> tuple[Path, list[str]]:
    """A newsletter folder with n confirmed subscribers; returns it and their addresses."""
    from newsletter.audience.store import SubscriberStore
    from newsletter.audience.subscribers import Subscriber

    folder = WORK / "letter"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", folder / "newsletter.yaml")
    addresses = [f"reader{i:05d}@example.org" for i in range(n)]
    with SubscriberStore.open(folder) as store:
        store.subscribe_many((Subscriber(a) for a in addresses), how="import", status="confirmed", source="bench")
    return folder, addresses


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """Start a server; its standard error goes to ``log`` (a pipe nobody reads would fill up and stall it)."""
    with open(log, "w") as err:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("serving"):
        proc.wait(timeout=30)
        raise SystemExit(f"server did not start: {line}{log.read_text()}")
    return proc


def stop(proc: subprocess.Popen[str], log: Path) -> str:
    """Stop a server; its standard error."""
    proc.terminate()
    proc.communicate(timeout=30)
    return log.read_text()


def load(port: int, paths: list[str], concurrency: int) -> tuple[float, list[float], list[int]]:
    """POST every path once from ``concurrency`` threads; wall seconds, latencies, statuses."""
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    queue = list(reversed(paths))
    start_line = threading.Barrier(concurrency + 1)

    def worker() -> None:
        mine_l, mine_s = [], []
        start_line.wait()
        while True:
            with lock:
                if not queue:
                    break
                path = queue.pop()
            began = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", path, body=BODY, headers=HEADERS)
            response = conn.getresponse()
            response.read()
            conn.close()
            mine_l.append(time.perf_counter() - began)
            mine_s.append(response.status)
        with lock:
            latencies.extend(mine_l)
            statuses.extend(mine_s)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies, statuses


def describe(name: str, wall: float, latencies: list[float], statuses: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    figures = {
        "rps": len(latencies) / wall,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
        "max": ordered[-1] * 1000,
    }
    bad = sum(1 for s in statuses if s != 200)
    print(f"{name:<34} {len(latencies):>6} req  {wall:6.2f} s  {figures['rps']:7.0f} req/s  "
          f"p50 {figures['p50']:5.1f} ms  p99 {figures['p99']:5.1f} ms  max {figures['max']:6.1f} ms  non-200: {bad}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of reference and ours; the best of each is compared")
    options = parser.parse_args()
    from newsletter.mail.tokens import seal

    folder, addresses = make_folder(options.requests * options.rounds)
    secret = SECRET.encode()
    paths = [f"/unsubscribe?t={seal(secret, 'unsubscribe', a, now=0)}" for a in addresses]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_SECRET"] = SECRET
    print(f"{options.requests} one-click POSTs a round, {options.concurrency} at once, a new connection each; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    ref_port = free_port()
    reference = start([sys.executable, "-c", REFERENCE, str(ref_port)], env, WORK / "reference.log")
    port = free_port()
    text = (folder / "newsletter.yaml").read_text(encoding="utf-8").replace("  url: https://notes.example.org/unsubscribe\n", "")
    (folder / "newsletter.yaml").write_text(text + f"web:\n  base_url: http://127.0.0.1:{port}/\n", encoding="utf-8")
    server = start([sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--folder", str(folder)], env, WORK / "serve.log")
    refs, ours, agains = [], [], []
    try:
        load(ref_port, paths[:200], options.concurrency)  # warm-up: both servers' first requests
        load(port, [f"/unsubscribe?t={seal(secret, 'unsubscribe', f'warm{i}@example.org', now=0)}" for i in range(200)], options.concurrency)
        for round_ in range(options.rounds):
            mine = paths[round_ * options.requests:(round_ + 1) * options.requests]
            refs.append(describe(f"round {round_ + 1}: reference (bare app)", *load(ref_port, mine, options.concurrency)))
            ours.append(describe(f"round {round_ + 1}: one-click unsubscribe", *load(port, mine, options.concurrency)))
            agains.append(describe(f"round {round_ + 1}: the same again (no-op)", *load(port, mine, options.concurrency)))
    finally:
        stop(reference, WORK / "reference.log")
        errors = stop(server, WORK / "serve.log")
    from newsletter.audience.store import SubscriberStore

    with SubscriberStore.open(folder) as store:
        left = [a for a in addresses if store.status_of(a) != "unsubscribed"]
    ref, best, again = (max(runs, key=lambda r: r["rps"]) for runs in (refs, ours, agains))
    print(f"best rounds: reference {ref['rps']:.0f} req/s (p99 {ref['p99']:.1f} ms); one-click {best['rps']:.0f} req/s "
          f"(p99 {best['p99']:.1f} ms) = {best['rps'] / ref['rps']:.2f}x the reference; no-op {again['rps']:.0f} req/s = {again['rps'] / ref['rps']:.2f}x")
    print(f"target >= 500 req/s: {'met' if best['rps'] >= 500 else 'NOT met'}; p99 < 50 ms: {'met' if best['p99'] < 50 else 'NOT met'} "
          f"(lowest p99 of any round: {min(r['p99'] for r in ours):.1f} ms)")
    print(f"addresses not unsubscribed afterwards: {len(left)} of {len(addresses)}; "
          f"'database is locked' in the server's log: {'database is locked' in errors}")


if __name__ == "__main__":
    main()
