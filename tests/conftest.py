"""Shared fixtures: a newsletter folder in tmp_path, and a real headless Chromium."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The user's cache (newsletter.mail.usercache) is a fresh folder for each test session, never the
# user's own: set here, before any test, so that child processes inherit it too.
_CACHE = tempfile.mkdtemp(prefix="newsletter-test-cache-")
os.environ["NEWSLETTER_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the repository's example newsletter folder (config + issues + subscribers)."""
    target = tmp_path / "letter"
    target.mkdir()
    shutil.copy(ROOT / "newsletter.yaml", target / "newsletter.yaml")
    shutil.copytree(ROOT / "issues", target / "issues")
    shutil.copy(ROOT / "subscribers.example.csv", target / "subscribers.example.csv")
    return target


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (browser downloads are impossible here)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed; run scripts/test, which installs it")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh page; console errors are collected in page.console_errors."""
    context = browser.new_context()
    new_page = context.new_page()
    new_page.console_errors = []  # type: ignore[attr-defined]
    new_page.on("console", lambda m: m.type == "error" and new_page.console_errors.append(m.text))
    new_page.on("pageerror", lambda e: new_page.console_errors.append(str(e)))
    yield new_page
    context.close()


@pytest.fixture
def served(folder: Path):
    """`newsletter serve` running on a free loopback port for the example folder; stopped afterwards,
    and the test fails if its log shows a traceback."""
    from serve_support import start_serve

    server = start_serve(folder)
    yield server
    log = server.stop()
    assert "Traceback" not in log, log
