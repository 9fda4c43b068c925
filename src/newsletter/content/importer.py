"""``newsletter import``: archive pages saved from the old website become ``issues/YYYY-MM.yaml``.

A page is plain text: site boilerplate (a description, the "This month…"
intro of the site's *current* issue, the topic list), then month headings
("July 2021"), each followed by one or more articles::

    Title                      a short line without a final full stop
    Citation                   optional; recognised by its author-date shape
    Summary                    one paragraph (one line)
    Practice Implications      the heading, exactly
    Implications...            one or more paragraphs, up to the next title or month

Where one article's implications end and the next article begins is read
backwards from each "Practice Implications" heading: the line before it is the
summary, the one before that a citation (if it has the shape of one), then a
title; whatever lies between the previous heading and that title is the
previous article's implications.  Any line that does not fit gets an error
naming the file and line, and nothing from that page is written.

Each page is a topic filter of the archive, so the same month appears on
several pages with different subsets of its articles: they are merged, each
article once (same title, same article), in the order the pages show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from newsletter.content.citation import looks_like_citation, parse_citation
from newsletter.errors import NewsletterError
from newsletter.fsutil import atomic_write, utf16_name
from newsletter.content.load import display_path
from newsletter.content.model import MONTH_NAMES

MONTH_HEADING_RE = re.compile(rf"^({'|'.join(MONTH_NAMES)})\s+(\d{{4}})$")
IMPLICATIONS_HEADING_RE = re.compile(r"^Practice\s+Implications?\s*:?$", re.IGNORECASE)
URL_RE = re.compile(r"https?://|\bdoi\s*:", re.IGNORECASE)
TITLE_MAX_CHARS = 200
TITLE_MAX_WORDS = 30


class PageError(NewsletterError):
    """A page that cannot be understood; names the file and line."""

    DEFAULT_HINT = "nothing from this page was imported; fix the page in a text editor (or leave it out) and run the import again"

    def __init__(self, message: str, **where: Any) -> None:
        hint = where.pop("hint", None)
        super().__init__(message, hint=f"{hint}; {self.DEFAULT_HINT}" if hint else self.DEFAULT_HINT, **where)


# --- reading one page ------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """A non-blank line of a page, trimmed, with its 1-based line number."""

    number: int
    text: str


@dataclass(frozen=True)
class PageArticle:
    """One article as a page shows it."""

    title: str
    citation: str | None
    summary: str
    implications: str
    source: str  # "page.txt:46", where the title is
    citation_source: str | None = None


@dataclass(frozen=True)
class PageMonth:
    """One month heading of a page and the articles under it."""

    month: str  # YYYY-MM
    source: str  # "page.txt:45"
    articles: tuple[PageArticle, ...]


def is_title_shaped(text: str) -> bool:
    """A short line with no final full stop (or comma, colon...), no link and no citation shape."""
    return (
        len(text) <= TITLE_MAX_CHARS
        and len(text.split()) <= TITLE_MAX_WORDS
        and text[-1] not in ".,;:"
        and not URL_RE.search(text)
        and not MONTH_HEADING_RE.match(text)
        and not IMPLICATIONS_HEADING_RE.match(text)
        and not looks_like_citation(text)
    )


def is_paragraph(text: str) -> bool:
    """Prose: neither a title, a citation nor a heading."""
    return not (
        is_title_shaped(text)
        or looks_like_citation(text)
        or MONTH_HEADING_RE.match(text)
        or IMPLICATIONS_HEADING_RE.match(text)
    )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_page(path: Path, display: str | None = None) -> list[Line]:
    """The non-blank lines of a page file; errors name the file (and line for bad bytes)."""
    name = display or display_path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PageError("page not found", path=name, hint="check the path of the saved page") from None
    except OSError as exc:
        raise PageError(f"cannot read the page: {exc.strerror}", path=name) from None
    if utf16_name(data):  # "Unicode text" from Windows: not broken UTF-8, a different encoding
        raise PageError("the file is UTF-16 text: save it as UTF-8", path=name, line=1, hint="save the page as UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PageError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=name, line=line, hint="save the page as UTF-8 text") from None
    # Split on newlines only (not str.splitlines, which also breaks at U+2028 and
    # form feeds), so line numbers match what an editor shows.
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [Line(n, raw.strip()) for n, raw in enumerate(raw_lines, 1) if raw.strip()]


def parse_page(lines: list[Line], display: str) -> list[PageMonth]:
    """The months and articles of a page; raises PageError at the first line that does not fit."""
    starts = [i for i, line in enumerate(lines) if MONTH_HEADING_RE.match(line.text)]
    if not starts:
        raise PageError(
            "no month heading such as 'July 2021' found; this does not look like a page saved from the archive",
            path=display, line=lines[0].number if lines else 1,
        )
    months: list[PageMonth] = []
    # Everything before the first month heading is site boilerplate (description,
    # the current issue's "This month…", the topic list): deliberately not imported.
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        heading, body = lines[start], lines[start + 1:end]
        if not body:
            continue  # a bare list of months (navigation) carries nothing to import
        match = MONTH_HEADING_RE.match(heading.text)
        assert match is not None
        month = f"{match.group(2)}-{MONTH_NAMES.index(match.group(1)) + 1:02d}"
        articles = _parse_month(body, heading, display)
        months.append(PageMonth(month, f"{display}:{heading.number}", tuple(articles)))
    return months


def _parse_month(body: list[Line], heading: Line, display: str) -> list[PageArticle]:
    """The articles under one month heading."""
    marks = [i for i, line in enumerate(body) if IMPLICATIONS_HEADING_RE.match(line.text)]
    if not marks:
        raise PageError(
            f"no 'Practice Implications' heading under '{heading.text}'; every article needs a title, "
            "a summary, 'Practice Implications' and the implications",
            path=display, line=heading.number,
        )
    headers: list[_Header] = []
    implications: list[list[Line]] = []
    start, previous_mark = 0, heading
    for n, mark in enumerate(marks):
        rest, header = _split_segment(body[start:mark], body[mark], previous_mark, display, first=n == 0)
        if n > 0:
            implications.append(_implications(rest, previous_mark, display))
        headers.append(header)
        previous_mark, start = body[mark], mark + 1
    implications.append(_implications(body[start:], previous_mark, display))
    return [_article(header, lines, display) for header, lines in zip(headers, implications)]


@dataclass(frozen=True)
class _Header:
    """An article's title, optional citation and summary lines."""

    title: Line
    citation: Line | None
    summary: Line


