"""Does memory grow with the subscriber list?  Run: .venv/bin/python bench/memory_bench.py

Runs the real command, ``newsletter send 2026-11 --to list.csv --sender smtp
--concurrency 4 --yes``, as a child process against Postfix's ``smtp-sink`` on
127.0.0.1, once with a generated list of 20,000 subscribers and once with
200,000 (CSV files in bench/.work/memory/), and reads each child's peak
resident memory (``ru_maxrss`` from ``os.wait4``).  ``--dry-run`` measures the
dry path instead (everything but the hand-over, no server needed).

Target (issue 3): the 200,000 peak within 20 MB of the 20,000 peak.  Prints
figures only; nothing here asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send_bench import ISSUE, ROOT, Sink, smtp_env  # noqa: E402

WORK = ROOT / "bench" / ".work" / "memory"
TARGET_MB = 20.0


def make_list(path: Path, recipients: int) -> None:
    """A subscriber CSV like a real export: email, name, status (a few unsubscribed rows are skipped)."""
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "status"])
        for i in range(recipients):
            writer.writerow([f"reader{i:07d}@example.com", f"Reader Number {i}", "unsubscribed" if i % 50 == 49 else "subscribed"])
    tmp.replace(path)


def make_folder(name: str) -> Path:
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", folder / "newsletter.yaml")
    shutil.copytree(ROOT / "issues", folder / "issues")
    return folder


def run_child(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv``; return (peak RSS in MB, seconds, its output)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{output[-3000:]}")
    return usage.ru_maxrss / 1024, elapsed, output  # ru_maxrss is in KiB on Linux


def measure(recipients: int, dry_run: bool, port: int | None) -> dict[str, float | str]:
    csv_path = WORK / f"subscribers-{recipients}.csv"
    make_list(csv_path, recipients)
    folder = make_folder(f"letter-{recipients}")
    argv = [sys.executable, "-m", "newsletter", "send", ISSUE, "--to", str(csv_path), "--concurrency", "4", "--yes"]
    if dry_run:
        argv += ["--dry-run", "--sender", "maildir"]
        env = {**os.environ, "NEWSLETTER_SECRET": "bench-secret"}
    else:
        assert port is not None
        argv += ["--sender", "smtp"]
        env = smtp_env(port)
    peak_mb, seconds, output = run_child(argv, folder, env)
    return {"recipients": recipients, "peak_mb": peak_mb, "seconds": seconds, "command": " ".join(["newsletter", *argv[3:]]),
            "last_line": output.strip().splitlines()[-1] if output.strip() else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--dry-run", action="store_true", help="measure `newsletter send --dry-run` (no server) instead of a real send")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        small, large = measure(args.small, True, None), measure(args.large, True, None)
    else:
        with Sink() as sink:
            small, large = measure(args.small, False, sink.port), measure(args.large, False, sink.port)
    growth = float(large["peak_mb"]) - float(small["peak_mb"])
    mode = "dry run" if args.dry_run else "send to smtp-sink"
    for result in (small, large):
        print(f"{mode}: {result['recipients']:>7} recipients  peak RSS {float(result['peak_mb']):6.1f} MB  {float(result['seconds']):6.1f} s   ({result['last_line']})")
    print(f"growth {args.small} -> {args.large}: {growth:+.1f} MB (target within {TARGET_MB:g} MB) {'OK' if growth <= TARGET_MB else 'ABOVE TARGET'}")
    (WORK / ("results-dry-run.json" if args.dry_run else "results.json")).write_text(json.dumps({"small": small, "large": large, "growth_mb": growth}, indent=2))


if __name__ == "__main__":
    main()
