"""After a send the issue is archived and an existing site/ is rebuilt (unless --no-site), and the report says where."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def newsletter(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") or k == "NEWSLETTER_CACHE_DIR"}  # the cache: the session's (conftest)
    env["NEWSLETTER_SECRET"] = "a test secret that is long enough"
    return subprocess.run([sys.executable, "-m", "newsletter", "-C", str(folder), *args], env=env, input="", capture_output=True, text=True, timeout=120)


def test_send_rebuilds_an_existing_site_and_says_where(folder: Path) -> None:
    assert newsletter(folder, "site").returncode == 0
    assert not (folder / "site" / "2026-11").exists()  # nothing archived yet
    proc = newsletter(folder, "send", "2026-11", "--to", "subscribers.example.csv", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "web archive rebuilt: site/index.html (1 issue(s)); publish the site/ folder at https://notes.example.org/archive/"
    page = (folder / "site" / "2026-11" / "index.html").read_text(encoding="utf-8")
    assert "November 2026" in page
    assert 'href="2026-11/' in (folder / "site" / "index.html").read_text(encoding="utf-8")


def test_no_site_leaves_it_alone(folder: Path) -> None:
    assert newsletter(folder, "site").returncode == 0
    before = (folder / "site" / "index.html").read_bytes()
    proc = newsletter(folder, "send", "2026-10", "--to", "subscribers.example.csv", "--yes", "--no-site")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "site/ not rebuilt (--no-site); `newsletter site` rebuilds it"
    assert (folder / "archive" / "2026-10").is_dir()
    assert (folder / "site" / "index.html").read_bytes() == before and not (folder / "site" / "2026-10").exists()


def test_without_a_site_it_points_at_the_command(folder: Path) -> None:
    proc = newsletter(folder, "send", "2026-11", "--to", "subscribers.example.csv", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "no web archive yet: `newsletter site` writes one into site/"
    assert not (folder / "site").exists()