def _split_segment(
    segment: list[Line], mark: Line, after: Line, display: str, *, first: bool
) -> tuple[list[Line], _Header]:
    """Split the lines before a 'Practice Implications' heading into (previous implications, this header).

    Read backwards: the summary paragraph, then an optional citation, then the
    title.  ``after`` is the line the segment follows (the month heading or
    the previous 'Practice Implications').
    """
    if not segment:
        raise PageError(f"'Practice Implications' without a title and summary before it (after line {after.number})", path=display, line=mark.number)
    summary = segment[-1]
    if not is_paragraph(summary.text):
        kind = "a citation" if looks_like_citation(summary.text) else "a heading or title"
        raise PageError(
            f"expected the summary paragraph before 'Practice Implications' (line {mark.number}), found {kind}: '{_short(summary.text)}'",
            path=display, line=summary.number,
        )
    index = len(segment) - 2
    citation: Line | None = None
    if index >= 0 and looks_like_citation(segment[index].text):
        citation = segment[index]
        index -= 1
    if index < 0:
        raise PageError(
            f"no article title before the {'citation' if citation else 'summary'} on line {(citation or summary).number}",
            path=display, line=(citation or summary).number,
        )
    title = segment[index]
    # A citation anchors the title firmly (it is the line above), so a title
    # ending in a full stop is accepted there; without one, the shape decides.
    shaped = is_title_shaped(title.text.rstrip(".") if citation else title.text)
    if not shaped:
        raise PageError(
            f"expected an article title (a short line without a final full stop) before the "
            f"{'citation' if citation else 'summary'} on line {(citation or summary).number}, found: '{_short(title.text)}'",
            path=display, line=title.number,
            hint="a summary is one paragraph on one line; a title is a short line of its own",
        )
    rest = segment[:index]
    if first and rest:
        raise PageError(
            f"unexpected text between the month heading (line {after.number}) and the article title '{_short(title.text)}' (line {title.number})",
            path=display, line=rest[0].number,
        )
    return rest, _Header(title, citation, summary)


