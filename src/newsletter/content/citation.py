"""Parse a reference as people really write it (APA-like) into ``model.Citation`` fields.

The parser is deliberately conservative: ``text`` is always the reference
verbatim, and every other field is filled only when its part of the reference
has an unambiguous shape.  Anything doubtful is left empty rather than
guessed, and a DOI that is written wrongly (``doi: 10:1001/...``) is reported
as a problem instead of being repaired.

Shape handled::

    AUTHORS (YEAR[, Month Day]). TITLE. JOURNAL[, VOLUME[(ISSUE)][, PAGES]]. [STATUS.] [DOI or URL]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from newsletter.content.model import Citation

# --- authors -----------------------------------------------------------------

_LETTER = r"[^\W\d_]"
# One word of a surname: letters, with inner hyphens or apostrophes (Nissen-Lie, O’Brien).
_SURNAME_WORD = rf"{_LETTER}+(?:[-'’]{_LETTER}+)*"
# Lower-case particles that may open a surname (van der Berg, de la Cruz).
_PARTICLE = r"(?:van|von|der|den|de|del|della|di|da|du|la|le|ten|ter|dos|das|do|d'|d’)"
_SURNAME = rf"(?:{_PARTICLE}\s+)*{_SURNAME_WORD}(?:\s+{_SURNAME_WORD}){{0,3}}"
# Initials with or without spaces: "J.P.", "M. H.", "J.-P.", "H.F."
_INITIALS = rf"{_LETTER}\.(?:\s?-?\s?{_LETTER}\.)*"
_AUTHOR_RE = re.compile(rf"(?P<surname>{_SURNAME}),\s*(?P<initials>{_INITIALS})")
# What may stand between authors: commas, "&" with or without spaces, "and",
# an ellipsis written as "…", ". . ." or "...", and "et al.".
_SEPARATOR_RE = re.compile(r"(?:\s*(?:,|&|\band\b|…|\.\s\.\s\.|\.\.\.|\bet\s+al\.?))+\s*")

# --- year --------------------------------------------------------------------

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|Spring|Summer|Fall|Autumn|Winter)\.?"
)
# "(2019)", "(2019a)", "(2021, March 18)", "(2020, Spring)", "(n.d.)", "(in press)".
_YEAR_RE = re.compile(
    rf"\((?:(?P<year>1[89]\d\d|2[01]\d\d)[a-z]?(?:,\s*{_MONTHS}(?:\s+\d{{1,2}}(?:\s*[-–]\s*\d{{1,2}})?)?)?"
    r"|(?P<nd>n\.\s?d\.)|(?P<press>[Ii]n press))\)\.?"
)

# --- DOI, URL, status --------------------------------------------------------

DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")
_DOI_URL_RE = re.compile(r"https?://(?:dx\.)?doi\.org/(?P<doi>\S+)", re.IGNORECASE)
_DOI_LABEL_RE = re.compile(r"\bdoi\s*:\s*(?P<doi>\S+)", re.IGNORECASE)
_BARE_DOI_RE = re.compile(r"(?<![\w/.:])(?P<doi>10\.\d{4,9}/\S+)")
_URL_RE = re.compile(r"https?://\S+")
_STATUS_RE = re.compile(
    r"(?P<status>Advance online publication|Online first publication|Online first|"
    r"Epub ahead of print|Online ahead of print|In press)",
    re.IGNORECASE,
)
# A DOI or URL at the end, with its label ("DOI:", "Retrieved from").
_TRAILING_LINK_RE = re.compile(
    r"[\s,.;:]*(?:(?:Retrieved from|Available (?:at|from)|doi\s*:|DOI\s*:)\s*)?"
    r"(?:https?://\S+|10[.:]\d{4,9}/\S+)\s*$",
    re.IGNORECASE,
)
_TRAILING_STATUS_RE = re.compile(rf"[\s,.;:]*{_STATUS_RE.pattern}[\s.,;:]*$", re.IGNORECASE)

# --- title and source --------------------------------------------------------

_PAGES = r"(?:[A-Za-z]?\d+(?:\s*[-–—]\s*[A-Za-z]?\d+)?)"
# "Journal, 58(3), 401–413" after a title ending in . ? or !
_SOURCE_RE = re.compile(
    rf"^(?P<title>.+?[.?!])\s+(?P<journal>[^.?!]+?),\s*(?P<volume>\d+)"
    rf"(?:\s?\((?P<issue>[^()]+)\))?(?:,\s*(?P<pages>{_PAGES}))?\s*\.?$"
)
# The same with only a comma after the title (a title without any full stop).
_COMMA_SOURCE_RE = re.compile(
    rf"^(?P<title>[^.?!]+),\s+(?P<journal>[^,.?!]+?),\s*(?P<volume>\d+)"
    rf"(?:\s?\((?P<issue>[^()]+)\))?(?:,\s*(?P<pages>{_PAGES}))?\s*\.?$"
)
_SENTENCE_BREAK_RE = re.compile(r"(?<=[.?!])\s+(?=\S)")
# A title that ends in what looks like an abbreviation ("J. Clin.") was probably cut too early.
_ABBREVIATION_END_RE = re.compile(r"(?:^|\s)(?:[A-Z][a-z]{0,3}|[A-Za-z])\.$")


@dataclass(frozen=True)
class ParsedCitation:
    """A citation with the fields that could be parsed, and problems found in the text."""

    citation: Citation
    problems: list[str] = field(default_factory=list)


def parse_authors(text: str) -> tuple[str, ...] | None:
    """Authors as ``("Surname, I. N.", ...)``, or None when any part is not a clear name.

    ``text`` is the part before the year.  Separators (``,``, ``&``, ``…``,
    ``. . .``, ``et al.``) are dropped; names and initials are kept as written.
    """
    authors: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        sep = _SEPARATOR_RE.match(text, pos)
        if sep and sep.end() > pos:
            pos = sep.end()
            continue
        author = _AUTHOR_RE.match(text, pos)
        if author is None:
            return None
        surname = author.group("surname")
        initials = author.group("initials").strip()
        if not surname[0].isupper() and not re.match(_PARTICLE, surname):
            return None
        if not all(ch.isupper() for ch in re.findall(_LETTER, initials)):
            return None
        authors.append(f"{surname}, {initials}")
        pos = author.end()
    return tuple(authors) if authors else None


def find_year(text: str) -> re.Match[str] | None:
    """The "(2019)" / "(2021, March 18)" / "(n.d.)" part of a reference, if its shape is clear."""
    match = _YEAR_RE.search(text)
    if match is None:
        return None
    # The year follows the authors; a parenthesis before it means it is not the author-date group.
    if "(" in text[: match.start()]:
        return None
    return match


def author_date(line: str) -> tuple[re.Match[str], tuple[str, ...]] | None:
    """The "(YEAR)" group and the authors before it, when the line has a reference's shape.

    The shape is a "(YEAR)" group (see ``find_year``) after a prefix that
    parses as a list of "Surname, I." names, or that opens with one such name
    and ends with an initial (a list with something unusual in it, like
    "Jr."), or (for a group author) a short prefix ending in a full stop, with
    more text after it.  A summary sentence such as "Moritz and colleagues
    (2019) found..." has none of these prefixes.  Only a fully parsed list
    gives authors; the other shapes give an empty tuple.
    """
    line = line.strip()
    match = find_year(line)
    if match is None or not line[match.end():].strip():
        return None
    prefix = line[: match.start()].strip()
    if not prefix:
        return None
    authors = parse_authors(prefix)
    if authors:
        return match, authors
    # "Smith, J., Jr., & Jones, K. (2020). ..." — clearly names, though not all parse.
    first = _AUTHOR_RE.match(prefix)
    if first and first.group("surname")[0].isupper() and re.search(rf"(?:^|[\s.,-]){_LETTER}\.$", prefix):
        return match, ()
    # "American Psychological Association. (2020). ..." — a group author.
    if (
        len(prefix) <= 120
        and prefix.endswith(".")
        and prefix[0].isupper()
        and not _SENTENCE_BREAK_RE.search(prefix[:-1])
        and match.group(0).endswith(".")
    ):
        return match, ()
    return None


def looks_like_citation(line: str) -> bool:
    """Whether a line has the author-date shape of a reference (see ``author_date``)."""
    return author_date(line) is not None


def _clean_doi(raw: str) -> str:
    """Strip punctuation that ends the sentence, not the DOI."""
    doi = raw.rstrip(".,;")
    if doi.endswith(")") and doi.count("(") < doi.count(")"):
        doi = doi[:-1]
    return doi


def find_doi(text: str) -> tuple[str | None, list[str]]:
    """The DOI in a reference (from a doi.org URL, ``doi:``/``DOI:`` or bare ``10.``) and problems."""
    problems: list[str] = []
    for pattern in (_DOI_URL_RE, _DOI_LABEL_RE, _BARE_DOI_RE):
        for match in pattern.finditer(text):
            raw = match.group("doi")
            if pattern is _DOI_LABEL_RE and raw.lower().startswith(("http://", "https://")):
                continue  # "doi: https://doi.org/..." is handled by the URL pattern
            doi = _clean_doi(raw)
            if DOI_RE.match(doi):
                return doi, problems
            problems.append(
                f"malformed DOI '{doi}' in the citation; left out of the doi field "
                "(a DOI looks like 10.1037/pst0000123: '10.', a number, a slash, a suffix); fix it by hand"
            )
            return None, problems
    return None, problems


def find_url(text: str) -> str | None:
    """A web address in the reference that is not a DOI resolver link."""
    for match in _URL_RE.finditer(text):
        url = _clean_doi(match.group(0))
        if not _DOI_URL_RE.match(url):
            return url
    return None


def _split_source(rest: str) -> dict[str, str]:
    """Title, journal, volume, issue and pages from the part after the year, when unambiguous."""
    fields: dict[str, str] = {}
    body = rest.strip()
    match = _SOURCE_RE.match(body)
    if match and _ABBREVIATION_END_RE.search(match.group("title")):
        match = None
    if match is None and not _SENTENCE_BREAK_RE.search(body):
        match = _COMMA_SOURCE_RE.match(body)
    if match:
        title, journal = match.group("title").strip(), match.group("journal").strip()
        if not journal[:1].isupper():
            return fields
        fields["title"] = title[:-1] if title.endswith(".") else title
        fields["journal"] = journal
        fields["volume"] = match.group("volume")
        if match.group("issue"):
            fields["issue"] = match.group("issue").strip()
        if match.group("pages"):
            fields["pages"] = match.group("pages")
        return fields
    # No volume: "Title. Journal." — only when there are exactly two sentences.
    parts = _SENTENCE_BREAK_RE.split(body.rstrip(" ."))
    if len(parts) == 2:
        title, journal = parts[0].strip(), parts[1].strip()
        if (
            journal[:1].isupper()
            and len(journal) <= 150
            and not _ABBREVIATION_END_RE.search(title)
            and not re.search(r"\d", journal)
            and not journal.startswith("In ")
        ):
            fields["title"] = title[:-1] if title.endswith(".") else title
            fields["journal"] = journal
    return fields


def parse_citation(text: str) -> ParsedCitation:
    """Parse one reference; ``citation.text`` is ``text`` verbatim (trimmed), other fields when sure."""
    text = text.strip()
    problems: list[str] = []
    fields: dict[str, object] = {}

    doi, doi_problems = find_doi(text)
    problems.extend(doi_problems)
    if doi:
        fields["doi"] = doi
    url = find_url(text)
    if url:
        fields["url"] = url

    status: str | None = None
    shape = author_date(text)
    if shape is not None:
        year, authors = shape
        if authors:
            fields["authors"] = authors
        if year.group("year"):
            fields["year"] = int(year.group("year"))
        elif year.group("press"):
            status = year.group("press")
        rest = text[year.end():]
        # Peel the link and the publication status off the end, then read title and source.
        while True:
            peeled = _TRAILING_LINK_RE.sub("", rest)
            found = _TRAILING_STATUS_RE.search(peeled)
            if found:
                status = status or found.group("status")
                peeled = peeled[: found.start()]
            if peeled == rest:
                break
            rest = peeled
        fields.update(_split_source(rest))
    if status:
        fields["status"] = status
    return ParsedCitation(Citation(text=text, **fields), problems)  # type: ignore[arg-type]
