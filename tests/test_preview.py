"""The live preview: a real server on 127.0.0.1 driven by real headless Chromium."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from newsletter.mail.preview import PreviewServer, preview_page
from process_support import listening_addresses, restore_ctrl_c

SUBJECT = "Practice Research Notes — October 2026: the alliance, empathy and therapist self-doubt"
RELOAD_TIMEOUT_MS = 15_000


@pytest.fixture
def server(folder: Path):
    srv = PreviewServer(folder, "2026-10", port=0).start()
    yield srv
    srv.stop()


def _state(url: str) -> dict:
    with urllib.request.urlopen(url + "state", timeout=5) as response:
        assert response.status == 200
        return json.load(response)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.browser
def test_page_shows_subject_both_widths_and_plain_text(server: PreviewServer, page) -> None:
    page.goto(server.url)
    expect(page.locator("#subject")).to_have_text(SUBJECT)
    expect(page.locator("#preheader")).to_contain_text("Three meta-analytic and longitudinal findings")
    expect(page.locator("#size")).to_have_text(re.compile(r"^HTML \d+\.\d KB$"))
    desktop, phone = page.locator("iframe#desktop"), page.locator("iframe#phone")
    assert desktop.bounding_box()["width"] == pytest.approx(802, abs=2)  # 800 + border
    assert phone.bounding_box()["width"] == pytest.approx(377, abs=2)
    # side by side: the phone frame starts to the right of the desktop frame, on the same row
    assert phone.bounding_box()["x"] > desktop.bounding_box()["x"] + 800
    assert phone.bounding_box()["y"] == pytest.approx(desktop.bounding_box()["y"], abs=2)
    for frame_id in ("desktop", "phone"):
        titles = page.frame_locator(f"iframe#{frame_id}").locator(".article-title")
        expect(titles.first).to_have_text("The Alliance Predicts Outcome Across Treatments")
    expect(page.locator("#text")).to_contain_text("Practice Implications")
    # the CSP lets the page's own script and styles through (a violation logs a console error)
    page.wait_for_timeout(700)  # at least one /state poll
    assert page.console_errors == []


@pytest.mark.browser
def test_page_reloads_by_itself_after_an_edit(server: PreviewServer, page, folder: Path) -> None:
    page.goto(server.url)
    expect(page.locator("#subject")).to_have_text(SUBJECT)
    page.evaluate("window.notReloadedYet = true")
    _replace(folder / "issues" / "2026-10.yaml", "This month I look at three studies", "This month I revisit three studies")
    phone = page.frame_locator("iframe#phone")
    expect(phone.get_by_text("This month I revisit three studies")).to_be_visible(timeout=RELOAD_TIMEOUT_MS)
    expect(page.locator("#text")).to_contain_text("This month I revisit three studies")
    assert page.evaluate("window.notReloadedYet") is None  # a real reload, not a patch


@pytest.mark.browser
def test_yaml_syntax_error_is_shown_and_fixing_it_recovers(server: PreviewServer, page, folder: Path) -> None:
    issue = folder / "issues" / "2026-10.yaml"
    good = issue.read_text(encoding="utf-8")
    page.goto(server.url)
    expect(page.locator("#subject")).to_have_text(SUBJECT)

    _replace(issue, 'subject: "Practice Research Notes', "subject: Notes: broken")
    errors = page.locator("#errors")
    expect(errors).to_contain_text("issues/2026-10.yaml:2:15: error: a ': ' here would start a new field in the middle of a value", timeout=RELOAD_TIMEOUT_MS)
    expect(page.locator("iframe")).to_have_count(0)
    assert "version" in _state(server.url)  # the server still answers

    issue.write_text(good, encoding="utf-8")
    expect(page.locator("#subject")).to_have_text(SUBJECT, timeout=RELOAD_TIMEOUT_MS)
    expect(page.locator("#errors")).to_have_count(0)
    expect(page.frame_locator("iframe#desktop").locator(".article-title").first).to_be_visible()


@pytest.mark.browser
def test_unknown_topic_and_template_error_are_shown(server: PreviewServer, page, folder: Path) -> None:
    page.goto(server.url)
    expect(page.locator("#subject")).to_have_text(SUBJECT)
    issue = folder / "issues" / "2026-10.yaml"
    _replace(issue, "topics: [Alliance and Therapeutic Relationship, Common Factors]", "topics: [Alliance, Common Factors]")
    expect(page.locator("#errors")).to_contain_text("did you mean 'Alliance and Therapeutic Relationship'?", timeout=RELOAD_TIMEOUT_MS)
    expect(page.locator("#errors")).to_contain_text("issues/2026-10.yaml:")
    _replace(issue, "topics: [Alliance, Common Factors]", "topics: [Alliance and Therapeutic Relationship, Common Factors]")
    expect(page.locator("#subject")).to_have_text(SUBJECT, timeout=RELOAD_TIMEOUT_MS)

    # a user template override appearing is noticed too (templates/ did not exist before)
    override = folder / "templates" / "email.txt.j2"
    override.parent.mkdir()
    override.write_text("{{ issue.month }}\n{{ no_such_variable }}\n", encoding="utf-8")
    expect(page.locator("#errors")).to_contain_text("email.txt.j2:2", timeout=RELOAD_TIMEOUT_MS)
    expect(page.locator("#errors")).to_contain_text("no_such_variable")
    override.unlink()
    expect(page.locator("#subject")).to_have_text(SUBJECT, timeout=RELOAD_TIMEOUT_MS)


def test_page_html_escapes_user_text(folder: Path) -> None:
    issue = folder / "issues" / "2026-10.yaml"
    _replace(issue, 'subject: "Practice Research Notes', 'subject: "<script>alert(1)</script> & Notes')
    page_html = preview_page(folder, "2026-10")
    assert "<script>alert(1)" not in page_html
    assert '<h1 id="subject">&lt;script&gt;alert(1)&lt;/script&gt; &amp; Notes' in page_html

    # an error message quoting the user's text is escaped as well
    _replace(issue, "topics: [Alliance and Therapeutic Relationship,", "topics: [<b>Allianz</b>,")
    page_html = preview_page(folder, "2026-10")
    assert "&lt;b&gt;Allianz&lt;/b&gt;" in page_html
    assert "<b>Allianz" not in page_html


def test_missing_issue_is_a_clear_error(folder: Path) -> None:
    from newsletter.errors import NewsletterError

    with pytest.raises(NewsletterError) as info:
        PreviewServer(folder, "2027-01", port=0)
    assert str(info.value).startswith("issues/2027-01.yaml: file not found")


def test_other_host_names_are_refused(server: PreviewServer) -> None:
    request = urllib.request.Request(server.url + "state", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 403


def test_cli_preview_binds_loopback_only_and_stops_quietly_on_ctrl_c(folder: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "preview", "2026-10", "--port", "0", "--folder", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore_ctrl_c,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("previewing issues/2026-10.yaml at http://127.0.0.1:"), first
        url = first.split(" at ", 1)[1].split()[0]
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1 in /proc's byte order, nothing else
        assert "version" in _state(url)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "preview stopped" in out
    assert "Traceback" not in err and err == ""


def test_check_warnings_are_listed_beside_the_email(folder: Path) -> None:
    _replace(folder / "issues" / "2026-10.yaml", "    topics: [Empathy, Therapist Factors]\n", "")
    page_html = preview_page(folder, "2026-10")
    assert '<section id="warnings"' in page_html
    assert "issues/2026-10.yaml:" in page_html and "&#x27;Therapist Empathy and Client Outcome&#x27; has no topics" in page_html
    assert '<iframe id="desktop"' in page_html and '<iframe id="phone"' in page_html  # a warning does not stop the preview


def test_size_near_and_over_gmails_clip_is_flagged() -> None:
    from newsletter.mail.preview import Snapshot, render_page
    from newsletter.mail.render import RenderedEmail

    def page_for(kilobytes: int) -> str:
        html = "<p>" + "x" * (kilobytes * 1024) + "</p>"
        return render_page(Snapshot("v1", "issues/2026-10.yaml", RenderedEmail("2026-10", "S", None, html, "t\n")))

    assert 'id="size" class="ok">HTML 20.0 KB<' in page_for(20)
    assert "close to Gmail&#x27;s 102 KB clip" in page_for(95)
    assert "over Gmail&#x27;s 102 KB limit: Gmail will clip it" in page_for(110)
