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

The two throughput runs alternate for ``--rounds`` rounds and the best of each
is compared, so that other load on a shared machine does not favour either.
Targets (issue 3): ours >= 0.5 x smtp-source and >= 5 x mailmerge; signed >= 0.6 x smtp-source (issue 13).  Prints
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
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
ISSUE = "2026-11"
SOURCE_TARGET = 0.5
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


class Sink:
    """smtp-sink on 127.0.0.1:<free port>, stopped on exit."""

    def __init__(self) -> None:
        if not os.path.exists(SMTP_SINK):
            raise SystemExit(f"{SMTP_SINK} is missing: install the Debian postfix package (scripts/test does)")
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        # backlog 1000; smtp-sink handles up to 256 connections by default
        self.process = subprocess.Popen([SMTP_SINK, *user, f"127.0.0.1:{self.port}", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port)

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


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
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sources, ours_runs, signed_runs = [], [], []
    with Sink() as sink:
        # Alternate the two so that load from other processes on a shared machine hits both alike.
        for _ in range(args.rounds):
            ours_runs.append(run_ours(sink.port, args.messages, args.concurrency))
            signed_runs.append(run_ours(sink.port, args.messages, args.concurrency, dkim=True))
            sources.append(run_smtp_source(sink.port, args.messages, int(ours_runs[-1]["size"]), args.concurrency))
        merge = run_mailmerge(sink.port, args.mailmerge_messages)
    source = max(sources, key=lambda r: r["rate"])
    ours = max(ours_runs, key=lambda r: r["rate"])
    vs_source = ours["rate"] / source["rate"]
    signed = max(signed_runs, key=lambda r: r["rate"])
    signed_vs_source = signed["rate"] / source["rate"]
    vs_merge = ours["rate"] / merge["rate"]
    print(f"sink: smtp-sink on 127.0.0.1:{sink.port}; message size {ours['size']} bytes; {os.cpu_count()} CPUs; best of {args.rounds} alternating rounds")
    print(f"smtp-source -s {args.concurrency} -d   {source['messages']:>6} msgs  {source['seconds']:7.2f} s  {source['rate']:8.0f} msg/s"
          f"   (rounds: {rates(sources)})")
    print(f"newsletter send    {ours['messages']:>6} msgs  {ours['execute_s']:7.2f} s  {ours['rate']:8.0f} msg/s"
          f"   (rounds: {rates(ours_runs)}; with prepare {ours['rate_with_prepare']:.0f} msg/s)")
    print(f"send, DKIM-signed  {signed['messages']:>6} msgs  {signed['execute_s']:7.2f} s  {signed['rate']:8.0f} msg/s"
          f"   (rounds: {rates(signed_runs)})")
    print(f"mailmerge          {merge['messages']:>6} msgs  {merge['seconds']:7.2f} s  {merge['rate']:8.0f} msg/s")
    print(f"newsletter / smtp-source = {vs_source:.2f}x (target >= {SOURCE_TARGET}x) {'OK' if vs_source >= SOURCE_TARGET else 'BELOW TARGET'}")
    print(f"signed / smtp-source     = {signed_vs_source:.2f}x (target >= {SIGNED_TARGET}x) {'OK' if signed_vs_source >= SIGNED_TARGET else 'BELOW TARGET'}")
    print(f"newsletter / mailmerge   = {vs_merge:.1f}x (target >= {MAILMERGE_TARGET}x) {'OK' if vs_merge >= MAILMERGE_TARGET else 'BELOW TARGET'}")
    results = {"smtp_source": sources, "newsletter": ours_runs, "signed": signed_runs, "signed_vs_source": signed_vs_source, "mailmerge": merge, "vs_source": vs_source, "vs_mailmerge": vs_merge,
               "cpus": os.cpu_count(), "user": pwd.getpwuid(os.geteuid()).pw_name}
    (WORK / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