def _implications(lines: list[Line], mark: Line, display: str) -> list[Line]:
    """Check the implications paragraphs after one 'Practice Implications' heading."""
    if not lines:
        raise PageError("no implications after 'Practice Implications'", path=display, line=mark.number)
    for line in lines:
        if not is_paragraph(line.text):
            kind = "a citation" if looks_like_citation(line.text) else "a title"
            raise PageError(
                f"'{_short(line.text)}' looks like {kind}, but it stands inside the implications that follow "
                f"'Practice Implications' (line {mark.number}); if it starts a new article, that article lacks "
                "its summary or its own 'Practice Implications' heading",
                path=display, line=line.number,
                hint="every article needs a title, an optional citation, one summary paragraph, 'Practice Implications' and the implications",
            )
    return lines


def _article(header: _Header, implications: list[Line], display: str) -> PageArticle:
    return PageArticle(
        title=header.title.text,
        citation=header.citation.text if header.citation else None,
        summary=header.summary.text,
        implications="\n\n".join(line.text for line in implications),
        source=f"{display}:{header.title.number}",
        citation_source=f"{display}:{header.citation.number}" if header.citation else None,
    )


# --- merging pages ---------------------------------------------------------------------


def title_key(title: str) -> str:
    """Articles with the same title (ignoring case and spacing) are the same article."""
    return " ".join(title.split()).casefold()


@dataclass
class MergedMonth:
    """One month gathered from every page that shows it."""

    month: str
    articles: list[PageArticle] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # "page.txt:45" per month heading

    def add(self, page_month: PageMonth, warnings: list[str]) -> None:
        """Merge one page's view of the month, keeping the order every page shows."""
        self.sources.append(page_month.source)
        known = {title_key(a.title): i for i, a in enumerate(self.articles)}
        insert_at: int | None = None  # just after the last known article this page showed
        pending: list[PageArticle] = []  # new articles before any known one: go before it
        for article in page_month.articles:
            key = title_key(article.title)
            twin = next((a for a in pending if title_key(a.title) == key), None)
            if twin is not None:  # the same title twice on one page, before any known article
                _warn_if_different(twin, article, warnings)
            elif key in known:
                _warn_if_different(self.articles[known[key]], article, warnings)
                if pending:
                    position = known[key]
                    self.articles[position:position] = pending
                    pending = []
                    known = {title_key(a.title): i for i, a in enumerate(self.articles)}
                insert_at = known[key] + 1
            elif insert_at is None:
                pending.append(article)
            else:
                self.articles.insert(insert_at, article)
                insert_at += 1
                known = {title_key(a.title): i for i, a in enumerate(self.articles)}
        self.articles.extend(pending)


def _warn_if_different(kept: PageArticle, other: PageArticle, warnings: list[str]) -> None:
    differs = _differences(kept, other)
    if differs:
        warnings.append(
            f"{other.source}: warning: '{_short(other.title)}' differs from {kept.source} "
            f"({', '.join(differs)}); kept the text from {kept.source}"
        )


def _differences(a: PageArticle, b: PageArticle) -> list[str]:
    names = []
    for name, left, right in (
        ("title", a.title, b.title),
        ("citation", a.citation, b.citation),
        ("summary", a.summary, b.summary),
        ("practice implications", a.implications, b.implications),
    ):
        if left != right:
            names.append(name)
    return names


def merge_months(pages: list[list[PageMonth]], warnings: list[str]) -> list[MergedMonth]:
    """Months from all pages, newest first, each article once."""
    merged: dict[str, MergedMonth] = {}
    for months in pages:
        for page_month in months:
            merged.setdefault(page_month.month, MergedMonth(page_month.month)).add(page_month, warnings)
    return [merged[m] for m in sorted(merged, reverse=True)]


# --- the issue file --------------------------------------------------------------------


class _Block(str):
    """A paragraph text written as a YAML literal block (readable, and exact on reload)."""


