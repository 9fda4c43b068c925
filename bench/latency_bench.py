"""How does ``newsletter send`` do across a real network's round trip?  Run: .venv/bin/python bench/latency_bench.py

Postfix's ``smtp-sink`` on 127.0.0.1 behind ``bench/delay_proxy.py``, which
adds a fixed delay each way (``--rtt-ms``, default 20: a relay on the
internet).  In one run, through the same proxy:

1. the reference: Postfix's C ``smtp-source -s 4 -d`` sending N messages the
   size of one personalised example issue over 4 reused connections;
2. ours, the whole process: ``newsletter send 2026-11 --to <N rows> --sender
   smtp --concurrency 4 --yes`` (start-up, planning, the send record and all);
3. the limit of one round trip per message: connections / RTT messages a second.

Targets (issue 15, item 1): ours >= 3x smtp-source and >= 0.75 of the limit.
Prints figures and ratios only; nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send_bench import ISSUE, ROOT, SMTP_SOURCE, Child, Sink, free_port, make_folder, run_process, smtp_env, wait_listening  # noqa: E402

SOURCE_TARGET = 3.0
LIMIT_TARGET = 0.75


class DelayProxy(Child):
    """bench/delay_proxy.py in a child process, from a free loopback port to ``upstream``."""

    def __init__(self, upstream: int, rtt_ms: float) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "delay_proxy.py"), "--listen", f"127.0.0.1:{self.port}",
                                         "--to", f"127.0.0.1:{upstream}", "--rtt-ms", str(rtt_ms)])
        wait_listening(self.port)


def message_size(folder: Path, port: int) -> int:
    """The size of one personalised message of the issue (prepared in-process, then discarded)."""
    sys.path.insert(0, str(ROOT / "src"))
    from newsletter.delivery.send import SendOptions, prepare

    plan = prepare(folder, SendOptions(issue=ISSUE, to=folder / "subscribers.csv", sender="smtp", concurrency=1), env=smtp_env(port))
    try:
        return len(plan.personaliser.personalise("reader000000@example.com", "Reader Number 0").data)
    finally:
        plan.discard()


def run_smtp_source(port: int, messages: int, size: int, sessions: int) -> float:
    argv = [SMTP_SOURCE, "-s", str(sessions), "-d", "-m", str(messages), "-l", str(size),
            "-f", "notes@example.org", "-t", "reader@example.com", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def proxy_round_trip_ms(rtt_ms: float, size: int, exchanges: int = 60) -> float:
    """The median round trip the proxy really gives one message: ``size`` bytes written, a short
    reply read back, through a fresh bench/delay_proxy.py to a loopback server that answers once it
    has the whole message (what an SMTP server does at the end of DATA).  The asyncio timers and
    the chunks a 34 KB write arrives in make it a little longer than the nominal ``rtt_ms``; the
    difference is the instrument's, not the sender's, so it is printed next to the nominal limit."""
    import socket
    import statistics
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        while True:  # the proxy's start-up probe connects (and leaves) first
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    got = 0
                    while got < size:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        got += len(chunk)
                    if got < size:
                        break
                    conn.sendall(b"250 ok\r\n")

    threading.Thread(target=answer, daemon=True).start()
    times = []
    with DelayProxy(port, rtt_ms) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * size
        for _ in range(exchanges):
            started = time.perf_counter()
            client.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += client.recv(100)
            times.append((time.perf_counter() - started) * 1000)
    listener.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is compared")
    args = parser.parse_args()
    limit = args.concurrency / (args.rtt_ms / 1000)
    with Sink() as sink, DelayProxy(sink.port, args.rtt_ms) as proxy:
        size = message_size(make_folder(1), proxy.port)
        source_s, ours_s = [], []
        for _ in range(args.rounds):
            source_s.append(run_smtp_source(proxy.port, args.messages, size, args.concurrency))
            ours_s.append(run_process(make_folder(args.messages), proxy.port, args.concurrency))
    measured_rtt = proxy_round_trip_ms(args.rtt_ms, size)
    source_rate, ours_rate = args.messages / min(source_s), args.messages / min(ours_s)
    print(f"{args.messages} messages of {size} bytes, {args.concurrency} connections, {args.rtt_ms:.0f} ms round trip added by bench/delay_proxy.py; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; best of {args.rounds} rounds")
    print(f"  smtp-source -s {args.concurrency} -d            {source_rate:8.0f} msg/s   (rounds: {', '.join(f'{args.messages / s:.0f}' for s in source_s)})")
    print(f"  newsletter send (whole process)   {ours_rate:8.0f} msg/s   (rounds: {', '.join(f'{args.messages / s:.0f}' for s in ours_s)})")
    print(f"  one round trip a message limit    {limit:8.0f} msg/s")
    ratio_source, ratio_limit = ours_rate / source_rate, ours_rate / limit
    print(f"  ours / smtp-source                {ratio_source:8.2f} x      target >= {SOURCE_TARGET}: {'met' if ratio_source >= SOURCE_TARGET else 'NOT MET'}")
    print(f"  ours / limit                      {ratio_limit:8.3f}       target >= {LIMIT_TARGET}: {'met' if ratio_limit >= LIMIT_TARGET else 'NOT MET'}")
    measured_limit = args.concurrency / (measured_rtt / 1000)
    print(f"  (the proxy's measured round trip for one {size}-byte message and its reply: {measured_rtt:.2f} ms, so one round trip "
          f"a message through it allows {measured_limit:.0f} msg/s; ours is {ours_rate / measured_limit:.3f} of that. The target is judged "
          f"on the nominal {args.rtt_ms:.0f} ms above.)")


if __name__ == "__main__":
    main()
