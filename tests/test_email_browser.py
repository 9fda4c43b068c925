"""The built email in real headless Chromium: phone and desktop layout, escaping, content."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from newsletter.mail.build import render_issue
from newsletter.content.config import load_config

pytestmark = pytest.mark.browser

PHONE, DESKTOP = 375, 1280

# Elements whose right edge passes the viewport, ignoring ones clipped by an
# ancestor with overflow hidden (MJML's Outlook-only blocks) and invisible ones.
OVERFLOWING = """
(width) => {
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > width + 0.5) out.push(el.tagName + "." + el.className + " right=" + box.right);
  }
  return out;
}
"""


def _open(page, html: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.set_content(html, wait_until="load")


def _masthead_boxes(page) -> tuple[dict, dict]:
    """Bounding boxes of the two masthead columns (the MJML column divs around name and month)."""
    name = page.locator("div[class*='mj-column']", has=page.locator(".masthead-name"))
    month = page.locator("div[class*='mj-column']", has=page.locator(".masthead-month"))
    return name.bounding_box(), month.bounding_box()


@pytest.fixture
def built(folder: Path):
    loaded, rendered, _eml = render_issue(folder, "2026-10")
    return loaded.issue, rendered


def test_no_horizontal_overflow_on_a_phone(page, built) -> None:
    _issue, rendered = built
    _open(page, rendered.html, PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
    assert page.evaluate(OVERFLOWING, PHONE) == []


def test_phone_media_rules_survive_inlining(page, built) -> None:
    _issue, rendered = built
    _open(page, rendered.html, PHONE)
    title = page.locator(".article-title").first
    assert title.evaluate("e => getComputedStyle(e).fontSize") == "20px"
    name, month = _masthead_boxes(page)
    assert month["y"] >= name["y"] + name["height"] - 1, "masthead columns should stack on a phone"
    assert abs(month["x"] - name["x"]) < 1 and month["width"] == pytest.approx(name["width"], abs=1)

    _open(page, rendered.html, DESKTOP)
    assert title.evaluate("e => getComputedStyle(e).fontSize") == "24px"
    name, month = _masthead_boxes(page)
    assert month["x"] >= name["x"] + name["width"] - 1, "masthead columns should sit side by side on a desktop"
    assert month["y"] == pytest.approx(name["y"], abs=1)


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_intro_articles_and_footer_are_visible(page, built, folder: Path, width: int) -> None:
    issue, rendered = built
    _open(page, rendered.html, width)
    expect(page.get_by_role("heading", name="This month…")).to_be_visible()
    expect(page.get_by_text(issue.intro_paragraphs[0][:60])).to_be_visible()
    titles = page.locator(".article-title")
    expect(titles).to_have_text([article.title for article in issue.articles])
    for i in range(len(issue.articles)):
        expect(titles.nth(i)).to_be_visible()
    config = load_config(folder)
    unsubscribe = page.locator(".footer").get_by_role("link", name="Unsubscribe", exact=True)
    expect(unsubscribe).to_be_visible()
    expect(unsubscribe).to_have_attribute("href", config.unsubscribe_url)
    expect(page.locator(".footer")).to_contain_text(config.postal_address.strip().replace("\n", ", "))
    expect(page.get_by_text(config.postal_address.strip().splitlines()[1])).to_be_visible()
    view = page.locator("a", has_text="Read this issue and past issues online")
    expect(view).to_be_visible()
    expect(view).to_have_attribute("href", config.issue_url(issue.month))


def test_script_in_a_summary_shows_as_text(page, folder: Path) -> None:
    path = folder / "issues" / "2026-10.yaml"
    text = path.read_text(encoding="utf-8")
    marker = "      The working alliance is usually described"
    assert marker in text
    path.write_text(text.replace(marker, "      Beware <script>alert(1)</script> here.\n\n" + marker, 1), encoding="utf-8")
    _loaded, rendered, _eml = render_issue(folder, "2026-10")

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _open(page, rendered.html, DESKTOP)
    expect(page.get_by_text("Beware <script>alert(1)</script> here.")).to_be_visible()
    page.wait_for_timeout(200)
    assert dialogs == []
    assert page.locator("script").count() == 0
    assert page.console_errors == []
