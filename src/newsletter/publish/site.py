"""``newsletter site``: a static web archive of the archived issues, by month, topic and research type.

Reads the frozen ``archive/YYYY-MM/issue.yaml`` files (and, with drafts, the
unsent ``issues/*.yaml``), renders Jinja templates from ``templates/site/``
(user overrides first, like the email templates) and writes Atom feeds with
xml.etree.  Every link is relative, so the folder works from disk and from any
sub-path; feed links are absolute (feed readers need them) and built from
``archive_url``.  The site is built in a temporary folder beside the target
and swapped in at once.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable
from xml.etree import ElementTree as ET

import jinja2
from markupsafe import Markup, escape

from newsletter.publish import DEFAULT_SITE_DIR
from newsletter.publish.archive import archived_months, archived_state, check_archived_issue
from newsletter.atomicdir import replace_directory, temp_dir_beside
from newsletter.content.config import load_config
from newsletter.errors import NewsletterError, Problem, ValidationError
from newsletter.content.load import check_issue, display_path, issue_paths
from newsletter.content.model import Article, Config, Issue, slugify
from newsletter.mail.render import cite_html, make_environment, render_template

MARKER = ".newsletter-site"
ATOM_NS = "http://www.w3.org/2005/Atom"
STATIC_FILES = ("site/site.css", "site/filter.js")


@dataclass(frozen=True)
class Entry:
    """One article as placed on the site: its issue, a slug unique within the issue, and its key."""

    issue: "SiteIssue"
    article: Article
    slug: str

    @property
    def key(self) -> str:
        return f"{self.issue.month}/{self.slug}"

    # An article is shown on up to six pages; escape its text once.
    @cached_property
    def summary_html(self) -> Markup:
        return paragraphs_html(self.article.summary_paragraphs)

    @cached_property
    def implications_html(self) -> Markup:
        return paragraphs_html(self.article.implication_paragraphs)

    @cached_property
    def citation_html(self) -> Markup | None:
        return cite_html(self.article.citation) if self.article.citation else None


@dataclass
class SiteIssue:
    """An issue on the site: archived (with its send time) or a draft."""

    issue: Issue
    draft: bool
    updated: datetime
    entries: list[Entry] = field(default_factory=list)

    @property
    def month(self) -> str:
        return self.issue.month

    @property
    def year(self) -> int:
        return self.issue.year

    @property
    def month_name(self) -> str:
        return self.issue.month_name


@dataclass(frozen=True)
class Group:
    """A topic or research type page: its name, slug and entries (newest first)."""

    kind: str  # "topic" or "type"
    name: str
    slug: str
    entries: tuple[Entry, ...]

    @property
    def issue_count(self) -> int:
        return len({e.issue.month for e in self.entries})

    @property
    def has_feed(self) -> bool:
        """Topic feeds carry archived articles only; a topic seen only in drafts has none."""
        return self.kind == "topic" and any(not e.issue.draft for e in self.entries)


@dataclass(frozen=True)
class SiteResult:
    """What ``build_site`` wrote."""

    directory: Path
    issues: int
    drafts: int
    articles: int
    pages: int
    warnings: list[Problem]


def build_site(folder: Path, out: Path | None = None, *, include_drafts: bool = False) -> SiteResult:
    """Write the whole site into ``out`` (default site/) atomically; see the module docstring."""
    config = load_config(folder)
    target = (out if out is not None else folder / DEFAULT_SITE_DIR)
    _check_target(target, folder)
    issues, warnings = collect_issues(folder, config, include_drafts=include_drafts)
    env = _environment(folder)
    tmp = temp_dir_beside(target)
    try:
        pages = _write_site(tmp, env, config, issues)
        (tmp / MARKER).write_text("Written by `newsletter site`; the whole folder is replaced on every run.\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, target)
    return SiteResult(
        directory=target,
        issues=sum(1 for i in issues if not i.draft),
        drafts=sum(1 for i in issues if i.draft),
        articles=sum(len(i.entries) for i in issues),
        pages=pages,
        warnings=warnings,
    )


def collect_issues(folder: Path, config: Config, *, include_drafts: bool) -> tuple[list[SiteIssue], list[Problem]]:
    """Archived issues (every problem reported at once), plus valid drafts; newest first."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    issues: list[SiteIssue] = []
    archived = archived_months(folder)
    for month in archived:
        loaded = check_archived_issue(folder, month, config)
        if loaded.errors or loaded.issue is None:
            problems.extend(loaded.errors)
            continue
        state = archived_state(folder, month)
        report = state.report if state else None
        issues.append(_site_issue(loaded.issue, draft=False, when=_report_time(report)))
    if problems:
        problems.append(Problem("newsletter.yaml", None, None, "archived issues must still validate against newsletter.yaml; if a topic or research type was renamed, keep the old name in the list", "warning"))
        raise ValidationError(problems)
    if include_drafts:
        done = set(archived)
        for path in issue_paths(folder):
            if path.stem in done:
                continue
            loaded = check_issue(path, config, folder, placeholders="warning")  # a draft may still be one
            if loaded.errors or loaded.issue is None:
                warnings.append(Problem(loaded.display, None, None, f"draft left out of the site: {len(loaded.errors)} error(s); run `newsletter check {path.stem}`", "warning"))
                continue
            issues.append(_site_issue(loaded.issue, draft=True, when=None))
    issues.sort(key=lambda i: i.month, reverse=True)
    return issues, warnings