class _IssueDumper(yaml.SafeDumper):
    """Writes issue files; never anchors and aliases (check refuses them), even for shared lists."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _represent_block(dumper: yaml.SafeDumper, value: _Block) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_IssueDumper.add_representer(_Block, _represent_block)


def issue_data(merged: MergedMonth, warnings: list[str]) -> dict[str, Any]:
    """The issue as plain data: no intro (drafted on load), empty topics, parsed citations."""
    articles = []
    for article in merged.articles:
        entry: dict[str, Any] = {"title": article.title}
        if article.citation:
            parsed = parse_citation(article.citation)
            for problem in parsed.problems:
                warnings.append(f"{article.citation_source}: warning: {problem}")
            citation: dict[str, Any] = {"text": article.citation}
            for name, value in vars(parsed.citation).items():
                if name != "text" and value not in (None, ()):
                    citation[name] = list(value) if isinstance(value, tuple) else value
            entry["citation"] = citation
        entry["topics"] = []
        entry["summary"] = _Block(article.summary)
        entry["practice_implications"] = _Block(article.implications)
        articles.append(entry)
    return {"month": merged.month, "articles": articles}


def render_issue_file(merged: MergedMonth, warnings: list[str]) -> str:
    """The YAML text of one imported issue, with a header saying where it came from."""
    data = issue_data(merged, warnings)
    body = yaml.dump(data, Dumper=_IssueDumper, allow_unicode=True, width=float("inf"), sort_keys=False, default_flow_style=False)
    if _plain(yaml.safe_load(body)) != _plain(data):  # never write text that would load back differently
        raise NewsletterError(f"internal error: the YAML for {merged.month} does not load back to the page text", hint="please report this with the page")
    header = ["# Imported by `newsletter import` from the archive pages:"]
    header += [f"#   {Path(source).name}" for source in merged.sources]
    header += [
        "# The pages carry no topics and no intro: add topics (see newsletter.yaml) to",
        "# each article; until you write an intro, one is drafted from the titles.",
    ]
    return "\n".join(header) + "\n" + body


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


# --- comparing with an existing file ---------------------------------------------------


def describe_differences(existing_text: str, new: dict[str, Any]) -> list[str]:
    """How an existing issue file differs from what the import would write, article by article."""
    try:
        old = yaml.safe_load(existing_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        return [f"the existing file is not valid YAML{where}; the import would replace it"]
    if not isinstance(old, dict):
        return ["the existing file is not an issue (no month:/articles: mapping)"]
    notes: list[str] = []
    old_articles = [a for a in old.get("articles") or [] if isinstance(a, dict) and "title" in a]
    old_by_key = {title_key(str(a["title"])): a for a in old_articles}
    new_by_key = {title_key(a["title"]): a for a in new["articles"]}
    added = [a["title"] for key, a in new_by_key.items() if key not in old_by_key]
    dropped = [str(a["title"]) for key, a in old_by_key.items() if key not in new_by_key]
    changed = []
    for key, article in new_by_key.items():
        if key in old_by_key:
            fields = _article_differences(old_by_key[key], article)
            if fields:
                changed.append(f"'{article['title']}' ({', '.join(fields)})")
    if added:
        notes.append("new articles: " + "; ".join(f"'{t}'" for t in added))
    if changed:
        notes.append("articles that differ: " + "; ".join(changed))
    if dropped:
        notes.append("only in the existing file (--force would drop them): " + "; ".join(f"'{t}'" for t in dropped))
    for name in ("intro", "subject", "preheader"):
        if old.get(name):
            notes.append(f"the existing file has {'an' if name[0] in 'aeiou' else 'a'} {name}, which --force would drop")
    kept = [key for key in old_by_key if key in new_by_key]
    if [key for key in new_by_key if key in old_by_key] != kept:
        notes.append("the articles are in a different order")
    if not notes:
        notes.append("same articles and text; only comments or formatting differ")
    return notes


def _same_content(existing_text: str, new: dict[str, Any]) -> bool:
    """Whether an existing file holds exactly what the import would write (comments aside)."""
    try:
        return _plain(yaml.safe_load(existing_text)) == _plain(new)
    except yaml.YAMLError:
        return False


def _article_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    fields = []
    if str(old.get("title", "")).strip() != new["title"]:
        fields.append("title spelling")
    old_citation = old.get("citation")
    old_citation_text = old_citation.get("text") if isinstance(old_citation, dict) else old_citation
    new_citation_text = (new.get("citation") or {}).get("text")
    if (str(old_citation_text).strip() if old_citation_text else None) != new_citation_text:
        fields.append("citation")
    elif isinstance(old_citation, dict) and _plain(old_citation) != _plain(new.get("citation")):
        fields.append("parsed citation fields")
    for name in ("summary", "practice_implications"):
        if str(old.get(name) or "").strip() != str(new[name]).strip():
            fields.append(name.replace("_", " "))
    if old.get("topics"):
        fields.append("topics set in the existing file")
    if old.get("research_type"):
        fields.append("research type set in the existing file")
    return fields


# --- the command -----------------------------------------------------------------------


@dataclass
class MonthOutcome:
    """What happened (or would happen) to one month's file."""

    month: str
    path: Path
    display: str
    action: str  # "created", "replaced", "unchanged", "refused"
    articles: int
    text: str
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """Everything an import did or would do, for the CLI to print."""

    into: Path
    dry_run: bool
    outcomes: list[MonthOutcome] = field(default_factory=list)
    errors: list[NewsletterError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pages_read: int = 0
    pages_total: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and not any(o.action == "refused" for o in self.outcomes)

    def messages(self) -> list[tuple[str, bool]]:
        """(line, is_error) pairs for the user, in a sensible order."""
        out: list[tuple[str, bool]] = [(w, True) for w in self.warnings]
        out += [(f"error: {e}", True) for e in self.errors]
        would = "would " if self.dry_run else ""
        for o in self.outcomes:
            where = o.display
            count = f"{o.articles} article{'s' if o.articles != 1 else ''}"
            if o.action == "refused":
                lines = [f"error: {where} exists and differs; not overwritten (use --force to replace it):"]
                lines += [f"  {note}" for note in o.notes]
                out.append(("\n".join(lines), True))
                continue
            verb = {"created": "write", "replaced": "replace", "unchanged": "leave unchanged"}[o.action] if self.dry_run else o.action
            line = f"{would}{verb} {where} ({count})"
            if o.action == "replaced" and o.notes:
                line += ":\n" + "\n".join(f"  {note}" for note in o.notes)
            out.append((line, False))
            if self.dry_run and o.action != "unchanged":
                out.append((f"--- {where}\n{o.text}", False))
        summary = (
            f"{'dry run: ' if self.dry_run else ''}{self.pages_read} of {self.pages_total} page(s) understood, "
            f"{sum(1 for o in self.outcomes if o.action in ('created', 'replaced'))} issue file(s) {'to write' if self.dry_run else 'written'}, "
            f"{sum(1 for o in self.outcomes if o.action == 'unchanged')} unchanged, "
            f"{sum(1 for o in self.outcomes if o.action == 'refused')} refused, {len(self.errors)} page error(s)"
        )
        out.append((summary, not self.ok))
        return out


def import_pages(
    pages: list[Path], into: Path, *, force: bool = False, dry_run: bool = False, folder: Path | None = None
) -> ImportReport:
    """Import archive pages into ``into/YYYY-MM.yaml`` files.

    A page that cannot be understood contributes nothing (its error names the
    file and line); the others are still imported.  An existing file is never
    replaced without ``force``; ``dry_run`` writes nothing at all.  Paths in
    messages are shown relative to ``folder`` (or the current directory).
    """
    report = ImportReport(into=into, dry_run=dry_run, pages_total=len(pages))
    parsed: list[list[PageMonth]] = []
    for path in pages:
        display = display_path(path, folder)
        try:
            parsed.append(parse_page(read_page(path, display), display))
            report.pages_read += 1
        except PageError as exc:
            report.errors.append(exc)
    for merged in merge_months(parsed, report.warnings):
        text = render_issue_file(merged, report.warnings)
        target = into / f"{merged.month}.yaml"
        outcome = MonthOutcome(merged.month, target, display_path(target, folder), "created", len(merged.articles), text)
        if target.exists():
            try:
                existing = target.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                existing = f"<unreadable: {exc}>"
            if existing == text or _same_content(existing, issue_data(merged, [])):
                outcome.action = "unchanged"
            else:
                outcome.notes = describe_differences(existing, issue_data(merged, []))
                outcome.action = "replaced" if force else "refused"
        report.outcomes.append(outcome)
        if not dry_run and outcome.action in ("created", "replaced"):
            atomic_write(target, text)
    return report
