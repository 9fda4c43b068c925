"""How fast does ``newsletter send`` hand messages to a mail server?  Run: .venv/bin/python bench/send_bench.py

Everything goes to Postfix's ``smtp-sink`` on 127.0.0.1 (started here on a free
port; it accepts and discards mail, so the client's speed is what is measured).
In one run, against the same sink:

1. the reference: Postfix's C load generator ``smtp-source -s 4 -d`` sending
   N messages of the same size as one personalised example issue over 4
   reused connections;
2. ours: ``newsletter.delivery.send.prepare`` + ``execute`` (the same code as
   ``newsletter send ISSUE --to list.csv --sender smtp --concurrency 4 --yes``)
   sending N personalised messages of the example issue: per recipient the
   personalised bytes, the durable send record (fsynced before each hand-over,
   with group commit) and the SMTP exchange.  ``execute`` is what is compared;
   ``prepare`` (render once, stage the list) is shown beside it;
3. ours again with DKIM configured (a fresh 2048-bit key): every message signed;
4. the peer tool ``mailmerge`` (PyPI; installed with ``pip install -e '.[bench]'``)
   sending the same issue (text + HTML, greeting per recipient) with its rate
   limit off; it opens one connection per message, so a smaller N is enough.

5. ours as a whole process, ``newsletter send`` (start-up, planning, staging and
   all), and staging alone: reading, checking and writing the list into a new
   send record.

The throughput runs alternate for ``--rounds`` rounds and the best of each is
compared, so that other load on a shared machine does not favour any.
Targets (issue 3): ours >= 0.5 x smtp-source and >= 5 x mailmerge; signed >= 0.6
x smtp-source (issue 13); the whole process >= 0.75 x smtp-source and staging
10,000 rows <= 0.2 s (issue 15).  Prints
figures and ratios only; nothing here asserts, since timings depend on the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "send"
# The benches' own user cache (newsletter.mail.usercache: compiled templates, the inliner's CSS),
# for runs in this process and the processes it starts: the user's own cache is never touched.
os.environ["NEWSLETTER_CACHE_DIR"] = str(ROOT / "bench" / ".work" / "cache")
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
ISSUE = "2026-11"
SOURCE_TARGET = 0.5
PROCESS_TARGET = 0.75  # issue 15: the whole process
STAGING_TARGET_S = 0.2
MAILMERGE_TARGET = 5.0
SIGNED_TARGET = 0.6  # issue 13: DKIM-signed sending


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"smtp-sink did not start listening on 127.0.0.1:{port}")
            time.sleep(0.05)


class Child:
    """A server process started by a bench, stopped on leaving the ``with`` block."""

    process: subprocess.Popen

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Sink(Child):
    """smtp-sink on 127.0.0.1:<free port>, stopped on exit."""

    def __init__(self) -> None:
        if not os.path.exists(SMTP_SINK):
            raise SystemExit(f"{SMTP_SINK} is missing: install the Debian postfix package (scripts/test does)")
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        # backlog 1000; smtp-sink handles up to 256 connections by default
        self.process = subprocess.Popen([SMTP_SINK, *user, f"127.0.0.1:{self.port}", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port)


def make_folder(recipients: int) -> Path:
    """A fresh copy of the example newsletter folder with a list of ``recipients`` subscribers."""
    folder = WORK / "letter"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", folder / "newsletter.yaml")
    shutil.copytree(ROOT / "issues", folder / "issues")
    with (folder / "subscribers.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        for i in range(recipients):
            writer.writerow([f"reader{i:06d}@example.com", f"Reader Number {i}"])
    return folder


def smtp_env(port: int) -> dict[str, str]:
    return {**os.environ, "NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(port),
            "NEWSLETTER_SMTP_SECURITY": "none", "NEWSLETTER_SECRET": "bench-secret"}


def run_ours(port: int, messages: int, concurrency: int, dkim: bool = False) -> dict[str, float]:
    """newsletter's own send path, in process; returns rates and the size of one message.

    ``dkim``: with a fresh 2048-bit key configured, so every message is DKIM-signed (issue 13).
    """
    sys.path.insert(0, str(ROOT / "src"))
    from newsletter.delivery.send import SendOptions, execute, prepare
    from newsletter.mail.dkim import keygen

    folder = make_folder(messages)
    if dkim:
        keygen(folder, "bench")
        with (folder / "newsletter.yaml").open("a", encoding="utf-8") as handle:
            handle.write("\ndkim:\n  selector: bench\n  key_file: dkim/bench.pem\n")
    options = SendOptions(issue=ISSUE, to=folder / "subscribers.csv", sender="smtp", concurrency=concurrency)
    started = time.perf_counter()
    plan = prepare(folder, options, env=smtp_env(port))
    prepared = time.perf_counter()
    size = len(plan.personaliser.personalise("reader000000@example.com", "Reader Number 0").data)
    sending = time.perf_counter()
    report = execute(plan)
    finished = time.perf_counter()
    sent = report.counts.get("sent", 0)
    if sent != messages:
        raise SystemExit(f"ours: only {sent} of {messages} sent: {report.lines()}")
    return {
        "messages": sent,
        "size": size,
        "prepare_s": prepared - started,
        "execute_s": finished - sending,
        "rate": sent / (finished - sending),
        "rate_with_prepare": sent / (finished - sending + prepared - started),
    }


def newsletter_argv() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m newsletter``."""
    script = Path(sys.executable).with_name("newsletter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]


def byte_compile_package() -> None:
    """Write the package's ``.pyc`` files, as pip does when it installs one: with
    ``PYTHONDONTWRITEBYTECODE`` set (as on the shared machine) an editable install's modules
    would otherwise be compiled from source again in every timed process."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("newsletter")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(Path(spec.origin).parent, quiet=1)


def run_process(folder: Path, port: int, concurrency: int) -> float:
    """Seconds for the whole ``newsletter send ISSUE --to list --sender smtp --yes`` process
    (the package byte-compiled first, untimed)."""
    byte_compile_package()
    argv = [*newsletter_argv(), "send", ISSUE, "--to", str(folder / "subscribers.csv"), "--sender", "smtp",
            "--concurrency", str(concurrency), "--yes", "--folder", str(folder)]
    started = time.perf_counter()
    done = subprocess.run(argv, env=smtp_env(port), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"newsletter send failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def staging_s(recipients: int, runs: int = 5) -> float:
    """Median seconds to stage a list of ``recipients`` rows into a new send record (read, check, write)."""
    import statistics
    import tempfile

    sys.path.insert(0, str(ROOT / "src"))
    from newsletter.audience.subscribers import iter_subscribers
    from newsletter.delivery.ledger import write_new

    folder = make_folder(recipients)
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            started = time.perf_counter()
            write_new(Path(tmp) / "record.sqlite", iter_subscribers(folder / "subscribers.csv"), {"month": ISSUE})
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_smtp_source(port: int, messages: int, size: int, sessions: int) -> dict[str, float]:
    argv = [SMTP_SOURCE, "-s", str(sessions), "-d", "-m", str(messages), "-l", str(size),
            "-f", "notes@example.org", "-t", "reader@example.com", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    return {"messages": messages, "size": size, "seconds": elapsed, "rate": messages / elapsed, "command": " ".join(argv)}


def mailmerge_files(port: int, messages: int) -> Path:
    """mailmerge's template (the rendered issue, text + HTML, greeting per row), database and config."""
    sys.path.insert(0, str(ROOT / "src"))
    from newsletter.content.config import load_config
    from newsletter.content.load import load_issue, resolve_issue_path
    from newsletter.mail.render import Personal, Renderer, default_subject

    folder = make_folder(0)
    config = load_config(folder, env={})
    issue = load_issue(resolve_issue_path(folder, ISSUE), config, folder).issue
    token = "MAILMERGEGREETINGTOKEN"
    rendered = Renderer(folder, config).render(issue, Personal(greeting=token))
    greeting = "{% endraw %}Dear {{name}},{% raw %}"

    def raw(text: str) -> str:
        return "{% raw %}" + text.replace(token, greeting) + "{% endraw %}"

    directory = WORK / "mailmerge"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "mailmerge_template.txt").write_text(
        "TO: {{name}} <{{email}}>\n"
        f"SUBJECT: {default_subject(issue, config)}\n"
        f'FROM: "{config.sender_name}" <{config.sender_email}>\n'
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="newsletter-boundary"\n\n'
        "--newsletter-boundary\nContent-Type: text/plain; charset=utf-8\n\n"
        f"{raw(rendered.text)}\n"
        "--newsletter-boundary\nContent-Type: text/html; charset=utf-8\n\n"
        f"{raw(rendered.html)}\n"
        "--newsletter-boundary--\n",
        encoding="utf-8",
    )
    with (directory / "mailmerge_database.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        for i in range(messages):
            writer.writerow([f"reader{i:06d}@example.com", f"Reader Number {i}"])
    (directory / "mailmerge_server.conf").write_text(f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nratelimit = 0\n")
    return directory


def run_mailmerge(port: int, messages: int) -> dict[str, float]:
    executable = Path(sys.executable).with_name("mailmerge")
    if not executable.exists():
        raise SystemExit("mailmerge is not installed: .venv/bin/pip install -e '.[bench]'")
    directory = mailmerge_files(port, messages)
    argv = [str(executable), "--no-dry-run", "--no-limit", "--output-format", "raw"]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=directory, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"mailmerge failed: {result.stderr[-2000:]}")
    sent = sum(1 for line in result.stdout.splitlines() if line.startswith(">>> message ") and line.endswith(" sent"))
    if sent != messages:
        raise SystemExit(f"mailmerge reported {sent} of {messages} messages sent")
    return {"messages": messages, "seconds": elapsed, "rate": messages / elapsed, "command": " ".join(["mailmerge", *argv[1:]])}


def rates(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{run['rate']:.0f}" for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages for smtp-source and for newsletter (default 10000)")
    parser.add_argument("--mailmerge-messages", type=int, default=1_000, help="messages for mailmerge (default 1000; it is slow)")
    parser.add_argument("--concurrency", type=int, default=4, help="connections (smtp-source -s and newsletter --concurrency)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of smtp-source and newsletter; the best of each is compared (default 3)")
    parser.add_argument("--no-mailmerge", action="store_true", help="skip mailmerge")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sources, ours_runs, signed_runs, process_s = [], [], [], []
    with Sink() as sink:
        # Alternate the three so that load from other processes on a shared machine hits them alike.
        for _ in range(args.rounds):
            ours_runs.append(run_ours(sink.port, args.messages, args.concurrency))
            signed_runs.append(run_ours(sink.port, args.messages, args.concurrency, dkim=True))
            sources.append(run_smtp_source(sink.port, args.messages, int(ours_runs[-1]["size"]), args.concurrency))
            process_s.append(run_process(make_folder(args.messages), sink.port, args.concurrency))
        merge = run_mailmerge(sink.port, args.mailmerge_messages) if not args.no_mailmerge else None
    staged = staging_s(args.messages)
    source = max(sources, key=lambda r: r["rate"])
    ours = max(ours_runs, key=lambda r: r["rate"])
    vs_source = ours["rate"] / source["rate"]
    signed = max(signed_runs, key=lambda r: r["rate"])
    signed_vs_source = signed["rate"] / source["rate"]
    vs_merge = ours["rate"] / merge["rate"] if merge else 0.0
    process_rate = args.messages / min(process_s)
    vs_source_process = process_rate / source["rate"]
    print(f"sink: smtp-sink on 127.0.0.1:{sink.port}; message size {ours['size']} bytes; {os.cpu_count()} CPUs; best of {args.rounds} alternating rounds")
    print(f"smtp-source -s {args.concurrency} -d   {source['messages']:>6} msgs  {source['seconds']:7.2f} s  {source['rate']:8.0f} msg/s"
          f"   (rounds: {rates(sources)})")
    print(f"newsletter send    {ours['messages']:>6} msgs  {ours['execute_s']:7.2f} s  {ours['rate']:8.0f} msg/s"
          f"   (rounds: {rates(ours_runs)}; with prepare {ours['rate_with_prepare']:.0f} msg/s)")
    print(f"send, DKIM-signed  {signed['messages']:>6} msgs  {signed['execute_s']:7.2f} s  {signed['rate']:8.0f} msg/s"
          f"   (rounds: {rates(signed_runs)})")
    print(f"newsletter send, whole process {args.messages:>6} msgs  {min(process_s):7.2f} s  {process_rate:8.0f} msg/s"
          f"   (rounds: {', '.join(f'{args.messages / t:.0f}' for t in process_s)}; start-up, planning and staging included)")
    if merge:
        print(f"mailmerge          {merge['messages']:>6} msgs  {merge['seconds']:7.2f} s  {merge['rate']:8.0f} msg/s")
    print(f"staging a {args.messages}-row list into a new send record: {staged:.3f} s (median of 5; target <= {STAGING_TARGET_S} s for 10,000) "
          f"{'OK' if staged <= STAGING_TARGET_S else 'BELOW TARGET'}")
    print(f"newsletter / smtp-source = {vs_source:.2f}x (send loop; target >= {SOURCE_TARGET}x) {'OK' if vs_source >= SOURCE_TARGET else 'BELOW TARGET'}")
    print(f"signed / smtp-source     = {signed_vs_source:.2f}x (target >= {SIGNED_TARGET}x) {'OK' if signed_vs_source >= SIGNED_TARGET else 'BELOW TARGET'}")
    print(f"whole process / smtp-source = {vs_source_process:.2f}x (target >= {PROCESS_TARGET}x) {'OK' if vs_source_process >= PROCESS_TARGET else 'BELOW TARGET'}")
    if merge:
        print(f"newsletter / mailmerge   = {vs_merge:.1f}x (target >= {MAILMERGE_TARGET}x) {'OK' if vs_merge >= MAILMERGE_TARGET else 'BELOW TARGET'}")
    results = {"smtp_source": sources, "newsletter": ours_runs, "signed": signed_runs, "signed_vs_source": signed_vs_source,
               "process_s": process_s, "staging_s": staged, "mailmerge": merge,
               "vs_source": vs_source, "vs_source_process": vs_source_process, "vs_mailmerge": vs_merge,
               "cpus": os.cpu_count(), "user": pwd.getpwuid(os.geteuid()).pw_name}
    (WORK / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