def _site_issue(issue: Issue, *, draft: bool, when: datetime | None) -> SiteIssue:
    year, month = int(issue.month[:4]), int(issue.month[5:7])
    site_issue = SiteIssue(issue, draft, when or datetime(year, month, 1, tzinfo=timezone.utc))
    used: set[str] = set()
    for article in issue.articles:
        slug, n = article.slug, 2
        while slug in used:
            slug, n = f"{article.slug}-{n}", n + 1
        used.add(slug)
        site_issue.entries.append(Entry(site_issue, article, slug))
    return site_issue


def _report_time(report: dict | None) -> datetime | None:
    """When the issue went out: the report's finished time, else when it was archived."""
    for key in ("finished", "archived"):
        value = (report or {}).get(key)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return None


def groups(issues: list[SiteIssue], names: Iterable[str], kind: str) -> list[Group]:
    """Topic or research-type groups that have articles, in vocabulary order, slugs unique."""
    by_name: dict[str, list[Entry]] = defaultdict(list)
    for site_issue in issues:
        for entry in site_issue.entries:
            keys = entry.article.topics if kind == "topic" else ((entry.article.research_type,) if entry.article.research_type else ())
            for name in keys:
                by_name[name].append(entry)
    order = list(dict.fromkeys([*names, *sorted(by_name)]))
    result: list[Group] = []
    used: set[str] = set()
    for name in order:
        if not by_name.get(name):
            continue
        slug, n = slugify(name), 2
        while slug in used:
            slug, n = f"{slugify(name)}-{n}", n + 1
        used.add(slug)
        result.append(Group(kind, name, slug, tuple(by_name[name])))
    return result


def _check_target(target: Path, folder: Path) -> None:
    """Refuse to replace a folder that `newsletter site` did not write (it would be deleted)."""
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / MARKER).exists())):
        raise NewsletterError(
            "this folder exists and was not written by `newsletter site`; the site replaces its output folder entirely",
            path=display_path(target, folder),
            hint="choose another --out folder, or empty this one",
        )


def _environment(folder: Path) -> jinja2.Environment:
    env = make_environment(folder)
    env.auto_reload = False
    env.filters["paras"] = paragraphs_html
    return env


def paragraphs_html(paragraphs: list[str]) -> Markup:
    """Paragraphs as escaped <p> elements."""
    return Markup("\n".join(f"<p>{escape(p)}</p>" for p in paragraphs))


def _write_site(out: Path, env: jinja2.Environment, config: Config, issues: list[SiteIssue]) -> int:
    topics = groups(issues, config.topics, "topic")
    types = groups(issues, config.research_types, "type")
    topic_slug = {g.name: g.slug for g in topics}
    type_slug = {g.name: g.slug for g in types}
    years = sorted({i.year for i in issues}, reverse=True)
    newest = next((i for i in issues if not i.draft), issues[0] if issues else None)
    archived = [i for i in issues if not i.draft]
    common = {
        "config": config,
        "topic_slug": topic_slug,
        "type_slug": type_slug,
        "topics": topics,
        "types": types,
        "has_feed": bool(archived),
        "total_articles": sum(len(i.entries) for i in issues),
    }
    pages = 0

    def page(path: str, template: str, root: str, **context: object) -> None:
        nonlocal pages
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_template(env, template, {**common, "root": root, **context}, copies="templates/site/"), encoding="utf-8")
        pages += 1

    by_year = [(year, [i for i in issues if i.year == year]) for year in years]
    page("index.html", "site/index.html.j2", "", issues=issues, by_year=by_year, years=years, newest=newest)
    for n, site_issue in enumerate(issues):
        newer = issues[n - 1] if n > 0 else None
        older = issues[n + 1] if n + 1 < len(issues) else None
        page(f"{site_issue.month}/index.html", "site/issue.html.j2", "../", item=site_issue, newer=newer, older=older)
    page("topics/index.html", "site/groups.html.j2", "../", kind="topic", groups=topics)
    page("types/index.html", "site/groups.html.j2", "../", kind="type", groups=types)
    for group in topics:
        page(f"topics/{group.slug}.html", "site/group.html.j2", "../", group=group, by_issue=_by_issue(group.entries))
    for group in types:
        page(f"types/{group.slug}.html", "site/group.html.j2", "../", group=group, by_issue=_by_issue(group.entries))
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    for name in STATIC_FILES:
        source, _filename, _uptodate = env.loader.get_source(env, name)  # type: ignore[union-attr]
        (assets / name.split("/")[-1]).write_text(source, encoding="utf-8")
    if archived:
        write_feed(out / "feed.xml", config, config.name, "feed.xml", issue_entries(config, archived))
        for group in topics:
            entries = [e for e in group.entries if not e.issue.draft]
            if group.has_feed:
                write_feed(out / "topics" / f"{group.slug}.xml", config, f"{config.name}: {group.name}", f"topics/{group.slug}.xml", article_entries(config, entries))
    return pages


