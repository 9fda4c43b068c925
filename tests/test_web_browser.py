"""The whole life of a reader through the real `newsletter serve` process, in headless Chromium:
sign up, confirm from the emailed link, receive an issue, leave by one-click (as Gmail does it)
or by the page's button, and be skipped by the next send."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.audience.store import SubscriberStore
from newsletter.publish.archive import archive_issue
from newsletter.publish.site import build_site
from serve_support import (
    Served, confirm_link, one_click, outbox_messages, serve_env, start_serve, unsubscribe_link, wait_for_messages,
)

pytestmark = pytest.mark.browser

READER = "ada.reader@example.org"
OTHER = "bob.reader@example.org"


def _send(folder: Path, month: str, *to: str) -> subprocess.CompletedProcess[str]:
    """`newsletter send MONTH --yes` with the endpoint's secret: to a CSV of ``to`` when given, else to the store's confirmed subscribers."""
    listing = ["--to", str(folder / "list.csv")] if to else []
    if to:
        (folder / "list.csv").write_text("email\n" + "\n".join(to) + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "newsletter", "send", month, "--yes", *listing, "--folder", str(folder)],
                            env=serve_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _issues_to(folder: Path, address: str, month_name: str) -> list:
    return [m for m in outbox_messages(folder, address) if month_name in str(m["Subject"])]


def _sign_up_in_the_browser(page, served: Served, address: str, name: str) -> None:
    page.goto(served.base + "subscribe")
    assert page.locator("h1").inner_text() == "Subscribe to Practice Research Notes"
    assert page.get_by_text("Yes, send me this newsletter by email").is_visible()
    assert not page.locator("#website").is_visible() or page.locator("#website").bounding_box()["x"] < 0, "the honeypot is out of sight"
    page.get_by_label("Email address").fill(address)
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Check your inbox"


def test_sign_up_confirm_receive_and_leave_by_one_click(page, served: Served) -> None:
    folder = served.folder
    _sign_up_in_the_browser(page, served, READER, "Ada Reader")
    (confirmation,) = wait_for_messages(folder, READER)
    page.goto(confirm_link(confirmation))
    assert page.locator("h1").inner_text() == "You are subscribed"
    assert page.console_errors == [], "a CSP violation or script error on the endpoint's pages"
    with SubscriberStore.open(folder) as store:
        assert store.status_of(READER) == "confirmed" and store.get(READER).name == "Ada Reader"
        store.subscribe(OTHER, "Bob", how="command", status="confirmed")

    _send(folder, "2026-10")
    (issue,) = _issues_to(folder, READER, "October 2026")
    assert issue["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = unsubscribe_link(issue)
    assert link.startswith(served.base + "unsubscribe?t=")
    assert "ada.reader" not in link.lower() and base64.urlsafe_b64encode(READER.encode()).decode().rstrip("=")[:12] not in link

    # Gmail's one-click: a POST to the List-Unsubscribe URL, urlencoded body, no cookies
    reply = one_click(served.base, link[len(served.base) - 1:])
    assert (reply.status, reply.title) == (200, "You are unsubscribed")
    with SubscriberStore.open(folder) as store:
        assert store.status_of(READER) == "unsubscribed"

    _send(folder, "2026-11")
    assert _issues_to(folder, READER, "November 2026") == [], "the next send skipped the reader who left"
    assert len(_issues_to(folder, OTHER, "November 2026")) == 1


def test_the_unsubscribe_page_button_in_the_browser(page, served: Served) -> None:
    """A reader of a CSV send leaves with the footer link's button; the store records it."""
    folder = served.folder
    _send(folder, "2026-10", OTHER)
    (issue,) = _issues_to(folder, OTHER, "October 2026")
    html = issue.get_body(("html",)).get_content()
    footer_link = unsubscribe_link(issue)
    assert f'href="{footer_link}"' in html, "the footer link is the same endpoint URL"
    page.goto(footer_link)
    assert page.locator("h1").inner_text() == "Unsubscribe"
    with SubscriberStore.open(folder) as store:
        assert store.status_of(OTHER) is None, "opening the page changes nothing"
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    assert page.console_errors == []
    with SubscriberStore.open(folder) as store:
        assert store.status_of(OTHER) == "unsubscribed"
        assert [e["detail"].get("via") for e in store.events(OTHER) if e["event"] == "unsubscribed"] == ["link"]


def test_pages_refuse_to_be_framed(page, served: Served) -> None:
    """frame-ancestors 'none': a page of another origin cannot show the form inside a frame."""
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text, timeout=15000) as refused:
        page.set_content(f'<iframe id="f" src="{served.base}subscribe"></iframe>')
    assert "violates the following Content Security Policy directive: \"frame-ancestors 'none'\"" in refused.value.text
    assert page.frame_locator("#f").get_by_text("Subscribe to Practice Research Notes").count() == 0, "the form is not shown framed"


def test_the_archive_served_at_the_root_works_under_its_csp(page, folder: Path) -> None:
    """The site's stylesheet, its filter script and its icon all load under the endpoint's CSP."""
    archive_issue(folder, "2026-10", report=None)
    build_site(folder)
    server = start_serve(folder)
    try:
        page.goto(server.base)
        box = page.get_by_label("Filter all 3 articles")
        box.fill("empathy")
        assert page.locator("#filter-status").inner_text() == "1 of 3 articles match."
        assert page.evaluate("() => getComputedStyle(document.querySelector('a.skip-link')).position") == "absolute", "site.css applied"
        page.get_by_role("link", name="October 2026", exact=True).first.click()
        page.wait_for_load_state()
        assert page.url == server.base + "2026-10/index.html"
        assert page.console_errors == []
    finally:
        assert "Traceback" not in server.stop()
