"""Benchmark ``newsletter site`` as a whole process on generated archives of 15, 50, 150 and 300 issues.

The 150-issue case is a ten-year archive at the PPRNet blog's real size (two or
three articles an issue, summaries of 200-350 words, practice implications of
60-120 words, two or three topics each).  The archives are written straight
into ``bench/.work/site-N/archive/YYYY-MM/`` (issue.yaml and report.json, which
is all the site reads).  Each size is timed as a subprocess: the median of
``--runs`` runs after one warm-up, wall time and CPU time (user + sys, which a
busy shared machine disturbs less).  The reference measured in the same run is
the bare start-up of the CLI (``newsletter --version``).  A least-squares line
through the four sizes gives the fixed cost and the cost per issue; small
deviations from that line mean the growth is linear.

    .venv/bin/python bench/site_bench.py [--runs 5] [--sizes 15,50,150,300]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
TARGET_SECONDS = 2.0
sys.path.insert(0, str(ROOT / "src"))

from newsletter.content.config import DEFAULT_RESEARCH_TYPES, DEFAULT_TOPICS  # noqa: E402

WORDS = (
    "therapy therapist client clients alliance rupture repair outcome outcomes session sessions treatment "
    "depression anxiety trauma attachment empathy feedback progress monitoring dropout attendance study "
    "studies sample participants randomized trial meta-analysis effect size moderate large small "
    "symptoms improvement change psychotherapy practice clinicians research evidence follow-up months "
    "measure measures questionnaire rated ratings reliable consistent associated predicted higher lower "
    "group individual brief long-term cognitive behavioural psychodynamic interpersonal emotion regulation"
).split()
SURNAMES = "Smith Tasca Lambert Wampold Norcross Elliott Safran Muran Eubanks Flückiger Horvath Barkham Castonguay Hill Goldfried".split()
JOURNALS = ("Psychotherapy", "Psychotherapy Research", "Journal of Consulting and Clinical Psychology", "Clinical Psychology Review", "Counselling and Psychotherapy Research")


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(12, 24))]
    return " ".join(words).capitalize() + "."


def prose(rng: random.Random, words: int) -> str:
    paragraphs, count, current = [], 0, []
    while count < words:
        s = sentence(rng)
        current.append(s)
        count += len(s.split())
        if len(current) >= rng.randint(4, 6):
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs) + "\n"


def article(rng: random.Random, year: int, n: int) -> dict:
    authors = [f"{rng.choice(SURNAMES)}, {chr(65 + rng.randint(0, 25))}." for _ in range(rng.randint(1, 5))]
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).title() + f" ({n})"
    doi = f"10.{rng.randint(1000, 9999)}/pst{rng.randint(1000000, 9999999)}"
    journal = rng.choice(JOURNALS)
    return {
        "title": title,
        "citation": {
            "text": f"{', '.join(authors)} ({year - rng.randint(0, 2)}). {title}. {journal}, {rng.randint(20, 60)}({rng.randint(1, 6)}), {rng.randint(1, 400)}-{rng.randint(401, 800)}.",
            "doi": doi,
        },
        "topics": rng.sample(DEFAULT_TOPICS, rng.randint(2, 3)),
        "research_type": rng.choice(DEFAULT_RESEARCH_TYPES),
        "summary": prose(rng, rng.randint(200, 350)),
        "practice_implications": prose(rng, rng.randint(60, 120)),
    }


class _BlockDumper(yaml.SafeDumper):
    """Writes prose as `|` blocks, the way people write issue files."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockDumper.add_representer(str, _str)


def make_archive(folder: Path, issues: int, seed: int = 4) -> None:
    """A newsletter folder with ``issues`` archived months ending 2026-10."""
    rng = random.Random(seed)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", folder / "newsletter.yaml")
    year, month = 2026, 10
    for i in range(issues):
        name = f"{year:04d}-{month:02d}"
        directory = folder / "archive" / name
        directory.mkdir(parents=True)
        data = {
            "month": name,
            "intro": prose(rng, rng.randint(25, 50)),
            "articles": [article(rng, year, n) for n in range(rng.randint(2, 3))],
        }
        (directory / "issue.yaml").write_text(yaml.dump(data, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=78), encoding="utf-8")
        report = {"month": name, "subject": f"Notes {name}", "sender": "bench", "started": f"{name}-05T09:00:00Z",
                  "finished": f"{name}-05T09:04:00Z", "recipients": 1200,
                  "counts": {"sent": 1200, "failed": 0, "deferred": 0, "uncertain": 0, "pending": 0}}
        (directory / "report.json").write_text(json.dumps(report), encoding="utf-8")
        month -= 1
        if month == 0:
            year, month = year - 1, 12


CPU: dict[tuple[str, ...], float] = {}


def time_command(args: list[str], runs: int) -> float:
    """Median wall time of ``runs`` runs; the median CPU time (user+sys, steadier on a busy machine) goes to CPU."""
    subprocess.run(args, check=True, capture_output=True)  # warm-up (page cache, .pyc)
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    CPU[tuple(args)] = statistics.median(cpu)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="15,50,150,300")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    cli = [sys.executable, "-m", "newsletter"]
    startup = time_command(cli + ["--version"], options.runs)
    print(f"reference: `newsletter --version` (process start-up) {startup:.3f} s, median of {options.runs}")
    print(f"{'issues':>6} {'articles':>8} {'pages':>6} {'site (s)':>9} {'cpu (s)':>8} {'x start-up':>10} {'marginal cpu ms/issue':>22}")
    results: dict[int, float] = {}
    cpu_results: dict[int, float] = {}
    previous: tuple[int, float] | None = None
    for size in sizes:
        folder = WORK / f"site-{size}"
        make_archive(folder, size)
        articles = sum(len(yaml.safe_load((p / "issue.yaml").read_text())["articles"]) for p in (folder / "archive").iterdir())
        command = cli + ["site", "-C", str(folder), "--out", str(folder / "site")]
        seconds = time_command(command, options.runs)
        pages = sum(1 for _ in (folder / "site").rglob("*.html"))
        results[size] = seconds
        cpu = CPU[tuple(command)]
        marginal = f"{1000 * (cpu - previous[1]) / (size - previous[0]):.2f}" if previous else "-"
        print(f"{size:>6} {articles:>8} {pages:>6} {seconds:>9.3f} {CPU[tuple(command)]:>8.3f} {seconds / startup:>10.1f} {marginal:>22}")
        previous = (size, cpu)
        cpu_results[size] = cpu
    if len(sizes) >= 3:
        # least-squares line t = fixed + per_issue * n; a linear cost leaves small residuals
        for label, values in (("wall", results), ("cpu", cpu_results)):
            n = len(sizes)
            mean_x, mean_y = sum(sizes) / n, sum(values.values()) / n
            per_issue = sum((x - mean_x) * (values[x] - mean_y) for x in sizes) / sum((x - mean_x) ** 2 for x in sizes)
            fixed = mean_y - per_issue * mean_x
            worst = max(abs(values[x] - (fixed + per_issue * x)) for x in sizes)
            print(f"linear fit ({label}): {fixed:.3f} s fixed + {1000 * per_issue:.2f} ms per issue; largest deviation from the line {1000 * worst:.0f} ms")
    if 150 in results:
        verdict = "meets" if results[150] < TARGET_SECONDS else "MISSES"
        print(f"150 issues: {results[150]:.3f} s, {verdict} the {TARGET_SECONDS:.0f} s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
