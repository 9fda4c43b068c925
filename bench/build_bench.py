"""How fast is building one issue?  Run: .venv/bin/python bench/build_bench.py

Measures, in one run on this machine:

1. in-process: ``build.render_issue`` (load + validate + MJML + premailer +
   plain text + .eml, nothing written), and ``Renderer.render`` + the MIME
   message alone (the per-recipient work), medians after warm-up;
2. the reference: the same MJML source compiled by the JavaScript ``mjml``
   package, timed in-process inside node (``bench/mjml_bench.js``), next to
   mjml-python compiling the same source; the package is installed into
   ``bench/.work`` with npm on first use;
3. ``newsletter build`` as a whole process (median wall time of N runs),
   next to ``python -c pass`` with the same interpreter.

Targets (issue 2): in-process build <= 10 ms, whole process <= 0.5 s.  Issue 15: the
JavaScript mjml's MJML step alone takes at least 1.5x our whole in-process build; judged on the
median of ``--rounds`` rounds that time ours and the JavaScript mjml back to back.  Prints
figures only; nothing here asserts, since timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
NODE_SCRIPT = ROOT / "bench" / "mjml_bench.js"
IN_PROCESS_TARGET_MS = 10.0
PROCESS_TARGET_S = 0.5


def median_ms(func: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of ``func`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def median_process_s(argv: list[str], runs: int, cwd: Path) -> float:
    """Median wall time of running ``argv`` to completion, in seconds (one untimed run first)."""
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


_FIRST_CALL = """
import sys, time
from pathlib import Path
from newsletter.mail.build import render_issue
start = time.perf_counter()
render_issue(Path(sys.argv[1]), sys.argv[2])
print((time.perf_counter() - start) * 1000)
"""


def first_call_ms(folder: Path, issue_arg: str, runs: int) -> float:
    """Median time of the first ``render_issue`` in a fresh interpreter, after the imports:
    what one ``newsletter build`` pays, with no template, stylesheet or YAML cache warm yet."""
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _FIRST_CALL, str(folder), issue_arg], capture_output=True, text=True, check=True)
        times.append(float(done.stdout.strip()))
    return statistics.median(times)


def mjml_source(folder: Path, issue_arg: str) -> str:
    """The MJML the Renderer compiles for this issue (captured on its way to mjml-python)."""
    from newsletter.content.config import load_config
    from newsletter.content.load import load_issue, resolve_issue_path
    from newsletter.mail.render import Renderer

    captured: list[str] = []

    class Capturing(Renderer):
        def _compile_mjml(self, source: str) -> str:
            captured.append(source)
            return super()._compile_mjml(source)

    config = load_config(folder)
    issue = load_issue(resolve_issue_path(folder, issue_arg), config, folder).issue
    assert issue is not None
    Capturing(folder, config).render(issue)
    return captured[0]


def ensure_js_mjml() -> str | None:
    """Install the npm package ``mjml`` into bench/.work if missing; None if node/npm are unavailable."""
    if not shutil.which("node"):
        return "node is not installed"
    if not (WORK / "node_modules" / "mjml" / "package.json").is_file():
        npm = shutil.which("npm")
        if not npm:
            return "npm is not installed"
        print(f"installing the JavaScript mjml into {WORK.relative_to(ROOT)} (first run only) ...", flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(WORK), "--no-audit", "--no-fund", "--silent", "mjml"], capture_output=True, text=True)
        if done.returncode != 0:
            return f"npm install mjml failed: {done.stderr.strip()[-500:]}"
    return None


def time_js_mjml(source: str, runs: int, warmup: int) -> dict:
    """Run bench/mjml_bench.js on the source; its JSON result."""
    with tempfile.NamedTemporaryFile("w", suffix=".mjml", encoding="utf-8", delete=False) as f:
        f.write(source)
    try:
        done = subprocess.run(["node", str(NODE_SCRIPT), str(WORK), f.name, str(warmup), str(runs)], capture_output=True, text=True, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternate_rounds(build: Callable[[], object], source: str, args: argparse.Namespace) -> None:
    """The issue 15 ratio measured ``args.rounds`` times more, ours and the JavaScript mjml back to
    back in each round, so that a slow spell of the shared machine hits both sides of a ratio."""
    ratios = []
    for number in range(1, args.rounds + 1):
        ours = median_ms(build, args.runs, args.warmup)
        theirs = time_js_mjml(source, args.runs, args.js_warmup)["median_ms"]
        ratios.append(theirs / ours)
        print(f"  round {number}: ours {ours:6.2f} ms, JavaScript mjml {theirs:6.2f} ms, ratio {theirs / ours:5.2f} x")
    print(f"  ratio JS mjml alone / our whole build, median of {args.rounds} rounds: {statistics.median(ratios):5.2f} x   target >= 1.5"
          f" (lowest {min(ratios):.2f}, highest {max(ratios):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issue", nargs="?", default="2026-10", help="issue to build (default: 2026-10)")
    parser.add_argument("--folder", type=Path, default=ROOT, help="newsletter folder (default: the repository)")
    parser.add_argument("--runs", type=int, default=200, help="timed in-process runs")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--js-warmup", type=int, help="warm-up runs of the JavaScript mjml (default: --warmup)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of ours and the JavaScript mjml")
    parser.add_argument("--process-runs", type=int, default=15, help="timed whole-process runs")
    args = parser.parse_args()
    if args.js_warmup is None:
        args.js_warmup = args.warmup
    folder = args.folder.resolve()

    from newsletter.mail.build import render_issue
    from newsletter.content.config import load_config
    from newsletter.content.load import load_issue, resolve_issue_path
    from newsletter.mail.message import build_message, message_bytes

    _loaded, rendered, eml = render_issue(folder, args.issue)
    print(f"issue {args.issue}: email.html {rendered.html_bytes / 1024:.1f} KB, email.txt {len(rendered.text.encode()) / 1024:.1f} KB, message.eml {len(eml) / 1024:.1f} KB")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.runs} runs after {args.warmup} warm-up")
    print()

    full = median_ms(lambda: render_issue(folder, args.issue), args.runs, args.warmup)
    from newsletter.mail.render import Renderer

    config = load_config(folder)
    issue = load_issue(resolve_issue_path(folder, args.issue), config, folder).issue
    assert issue is not None
    renderer = Renderer(folder, config)
    render_only = median_ms(lambda: message_bytes(build_message(renderer.render(issue), config)), args.runs, args.warmup)
    verdict = "ok" if full <= IN_PROCESS_TARGET_MS else "OVER TARGET"
    print("in-process (median)")
    print(f"  build.render_issue (load+validate+HTML+text+.eml)   {full:8.2f} ms   target <= {IN_PROCESS_TARGET_MS:.0f} ms: {verdict}")
    print(f"  Renderer.render + message (per recipient)          {render_only:8.2f} ms")

    cold = first_call_ms(folder, args.issue, args.process_runs)
    print(f"  build.render_issue, first call in a fresh process    {cold:8.2f} ms   (imports done; no cache warm)")

    source = mjml_source(folder, args.issue)
    import mjml

    py_mjml = median_ms(lambda: mjml.mjml2html(source), args.runs, args.warmup)
    print(f"  mjml-python mjml2html alone (same MJML)            {py_mjml:8.2f} ms")
    problem = ensure_js_mjml()
    if problem:
        print(f"  JavaScript mjml: skipped ({problem})")
    else:
        js = time_js_mjml(source, args.runs, args.js_warmup)
        if js.get("errors"):
            print(f"  (JavaScript mjml reported {js['errors']} validation message(s) on this source)")
        print(f"  JavaScript mjml {js['version']} mjml2html alone (node)    {js['median_ms']:8.2f} ms")
        print(f"  ratio JS mjml / mjml-python, same MJML:            {js['median_ms'] / py_mjml:8.2f} x")
        print(f"  ratio JS mjml alone / our whole build:             {js['median_ms'] / full:8.2f} x")
        if args.rounds > 1:
            alternate_rounds(lambda: render_issue(folder, args.issue), source, args)
    print()

    with tempfile.TemporaryDirectory() as out:
        newsletter = Path(sys.executable).with_name("newsletter")
        build_argv = [str(newsletter) if newsletter.exists() else sys.executable, *([] if newsletter.exists() else ["-m", "newsletter"]),
                      "build", args.issue, "--folder", str(folder), "--out", out]
        build_s = median_process_s(build_argv, args.process_runs, folder)
        python_s = median_process_s([sys.executable, "-c", "pass"], args.process_runs, folder)
    verdict = "ok" if build_s <= PROCESS_TARGET_S else "OVER TARGET"
    print(f"whole process (median of {args.process_runs})")
    print(f"  newsletter build {args.issue}                          {build_s:8.3f} s    target <= {PROCESS_TARGET_S} s: {verdict}")
    print(f"  python -c pass (interpreter start-up)              {python_s:8.3f} s")


if __name__ == "__main__":
    main()
