"""How fast does the command start?  Run: .venv/bin/python bench/startup_bench.py

Times whole processes, in one run, alternating so that other load on a shared
machine hits each alike (median of ``--runs`` rounds after one warm-up round):

1. the reference: ``python -c pass`` with the same interpreter;
2. ``newsletter --version`` (the console script);
3. ``newsletter --help`` (the click command group loaded, nothing else);
4. ``newsletter build ISSUE --out <temporary folder>`` with a warm cache: the
   user's cache (``newsletter.mail.usercache``: compiled templates, what the CSS
   inliner derives from the templates' stylesheets) filled by earlier runs, an
   author's steady state;
5. the same build with a cold cache, emptied before each run (as after an
   upgrade, or the very first build).

Every command runs with ``NEWSLETTER_CACHE_DIR`` set to a folder under
bench/.work, so the user's own cache is never read or written.  The package is
byte-compiled first, as pip does when it installs one: with
``PYTHONDONTWRITEBYTECODE`` set (as on the shared machine) the modules of an
editable install would otherwise be compiled from source again in every timed
process (a quarter of a build's instructions), which no installed copy does.

Targets (issue 15, item 3): ``--version`` at most 4x and ``build`` at most 20x
``python -c pass``, judged on the warm-cache build; the cold one is shown
beside it.  Prints figures and ratios only; nothing here asserts, since
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_TARGET = 4.0
BUILD_TARGET = 20.0
CACHE = ROOT / "bench" / ".work" / "startup" / "cache"


def newsletter_argv() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m newsletter``."""
    script = Path(sys.executable).with_name("newsletter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]


def byte_compile_package() -> Path:
    """Write the package's ``.pyc`` files (beside its sources, in ``__pycache__``); its folder."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("newsletter")
    if spec is None or spec.origin is None:
        raise SystemExit("the newsletter package is not installed for this interpreter")
    package = Path(spec.origin).parent
    compileall.compile_dir(package, quiet=1)
    return package


def time_rounds(commands: dict[str, list[str]], runs: int, cwd: Path, cold: set[str]) -> dict[str, list[float]]:
    """Wall seconds of each command, ``runs`` alternating rounds after one untimed round; the
    cache is emptied (untimed) before each command named in ``cold``."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    env = {**os.environ, "NEWSLETTER_CACHE_DIR": str(CACHE)}
    for round_ in range(runs + 1):
        for name, argv in commands.items():
            if name in cold:
                shutil.rmtree(CACHE, ignore_errors=True)
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    byte_compile_package()
    build = [*cli, "build", args.issue, "--folder", str(folder)]
    warm, cold = f"newsletter build {args.issue} (warm cache)", f"newsletter build {args.issue} (cold cache)"
    shutil.rmtree(CACHE, ignore_errors=True)
    with tempfile.TemporaryDirectory() as out:
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "newsletter --version": [*cli, "--version"],
            "newsletter --help": [*cli, "--help"],
            # the warm build runs first in each round, after the previous round's cold build refilled the cache
            warm: [*build, "--out", out],
            cold: [*build, "--out", out],
        }
        times = time_rounds(commands, args.runs, folder, cold={cold})
    shutil.rmtree(CACHE, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["python -c pass"]
    targets = {"newsletter --version": VERSION_TARGET, warm: BUILD_TARGET}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median of {args.runs} alternating rounds")
    for name, median in medians.items():
        ratio = median / base
        target = targets.get(name)
        verdict = f"   target <= {target:.0f}x: {'met' if ratio <= target else 'NOT MET'}" if target else ""
        print(f"  {name:41} {median * 1000:8.1f} ms  {ratio:6.2f}x python -c pass{verdict}")
    print("  (the build target is judged on the warm-cache build, an author's steady state; the cold one is for comparison)")


if __name__ == "__main__":
    main()
