"""Issue files (``issues/YYYY-MM.yaml``) to ``model.Issue``, collecting every problem.

``check_issue`` never stops at the first mistake: it builds as much of the
model as it can and returns all problems with their file positions, like
Pelican's ``is_valid`` or MkDocs' config validation.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.errors import NewsletterError, Problem, ProblemList, ValidationError
from newsletter.fsutil import display_path
from newsletter.content.model import MONTH_RE, Article, Citation, Config, Issue, drafted_intro
from newsletter.content.placeholders import find_placeholders, placeholder_message
from newsletter.content.yamlsource import YamlSource, parse_yaml_recovering, read_text

ISSUES_DIR = "issues"
MONTH_LIKE_RE = re.compile(r"^\d{4}-\d{1,2}$")
DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")
DOI_PREFIX_RE = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
LONG_SUMMARY_WORDS = 450
# A field longer than this cannot belong in an email (Gmail clips at 102 KB); far longer ones made
# premailer/lxml cut the HTML silently, footer and unsubscribe link included.
MAX_FIELD_CHARS = 50_000

ISSUE_KEYS = ("month", "subject", "preheader", "intro", "articles")
ARTICLE_KEYS = ("title", "citation", "topics", "research_type", "summary", "practice_implications")
CITATION_KEYS = ("text", "authors", "year", "title", "journal", "volume", "issue", "pages", "doi", "url", "status")


@dataclass
class LoadedIssue(ProblemList):
    """The result of reading one issue file: the model (if buildable) and its problems."""

    path: Path
    display: str
    issue: Issue | None
    problems: list[Problem]
    source: YamlSource | None


def check_month(month: str) -> str:
    """``month`` if it is a YYYY-MM month; a NewsletterError saying it is not a month otherwise."""
    if not MONTH_RE.match(month):
        raise NewsletterError(f"'{month}' is not a month; write it as YYYY-MM, e.g. 2021-07")
    return month


def resolve_issue_path(folder: Path, issue: str) -> Path:
    """``2021-07`` means ``issues/2021-07.yaml`` in the folder; anything else is a path.

    Something shaped like a month that is not one (``2026-13``) is refused as not a month
    rather than looked up as a file that cannot exist.
    """
    if MONTH_LIKE_RE.match(issue):
        return folder / ISSUES_DIR / f"{check_month(issue)}.yaml"
    path = Path(issue)
    return path if path.is_absolute() else folder / path


def load_issue(path: Path, config: Config, folder: Path | None = None, *, placeholders: str = "error") -> LoadedIssue:
    """Load an issue; raise ValidationError (with every problem) if it has errors.

    ``placeholders`` is the severity of scaffold text left in the file: "error" where the
    issue is about to reach readers (check, send), "warning" while writing (build, preview).
    """
    loaded = check_issue(path, config, folder, placeholders=placeholders)
    if loaded.errors or loaded.issue is None:
        raise ValidationError(loaded.problems)
    return loaded


def check_issue(path: Path, config: Config, folder: Path | None = None, *, month_from: tuple[str, str] | None = None,
                placeholders: str = "error") -> LoadedIssue:
    """Read and validate an issue file, returning the model and all problems.

    The month must match the file name (``issues/2021-07.yaml``); ``month_from``
    = (month, what holds it) checks it against something else instead, e.g. the
    archive's ``("2021-07", "its archive folder archive/2021-07")``.  ``placeholders``: see
    ``load_issue``.
    """
    display = display_path(path, folder)
    try:
        text = read_text(path, display)
    except NewsletterError as exc:
        return LoadedIssue(path, display, None, [_as_problem(exc, display)], None)
    src, yaml_errors = parse_yaml_recovering(text, display)
    problems = [_as_problem(exc, display) for exc in yaml_errors]
    issue = None
    if src is not None:
        builder = _IssueBuilder(src, config, path, month_from, placeholders)
        issue = builder.build()
        if yaml_errors:
            # the rest of the file was read with the bad lines left out: report what is wrong there,
            # but not what the left-out lines would have held
            issue = None
            problems += [p for p in builder.problems if p.is_error and not p.message.startswith(("missing required", "an issue file must be"))]
        else:
            problems = builder.problems
    problems = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
    return LoadedIssue(path, display, issue, problems, src)


def _as_problem(exc: NewsletterError, display: str) -> Problem:
    return Problem(exc.path or display, exc.line, exc.column, exc.message + (f" ({exc.hint})" if exc.hint else ""))


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """The closest choice to a misspelt or shortened name, or None."""
    lowered = word.casefold().strip()
    if not lowered:
        return None
    starts = [c for c in choices if c.casefold().startswith(lowered)]
    if len(starts) == 1:
        return starts[0]
    inside = [c for c in choices if lowered in c.casefold()]
    if len(inside) == 1:
        return inside[0]
    folded = {c.casefold(): c for c in choices}
    close = difflib.get_close_matches(lowered, list(folded), n=1, cutoff=0.6)
    if close:
        return folded[close[0]]
    words = set(re.findall(r"\w+", lowered))
    scored = sorted(((len(words & set(re.findall(r"\w+", c.casefold()))), c) for c in choices), reverse=True)
    if scored and scored[0][0] > 0 and (len(scored) == 1 or scored[0][0] > scored[1][0]):
        return scored[0][1]
    return None


def normalise_doi(value: str) -> str:
    """Strip a resolver URL or ``doi:`` prefix from a DOI."""
    return DOI_PREFIX_RE.sub("", value.strip())


class _IssueBuilder:
    def __init__(self, src: YamlSource, config: Config, path: Path, month_from: tuple[str, str] | None = None,
                 placeholders: str = "error") -> None:
        self.src = src
        self.placeholders = placeholders
        self.config = config
        self.path = path
        self.month_from = month_from
        self.problems: list[Problem] = []

    def error(self, key: tuple[Any, ...], message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.src.problem(key, message, "error", at_key=at_key))

    def warn(self, key: tuple[Any, ...], message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.src.problem(key, message, "warning", at_key=at_key))

    def unknown_keys(self, mapping: dict, allowed: tuple[str, ...], key: tuple[Any, ...], what: str) -> None:
        for name in mapping:
            if name not in allowed:
                guess = did_you_mean(str(name), allowed)
                hint = f" (did you mean '{guess}'?)" if guess else f"; allowed: {', '.join(allowed)}"
                self.error(key + (name,), f"unknown field '{name}' in {what}{hint}", at_key=True)

    def text(self, mapping: dict, name: str, key: tuple[Any, ...], *, required: bool, one_line: bool = False) -> str | None:
        value = self.src.as_text(key + (name,), mapping.get(name))  # `title: No` stays "No", not False
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.error(key, f"missing required field '{name}'")
            return None
        if isinstance(value, str):
            text = value.strip()
        elif isinstance(value, (dict, list)):
            self.error(key + (name,), f"'{name}' must be text, not a {'list' if isinstance(value, list) else 'mapping'}")
            return None
        elif not isinstance(value, (int, float)):  # a !!set: str() would put {'...'} in the email
            self.error(key + (name,), f"'{name}' must be text, not {type(value).__name__} (remove the !!tag)")
            return None
        else:
            text = str(value).strip()
        if len(text) > MAX_FIELD_CHARS:
            self.error(
                key + (name,),
                f"'{name}' is {len(text):,} characters long; the limit is {MAX_FIELD_CHARS:,} "
                "(an email over 102 KB is clipped by Gmail, hiding the footer and the unsubscribe link)",
            )
            return None
        if one_line and ("\n" in text or "\r" in text):
            self.error(key + (name,), f"'{name}' must be a single line")
            return None
        return text

    def build(self) -> Issue | None:
        data = self.src.data
        if not isinstance(data, dict):
            self.error((), "an issue file must be a mapping with month:, intro: and articles:")
            return None
        self.unknown_keys(data, ISSUE_KEYS, (), "the issue")
        month = self._month(data)
        subject = self.text(data, "subject", (), required=False, one_line=True)
        preheader = self.text(data, "preheader", (), required=False, one_line=True)
        intro = self.text(data, "intro", (), required=False)
        articles = self._articles(data)
        for key, text in find_placeholders(data):
            self.problems.append(self.src.problem(key, placeholder_message(text), self.placeholders))
        if any(p.is_error for p in self.problems) or month is None:
            return None
        drafted = intro is None
        return Issue(
            month=month,
            articles=tuple(articles),
            intro=intro if intro is not None else drafted_intro([a.title for a in articles]),
            intro_drafted=drafted,
            subject=subject,
            preheader=preheader,
        )

    def _month(self, data: dict) -> str | None:
        value = data.get("month")
        if value is None:
            self.error((), "missing required field 'month' (write it as YYYY-MM, e.g. month: 2021-07)")
            return None
        month = str(self.src.as_text(("month",), value)).strip()
        if not MONTH_RE.match(month):
            year_only = MONTH_LIKE_RE.match(month) and not month.startswith(("19", "2"))
            self.error(("month",), f"month '{month}': the year must be from 1900 to 2999" if year_only else f"month '{month}' must be written YYYY-MM, e.g. 2021-07")
            return None
        if self.month_from is not None:
            expected, holder = self.month_from
            if month != expected:
                self.error(("month",), f"month {month} does not match {holder}; fix the month")
        elif self.path.stem != month:
            self.error(("month",), f"month {month} does not match the file name '{self.path.name}'; rename the file to {month}.yaml or fix the month")
        return month

    def _articles(self, data: dict) -> list[Article]:
        raw = data.get("articles")
        if raw is None:
            self.error((), "missing required field 'articles' (a list of one or more articles)")
            return []
        if not isinstance(raw, list) or not raw:
            self.error(("articles",), "'articles' must be a list of one or more articles, each starting with '- title:'")
            return []
        articles: list[Article] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            key = ("articles", i)
            if not isinstance(item, dict):
                self.error(key, f"article {i + 1} must be a mapping with title:, summary: and practice_implications:")
                continue
            article = self._article(item, key, i)
            title = str(item.get("title") or "").strip()
            folded = " ".join(title.casefold().split())
            if folded and folded in seen:
                self.error(key + ("title",), f"duplicate title '{title}' (also article {seen[folded] + 1}); each article needs its own title")
            elif folded:
                seen[folded] = i
            if article is not None:
                articles.append(article)
        return articles

    def _article(self, item: dict, key: tuple[Any, ...], index: int) -> Article | None:
        self.unknown_keys(item, ARTICLE_KEYS, key, f"article {index + 1}")
        title = self.text(item, "title", key, required=True, one_line=True)
        summary = self.text(item, "summary", key, required=True)
        implications = self.text(item, "practice_implications", key, required=True)
        citation = self._citation(item.get("citation"), key + ("citation",))
        topics = self._topics(item.get("topics"), key, title or f"article {index + 1}")
        research_type = self.text(item, "research_type", key, required=False, one_line=True)
        if research_type and research_type not in self.config.research_types:
            guess = did_you_mean(research_type, self.config.research_types)
            hint = f"did you mean '{guess}'?" if guess else f"use one of: {', '.join(self.config.research_types)}"
            self.error(key + ("research_type",), f"unknown research type '{research_type}'; {hint} (the list is research_types in newsletter.yaml)")
        if summary and len(summary.split()) > LONG_SUMMARY_WORDS:
            self.warn(key + ("summary",), f"summary is {len(summary.split())} words; readers skim, consider under {LONG_SUMMARY_WORDS}")
        if not (title and summary and implications):
            return None
        return Article(
            title=title,
            summary=summary,
            practice_implications=implications,
            citation=citation,
            topics=topics,
            research_type=research_type,
        )

    def _topics(self, raw: Any, key: tuple[Any, ...], label: str) -> tuple[str, ...]:
        if raw is None or raw == []:
            self.warn(key, f"'{label}' has no topics; it will not appear on any topic page (add topics: [...])")
            return ()
        if not isinstance(raw, (list, dict)):
            raw = [self.src.as_text(key + ("topics",), raw)]
        if not isinstance(raw, list):
            self.error(key + ("topics",), "'topics' must be a list, e.g. topics: [Empathy, Therapist Factors]")
            return ()
        topics: list[str] = []
        for j, topic in enumerate(raw):
            name = str(self.src.as_text(key + ("topics", j), topic)).strip()
            if name in self.config.topics:
                if name not in topics:
                    topics.append(name)
                continue
            guess = did_you_mean(name, self.config.topics)
            hint = f"did you mean '{guess}'?" if guess else "see topics in newsletter.yaml for the list"
            if guess and "," in guess and name.casefold() in guess.casefold():
                hint += f' A topic with commas must be quoted: ["{guess}"]'
            self.error(key + ("topics", j), f"unknown topic '{name}'; {hint}")
        return tuple(topics)

    def _citation(self, raw: Any, key: tuple[Any, ...]) -> Citation | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = {"text": raw}
        if not isinstance(raw, dict):
            self.error(key, "'citation' must be a mapping with at least text:")
            return None
        self.unknown_keys(raw, CITATION_KEYS, key, "the citation")
        text = self.text(raw, "text", key, required=True)
        fields: dict[str, Any] = {}
        authors = raw.get("authors")
        if authors is not None:
            if isinstance(authors, list) and all(isinstance(a, str) for a in authors):
                fields["authors"] = tuple(a.strip() for a in authors)
            else:
                self.error(key + ("authors",), 'authors must be a list of names, e.g. ["Surname, A.", "Other, B."]')
        year = raw.get("year")
        if year is not None:
            if isinstance(year, int) and 1800 <= year <= 2200:
                fields["year"] = year
            else:
                self.error(key + ("year",), f"year must be a four-digit year, not '{year}'")
        for name in ("title", "journal", "volume", "issue", "pages", "status"):
            value = self.text(raw, name, key, required=False)
            if value is not None:
                fields[name] = value
        doi = self.src.as_text(key + ("doi",), raw.get("doi"))
        if doi is not None:
            normal = normalise_doi(str(doi))
            if DOI_RE.match(normal):
                fields["doi"] = normal
            else:
                self.error(key + ("doi",), f"malformed DOI '{doi}'; a DOI looks like 10.1037/pst0000123 (prefix 10., a registrant number, a slash, a suffix)")
        url = self.src.as_text(key + ("url",), raw.get("url"))
        if url is not None:
            url = str(url).strip()
            if re.match(r"^https?://\S+$", url):
                fields["url"] = url
            else:
                self.error(key + ("url",), f"url must start with https:// or http://, not '{url}'")
        if text is None:
            return None
        return Citation(text=text, **fields)


def issue_paths(folder: Path) -> list[Path]:
    """Every issue file in the folder's issues/ directory, oldest first."""
    directory = folder / ISSUES_DIR
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())
