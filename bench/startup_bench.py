"""How fast does the command start?  Run: .venv/bin/python bench/startup_bench.py

Times whole processes, in one run, alternating so that other load on a shared
machine hits each alike (median of ``--runs`` rounds after one warm-up round):

1. the reference: ``python -c pass`` with the same interpreter;
2. ``newsletter --version`` (the console script);
3. ``newsletter --help`` (the click command group loaded, nothing else);
4. ``newsletter build ISSUE --out <temporary folder>``.

Targets (issue 15, item 3): ``--version`` at most 4x and ``build`` at most 20x
``python -c pass``.  Prints figures and ratios only; nothing here asserts,
since timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_TARGET = 4.0
BUILD_TARGET = 20.0


def newsletter_argv() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m newsletter``."""
    script = Path(sys.executable).with_name("newsletter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]


def time_rounds(commands: dict[str, list[str]], runs: int, cwd: Path) -> dict[str, list[float]]:
    """Wall seconds of each command, ``runs`` alternating rounds after one untimed round."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issue", nargs="?", default="2026-10", help="issue to build (default: 2026-10)")
    parser.add_argument("--folder", type=Path, default=ROOT, help="newsletter folder (default: the repository)")
    parser.add_argument("--runs", type=int, default=21, help="timed rounds")
    args = parser.parse_args()
    folder = args.folder.resolve()
    cli = newsletter_argv()
    with tempfile.TemporaryDirectory() as out:
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "newsletter --version": [*cli, "--version"],
            "newsletter --help": [*cli, "--help"],
            f"newsletter build {args.issue}": [*cli, "build", args.issue, "--folder", str(folder), "--out", out],
        }
        times = time_rounds(commands, args.runs, folder)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["python -c pass"]
    targets = {"newsletter --version": VERSION_TARGET, f"newsletter build {args.issue}": BUILD_TARGET}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median of {args.runs} alternating rounds")
    for name, median in medians.items():
        ratio = median / base
        target = targets.get(name)
        verdict = f"   target <= {target:.0f}x: {'met' if ratio <= target else 'NOT MET'}" if target else ""
        print(f"  {name:28} {median * 1000:8.1f} ms  {ratio:6.2f}x python -c pass{verdict}")


if __name__ == "__main__":
    main()