def _by_issue(entries: Iterable[Entry]) -> list[tuple[SiteIssue, list[Entry]]]:
    grouped: dict[str, list[Entry]] = defaultdict(list)
    issues: dict[str, SiteIssue] = {}
    for entry in entries:
        grouped[entry.issue.month].append(entry)
        issues[entry.issue.month] = entry.issue
    return [(issues[m], grouped[m]) for m in sorted(grouped, reverse=True)]


# --- Atom -------------------------------------------------------------------

@dataclass(frozen=True)
class FeedEntry:
    """One Atom entry: absolute id and link, text title, HTML content."""

    id: str
    title: str
    link: str
    updated: datetime
    summary: str
    content_html: str
    categories: tuple[str, ...] = ()


def _base(config: Config) -> str:
    return config.archive_url.rstrip("/") + "/"


def issue_entries(config: Config, issues: list[SiteIssue]) -> list[FeedEntry]:
    """One entry per archived issue, linking to its page."""
    result = []
    for site_issue in issues:
        url = f"{_base(config)}{site_issue.month}/"
        items = Markup("").join(
            Markup('<li><a href="{0}#{1}">{2}</a></li>').format(url, e.slug, e.article.title) for e in site_issue.entries
        )
        html = paragraphs_html(site_issue.issue.intro_paragraphs) + Markup("<ul>") + items + Markup("</ul>")
        title = site_issue.issue.subject or f"{config.name} — {site_issue.month_name}"
        result.append(FeedEntry(url, title, url, site_issue.updated, site_issue.issue.intro, str(html)))
    return result


def article_entries(config: Config, entries: list[Entry]) -> list[FeedEntry]:
    """One entry per article (for topic feeds), linking to the article on its issue page."""
    result = []
    for entry in entries:
        url = f"{_base(config)}{entry.issue.month}/#{entry.slug}"
        article = entry.article
        parts = [Markup("<p>{0}</p>").format(entry.citation_html)] if entry.citation_html else []
        parts += [entry.summary_html, Markup("<h3>Practice Implications</h3>"), entry.implications_html]
        result.append(FeedEntry(url, article.title, url, entry.issue.updated, article.summary_paragraphs[0] if article.summary_paragraphs else article.title, str(Markup("\n").join(parts)), article.topics))
    return result


def write_feed(path: Path, config: Config, title: str, self_path: str, entries: list[FeedEntry]) -> None:
    """Write an Atom 1.0 feed (RFC 4287) with xml.etree, which escapes every text node."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = _xml_safe(text)
        return element

    feed = ET.Element(f"{{{ATOM_NS}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": config.language})
    base = _base(config)
    sub(feed, "id", base + self_path)
    sub(feed, "title", title)
    newest = max((e.updated for e in entries), default=datetime(1970, 1, 1, tzinfo=timezone.utc))
    sub(feed, "updated", _atom_time(newest))
    author = sub(feed, "author")
    sub(author, "name", config.sender_name)
    sub(feed, "link", rel="self", type="application/atom+xml", href=base + self_path)
    sub(feed, "link", rel="alternate", type="text/html", href=base)
    sub(feed, "generator", "newsletter")
    for item in sorted(entries, key=lambda e: (e.updated, e.id), reverse=True):
        entry = sub(feed, "entry")
        sub(entry, "id", item.id)
        sub(entry, "title", item.title)
        sub(entry, "updated", _atom_time(item.updated))
        sub(entry, "link", rel="alternate", type="text/html", href=item.link)
        for category in item.categories:
            sub(entry, "category", term=_xml_safe(category))
        sub(entry, "summary", item.summary, type="text")
        sub(entry, "content", item.content_html, type="html")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(feed).write(path, encoding="utf-8", xml_declaration=True)


def _atom_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters), which ElementTree would write as-is."""
    return _XML_INVALID.sub("", text)
