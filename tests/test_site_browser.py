"""The web archive in real headless Chromium, opened from disk (file://): navigation, phone layout, filter, no-JS."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.publish.archive import archive_issue
from newsletter.publish.site import build_site

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
VISIBLE_ENTRIES_JS = "() => [...document.querySelectorAll('[data-entry]')].filter(e => e.offsetParent !== null).map(e => e.dataset.key)"


@pytest.fixture
def site(folder: Path) -> Path:
    """A site from the two example issues, one summary carrying a <script> and a very long DOI."""
    issue = folder / "issues" / "2026-10.yaml"
    text = issue.read_text(encoding="utf-8")
    text = text.replace("      The working alliance is usually described", "      <script>window.injected = 1; console.error('injected')</script> The working alliance is usually described")
    text = text.replace("doi: 10.1002/cpp.1977", "doi: 10.1002/cpp.1977.AnExceptionallyLongSuffixWithoutAnyBreakOpportunityThatWouldOverflowAPhone")
    issue.write_text(text, encoding="utf-8")
    for month in ("2026-10", "2026-11"):
        archive_issue(folder, month, report=None)
    build_site(folder)
    return folder / "site"


def no_overflow(page) -> None:
    assert page.evaluate(OVERFLOW_JS) <= 0, f"horizontal overflow on {page.url}"


def test_index_to_topic_to_issue_by_clicking(page, site: Path) -> None:
    page.set_viewport_size(PHONE)
    page.goto((site / "index.html").as_uri())
    assert page.locator("h1").inner_text() == "Practice Research Notes"
    no_overflow(page)
    # a topic link in an article's line of topics
    page.locator("article .meta a", has_text="Empathy").first.click()
    page.wait_for_load_state()
    assert page.url.endswith("/site/topics/empathy.html")
    assert page.locator("h1").inner_text() == "Empathy"
    assert page.locator("[data-entry]").count() == 1
    no_overflow(page)
    # the month heading links to the issue page
    page.get_by_role("link", name="October 2026", exact=True).click()
    page.wait_for_load_state()
    assert page.url.endswith("/site/2026-10/index.html")
    assert page.locator("h1").inner_text() == "October 2026"
    assert page.locator("[data-entry]").count() == 3
    no_overflow(page)
    # the skip link targets main, and the site navigation works from a sub-folder
    assert page.locator("a.skip-link").get_attribute("href") == "#main"
    page.get_by_role("navigation", name="Site").get_by_role("link", name="Topics").click()
    page.wait_for_load_state()
    assert page.url.endswith("/site/topics/index.html")
    no_overflow(page)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_every_page_fits_a_phone(page, site: Path) -> None:
    page.set_viewport_size(PHONE)
    for path in sorted(site.rglob("*.html")):
        page.goto(path.as_uri())
        no_overflow(page)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_script_in_a_summary_is_shown_as_text(page, site: Path) -> None:
    page.goto((site / "2026-10" / "index.html").as_uri())
    assert page.evaluate("() => window.injected") is None
    assert "<script>window.injected = 1;" in page.locator("article").first.inner_text()
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_filter_narrows_the_list(page, site: Path) -> None:
    page.set_viewport_size(PHONE)
    page.goto((site / "index.html").as_uri())
    box = page.get_by_label("Filter all 6 articles")
    assert box.is_visible()
    assert len(page.evaluate(VISIBLE_ENTRIES_JS)) == 6
    box.fill("empathy")
    shown = page.evaluate(VISIBLE_ENTRIES_JS)
    assert shown == ["2026-10/therapist-empathy-and-client-outcome"]
    assert page.locator("#filter-status").inner_text() == "1 of 6 articles match."
    # a month with no match disappears with its heading
    assert not page.locator("#m2026-11").is_visible()
    box.fill("alliance meta-analysis")
    assert sorted(page.evaluate(VISIBLE_ENTRIES_JS)) == [
        "2026-10/the-alliance-predicts-outcome-across-treatments",
        "2026-11/repairing-ruptures-in-the-therapeutic-alliance",
    ]
    box.fill("FLUCKIGER")  # case and accents folded
    assert page.evaluate(VISIBLE_ENTRIES_JS) == ["2026-10/the-alliance-predicts-outcome-across-treatments"]
    box.fill("no such words anywhere")
    assert page.evaluate(VISIBLE_ENTRIES_JS) == []
    assert page.locator("#filter-status").inner_text().startswith("No articles match")
    box.fill("")
    assert len(page.evaluate(VISIBLE_ENTRIES_JS)) == 6
    no_overflow(page)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_filter_on_a_topic_page(page, site: Path) -> None:
    page.goto((site / "topics" / "therapist-factors.html").as_uri())
    assert len(page.evaluate(VISIBLE_ENTRIES_JS)) == 2
    page.get_by_label("Filter these articles").fill("self-doubt")
    assert page.evaluate(VISIBLE_ENTRIES_JS) == ["2026-10/love-yourself-as-a-person-doubt-yourself-as-a-therapist"]


def test_without_javascript_every_article_is_visible(browser, site: Path) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    try:
        page = context.new_page()
        page.goto((site / "index.html").as_uri())
        entries = page.locator("[data-entry]")
        assert entries.count() == 6
        for i in range(6):
            assert entries.nth(i).is_visible()
        assert not page.locator("form.filter").is_visible()  # no dead control without its script
        assert page.evaluate("() => window.injected") is None
        no_overflow(page)
        page.locator("article .meta a", has_text="Therapist Factors").first.click()
        page.wait_for_load_state()
        assert page.url.endswith("/topics/therapist-factors.html")
        assert page.locator("[data-entry]").count() == 2
    finally:
        context.close()


def test_served_from_a_sub_path_as_the_view_in_browser_link(page, site: Path, tmp_path: Path) -> None:
    """<archive_url>/YYYY-MM/ (a folder URL, as in every email) under a sub-path of a real HTTP server."""
    import functools
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    www = tmp_path / "www"
    shutil.copytree(site, www / "notes" / "archive")
    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(www))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
        base = f"http://127.0.0.1:{server.server_address[1]}/notes/archive/"
        page.goto(base + "2026-11/")
        assert page.locator("h1").inner_text() == "November 2026"
        # the stylesheet loaded through ../assets/: the body is centred with a max width
        assert page.evaluate("() => getComputedStyle(document.body).maxWidth") != "none"
        page.get_by_role("link", name="Previous issue: October 2026").click()
        page.wait_for_load_state()
        assert page.url == base + "2026-10/index.html"
        page.get_by_role("navigation", name="Site").get_by_role("link", name="All issues").click()
        page.wait_for_load_state()
        assert page.url == base + "index.html"
        page.get_by_label("Filter all 6 articles").fill("rupture")
        assert page.evaluate(VISIBLE_ENTRIES_JS) == ["2026-11/repairing-ruptures-in-the-therapeutic-alliance"]
        assert failed == []
        assert page.console_errors == []  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
