"""site.py: pages, counts, escaping, relative links, Atom feeds, drafts, atomic replacement."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from newsletter.publish.archive import archive_issue, check_archived_issue
from newsletter.cli import main
from newsletter.content.config import load_config
from newsletter.content.model import slugify

ATOM = "{http://www.w3.org/2005/Atom}"


class PageParser(HTMLParser):
    """Collects data-key attributes, links, ids, heading levels and the text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.headings: list[int] = []
        self.lang: str | None = None
        self.tags: Counter[str] = Counter()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] += 1
        if tag == "html":
            self.lang = a.get("lang")
        if "data-key" in a and a["data-key"]:
            self.keys.append(a["data-key"])
        if a.get("id"):
            self.ids.add(a["id"] or "")
        for name in ("href", "src"):
            if a.get(name):
                self.links.append(a[name] or "")
        if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
            self.headings.append(int(tag[1]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def run(folder: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--folder", str(folder)], catch_exceptions=False)


@pytest.fixture
def archived(folder: Path) -> Path:
    """The example folder with both issues archived."""
    for month in ("2026-10", "2026-11"):
        archive_issue(folder, month, report={"month": month, "subject": "s", "sender": "maildir", "started": f"{month}-05T09:00:00Z",
                                             "finished": f"{month}-05T09:03:00Z", "recipients": 2,
                                             "counts": {"sent": 2, "failed": 0, "deferred": 0, "uncertain": 0, "pending": 0}})
    return folder


def archived_articles(folder: Path):
    config = load_config(folder)
    for month in ("2026-10", "2026-11"):
        issue = check_archived_issue(folder, month, config).issue
        assert issue is not None
        for article in issue.articles:
            yield month, article


def test_site_command_writes_the_pages(archived: Path) -> None:
    result = run(archived, "site")
    assert result.exit_code == 0, result.output
    assert "2 archived issue(s), 6 article(s)" in result.output
    site = archived / "site"
    for page in ("index.html", "2026-10/index.html", "2026-11/index.html", "topics/index.html", "types/index.html",
                 "topics/empathy.html", "types/meta-analysis.html", "feed.xml", "topics/empathy.xml", "assets/site.css", "assets/filter.js"):
        assert (site / page).is_file(), page
    # only topics with articles get a page
    assert not (site / "topics" / "placebo-effect.html").exists()
    assert not (site / "types" / "case-study.html").exists()
    # nothing left beside the site
    assert sorted(p.name for p in archived.iterdir() if p.name.startswith(".site")) == []


def test_every_article_once_on_index_and_on_each_of_its_topic_and_type_pages(archived: Path) -> None:
    run(archived, "site")
    site = archived / "site"
    index = Counter(parse(site / "index.html").keys)
    topic_pages = {p.stem: Counter(parse(p).keys) for p in (site / "topics").glob("*.html") if p.stem != "index"}
    type_pages = {p.stem: Counter(parse(p).keys) for p in (site / "types").glob("*.html") if p.stem != "index"}
    articles = list(archived_articles(archived))
    assert len(articles) == 6 and sum(index.values()) == 6
    for month, article in articles:
        key = f"{month}/{article.slug}"
        assert index[key] == 1, key
        assert Counter(parse(site / month / "index.html").keys)[key] == 1
        for topic_slug, keys in topic_pages.items():
            expected = 1 if topic_slug in {slugify(t) for t in article.topics} else 0
            assert keys[key] == expected, (key, topic_slug)
        for type_slug, keys in type_pages.items():
            assert keys[key] == (1 if type_slug == slugify(article.research_type or "") else 0)


def test_index_content_and_counts(archived: Path) -> None:
    run(archived, "site")
    site = archived / "site"
    html = (site / "index.html").read_text(encoding="utf-8")
    # newest intro first, months newest first
    assert html.index("This month I write about what happens when therapy is not going well") < html.index("November 2026</a></h3>") < html.index("October 2026</a></h3>")
    # the DOI is a link
    assert '<a href="https://doi.org/10.1037/pst0000175">' in html
    assert "Practice Implications" in html
    topics_index = (site / "topics" / "index.html").read_text(encoding="utf-8")
    assert '<a href="therapist-factors.html">Therapist Factors</a> <span class="count">2 articles in 1 issue</span>' in topics_index
    assert '<a href="alliance-and-therapeutic-relationship.html">Alliance and Therapeutic Relationship</a> <span class="count">2 articles in 2 issues</span>' in topics_index
    assert "Placebo Effect" not in topics_index


def test_pages_are_accessible_html(archived: Path) -> None:
    run(archived, "site")
    for page in (archived / "site").rglob("*.html"):
        parsed = parse(page)
        assert parsed.lang == "en", page
        assert parsed.headings.count(1) == 1 and parsed.headings[0] == 1, page
        for before, after in zip(parsed.headings, parsed.headings[1:]):
            assert after <= before + 1, (page, parsed.headings)
        assert parsed.tags["main"] == 1 and parsed.tags["header"] == 1 and parsed.tags["footer"] == 1
        assert "#main" in parsed.links and "main" in parsed.ids  # skip link and its target


def test_links_are_relative_and_resolve(archived: Path) -> None:
    # a draft whose topic no archived article has: its page exists, but no feed to link to
    draft = (archived / "issues" / "2026-11.yaml").read_text(encoding="utf-8").replace("month: 2026-11", "month: 2026-12")
    (archived / "issues" / "2026-12.yaml").write_text(draft.replace("[Alliance and Therapeutic Relationship, Training]", "[Placebo Effect]"), encoding="utf-8")
    run(archived, "site", "--include-drafts")
    assert (archived / "site" / "topics" / "placebo-effect.html").is_file()
    assert not (archived / "site" / "topics" / "placebo-effect.xml").exists()
    site = archived / "site"
    for page in site.rglob("*.html"):
        for link in parse(page).links:
            parts = urlsplit(link)
            if link == "data:,":  # the empty favicon
                continue
            if parts.scheme:
                assert parts.scheme == "https" and parts.netloc == "doi.org", (page, link)
                continue
            assert not link.startswith("/"), (page, link)
            target = site if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if parts.path:
                assert target.is_file(), (page, link)
                assert site.resolve() in target.parents
            if parts.fragment:
                assert parts.fragment in parse(target if parts.path else page).ids, (page, link)


def test_script_in_content_is_escaped_everywhere(folder: Path) -> None:
    issue = folder / "issues" / "2026-10.yaml"
    text = issue.read_text(encoding="utf-8")
    text = text.replace("  - title: Therapist Empathy and Client Outcome", '  - title: "Therapist <b>Empathy</b> & Outcome"')
    text = text.replace("      The working alliance is usually described", "      <script>alert('x')</script> The working alliance is usually described")
    issue.write_text(text, encoding="utf-8")
    archive_issue(folder, "2026-10", report=None)
    run(folder, "site")
    site = folder / "site"
    for page in ("index.html", "2026-10/index.html", "topics/common-factors.html", "topics/empathy.html"):
        html = (site / page).read_text(encoding="utf-8")
        assert "<script>alert" not in html and "<b>Empathy" not in html, page
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; The working alliance" in index
    assert "Therapist &lt;b&gt;Empathy&lt;/b&gt; &amp; Outcome" in index
    # feeds carry the HTML escaped once more; a reader shows the tag as text
    feed = ET.parse(site / "topics" / "common-factors.xml").getroot()
    content = feed.find(f"{ATOM}entry/{ATOM}content")
    assert content is not None and content.text is not None
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in content.text
    empathy = ET.parse(site / "topics" / "empathy.xml").getroot()
    assert empathy.find(f"{ATOM}entry/{ATOM}title").text == "Therapist <b>Empathy</b> & Outcome"  # type: ignore[union-attr]


def test_feeds_are_atom(archived: Path) -> None:
    run(archived, "site")
    site = archived / "site"
    feeds = [site / "feed.xml", *sorted((site / "topics").glob("*.xml"))]
    assert len(feeds) == 1 + len([p for p in (site / "topics").glob("*.html") if p.stem != "index"])
    for path in feeds:
        root = ET.parse(path).getroot()
        assert root.tag == f"{ATOM}feed", path
        for child in ("id", "updated", "title"):
            assert (root.findtext(f"{ATOM}{child}") or "").strip(), (path, child)
        assert root.findtext(f"{ATOM}author/{ATOM}name") == "Åsa Rønning, Practice Research Notes"
        assert root.find(f"{ATOM}link[@rel='self']").get("href").startswith("https://notes.example.org/archive/")  # type: ignore[union-attr]
        entries = root.findall(f"{ATOM}entry")
        assert entries, path
        ids = [e.findtext(f"{ATOM}id") for e in entries]
        assert len(set(ids)) == len(ids)
        for entry in entries:
            assert (entry.findtext(f"{ATOM}title") or "").strip()
            assert (entry.findtext(f"{ATOM}updated") or "").endswith("Z")
            link = entry.find(f"{ATOM}link[@rel='alternate']")
            assert link is not None and link.get("href", "").startswith("https://notes.example.org/archive/2026-1")
    main_feed = ET.parse(site / "feed.xml").getroot()
    assert [e.findtext(f"{ATOM}id") for e in main_feed.findall(f"{ATOM}entry")] == [
        "https://notes.example.org/archive/2026-11/", "https://notes.example.org/archive/2026-10/"]
    assert main_feed.findtext(f"{ATOM}updated") == "2026-11-05T09:03:00Z"
    empathy = ET.parse(site / "topics" / "empathy.xml").getroot()
    assert [e.findtext(f"{ATOM}title") for e in empathy.findall(f"{ATOM}entry")] == ["Therapist Empathy and Client Outcome"]


def test_drafts_only_with_the_flag_and_marked(archived: Path) -> None:
    (archived / "issues" / "2026-12.yaml").write_text(
        (archived / "issues" / "2026-11.yaml").read_text(encoding="utf-8").replace("month: 2026-11", "month: 2026-12"), encoding="utf-8")
    (archived / "issues" / "2027-01.yaml").write_text("month: 2027-01\n", encoding="utf-8")
    run(archived, "site")
    assert not (archived / "site" / "2026-12").exists()
    result = run(archived, "site", "--include-drafts")
    assert result.exit_code == 0
    assert "2 archived issue(s) and 1 draft(s)" in result.output
    assert "issues/2027-01.yaml: warning: draft left out of the site: 1 error(s); run `newsletter check 2027-01`" in result.stderr
    page = (archived / "site" / "2026-12" / "index.html").read_text(encoding="utf-8")
    assert "Draft, not sent" in page
    index = (archived / "site" / "index.html").read_text(encoding="utf-8")
    assert 'December 2026</a> <span class="badge">Draft, not sent</span></h3>' in index
    # the newest *sent* intro stays at the top; drafts never reach feed readers
    assert index.index('<a href="2026-11/index.html">November 2026</a></p>') < index.index("December 2026</a> <span")
    assert "2026-12" not in (archived / "site" / "feed.xml").read_text(encoding="utf-8")


def test_site_replaces_its_own_output_but_not_a_foreign_folder(archived: Path) -> None:
    run(archived, "site")
    (archived / "site" / "stale.html").write_text("old", encoding="utf-8")
    assert run(archived, "site").exit_code == 0
    assert not (archived / "site" / "stale.html").exists()
    foreign = archived / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    result = run(archived, "site", "--out", str(foreign))
    assert result.exit_code == 1
    assert "was not written by `newsletter site`" in result.stderr and "choose another --out folder" in result.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_an_archived_issue_that_no_longer_validates_is_reported(archived: Path) -> None:
    config = archived / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("  - Empathy\n", ""), encoding="utf-8")
    result = run(archived, "site")
    assert result.exit_code == 1
    assert "archive/2026-10/issue.yaml:" in result.stderr and "unknown topic 'Empathy'" in result.stderr
    assert "Traceback" not in result.output
    assert not (archived / "site").exists()


def test_empty_archive_gives_a_working_site(folder: Path) -> None:
    result = run(folder, "site")
    assert result.exit_code == 0
    assert "No issues have been archived yet." in (folder / "site" / "index.html").read_text(encoding="utf-8")


def test_site_as_a_real_process(archived: Path, tmp_path: Path) -> None:
    out = tmp_path / "public" / "archive"
    done = subprocess.run([sys.executable, "-m", "newsletter", "site", "--out", str(out), "-C", str(archived)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (out / "2026-11" / "index.html").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["archive"]


def test_user_templates_override_site_templates(archived: Path) -> None:
    (archived / "templates" / "site").mkdir(parents=True)
    (archived / "templates" / "site" / "site.css").write_text("body { color: #123456; }\n", encoding="utf-8")
    (archived / "templates" / "site" / "issue.html.j2").write_text(
        '{% extends "site/base.html.j2" %}{% block main %}<h1>Custom {{ item.month_name }}</h1>{% endblock %}\n', encoding="utf-8")
    assert run(archived, "site").exit_code == 0
    assert "<h1>Custom October 2026</h1>" in (archived / "site" / "2026-10" / "index.html").read_text(encoding="utf-8")
    assert (archived / "site" / "assets" / "site.css").read_text(encoding="utf-8") == "body { color: #123456; }\n"
    assert "Skip to content" in (archived / "site" / "2026-10" / "index.html").read_text(encoding="utf-8")  # the default frame


def test_a_typo_in_a_user_site_template_names_file_and_line(archived: Path) -> None:
    (archived / "templates" / "site").mkdir(parents=True)
    (archived / "templates" / "site" / "issue.html.j2").write_text(
        '{% extends "site/base.html.j2" %}\n{% block main %}\n<h1>{{ item.mnth_name }}</h1>\n{% endblock %}\n', encoding="utf-8")
    result = run(archived, "site")
    assert result.exit_code == 1
    assert "issue.html.j2:3: template error:" in result.stderr and "mnth_name" in result.stderr
    assert "Traceback" not in result.output
    assert not (archived / "site").exists()
    assert sorted(p.name for p in archived.iterdir() if p.name.startswith(".site")) == []


def test_a_very_long_topic_gets_a_short_unique_file_name(folder: Path) -> None:
    """Issue 10 item 8: a topic over 250 characters made a file name too long and crashed `site`."""
    long_a, long_b = "Topic " + "a" * 300, "Topic " + "a" * 299 + "b"
    config = folder / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("  - Empathy\n", f"  - Empathy\n  - {long_a}\n  - {long_b}\n", 1), encoding="utf-8")
    issue = folder / "issues" / "2026-11.yaml"
    text = issue.read_text(encoding="utf-8")
    first = text.index("    topics: [")
    text = text[:first] + f"    topics: [{long_a}, {long_b}]\n" + text[text.index("\n", first) + 1:]
    issue.write_text(text, encoding="utf-8")
    result = run(folder, "site", "--include-drafts")
    assert result.exit_code == 0, result.output
    pages = sorted(p.name for p in (folder / "site" / "topics").glob("topic-a*.html"))
    assert len(pages) == 2 and all(len(name) == len("x" * 100 + ".html") for name in pages), pages
    assert long_a in (folder / "site" / "topics" / pages[0]).read_text(encoding="utf-8") + (folder / "site" / "topics" / pages[1]).read_text(encoding="utf-8")


def test_month_0000_is_refused_by_check(folder: Path) -> None:
    """Issue 10 item 8: month 0000-01 passed `check` and crashed `site` (datetime has no year 0)."""
    issue = folder / "issues" / "2026-11.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("month: 2026-11", "month: 0000-01"), encoding="utf-8")
    issue.rename(folder / "issues" / "0000-01.yaml")
    result = run(folder, "check", "issues/0000-01.yaml")
    assert result.exit_code == 1
    assert "issues/0000-01.yaml:1:8: error: month '0000-01': the year must be from 1900 to 2999" in result.output
    result = run(folder, "site", "--include-drafts")
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
