"""The newsletter's content as plain frozen dataclasses, with no I/O.

``Issue`` is one month: an intro and one or more ``Article``s.  Positions of
fields in the source file live beside the model (see ``load.Positions``) so the
model stays a pure value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

# Years 1900-2999: a month like 0000-01 passed check and crashed the site (no year 0 in datetime).
MONTH_RE = re.compile(r"^(19\d\d|2\d\d\d)-(0[1-9]|1[0-2])$")
MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)


@dataclass(frozen=True)
class Citation:
    """A reference to a published article; ``text`` is always kept verbatim."""

    text: str
    authors: tuple[str, ...] = ()
    year: int | None = None
    title: str | None = None
    journal: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None
    doi: str | None = None
    url: str | None = None
    status: str | None = None

    @property
    def link(self) -> str | None:
        """The best link for the article: its DOI resolver URL, else its URL."""
        if self.doi:
            return f"https://doi.org/{self.doi}"
        return self.url


@dataclass(frozen=True)
class Article:
    """One summarised research article."""

    title: str
    summary: str
    practice_implications: str
    citation: Citation | None = None
    topics: tuple[str, ...] = ()
    research_type: str | None = None

    @property
    def summary_paragraphs(self) -> list[str]:
        return paragraphs(self.summary)

    @property
    def implication_paragraphs(self) -> list[str]:
        return paragraphs(self.practice_implications)

    @property
    def slug(self) -> str:
        return slugify(self.title)


@dataclass(frozen=True)
class Issue:
    """One month of the newsletter."""

    month: str  # YYYY-MM
    articles: tuple[Article, ...]
    intro: str
    intro_drafted: bool = False
    subject: str | None = None
    preheader: str | None = None

    @property
    def year(self) -> int:
        return int(self.month[:4])

    @property
    def month_name(self) -> str:
        """'July 2021'."""
        return f"{MONTH_NAMES[int(self.month[5:7]) - 1]} {self.month[:4]}"

    @property
    def intro_paragraphs(self) -> list[str]:
        return paragraphs(self.intro)


@dataclass(frozen=True)
class SMTPSettings:
    """Where the smtp sender connects; the password never lives here."""

    host: str | None = None
    port: int = 587
    security: str = "starttls"  # none | starttls | ssl
    username: str | None = None
    timeout: float = 30.0


DEFAULT_CONSENT = (
    "Yes, send me this newsletter by email, about once a month. I can unsubscribe at any time "
    "with the link at the bottom of every issue."
)


@dataclass(frozen=True)
class WebSettings:
    """The public endpoint (`newsletter serve`): where it is reachable and its limits."""

    base_url: str | None = None  # ends with "/"; https except on loopback hosts
    consent_text: str = DEFAULT_CONSENT  # shown beside the sign-up form and recorded with each sign-up
    trusted_proxy: str | None = None  # the reverse proxy whose X-Forwarded-For is believed
    subscribe_limit: int = 10  # POST /subscribe per client IP per hour

    def url(self, path: str) -> str:
        """An absolute URL of the endpoint (``path`` without a leading slash)."""
        assert self.base_url is not None
        return self.base_url + path


@dataclass(frozen=True)
class DkimSettings:
    """DKIM signing: selector, signing domain and where the private key is (never the key itself)."""

    selector: str
    domain: str
    key_file: str | None = None  # relative to the newsletter folder; None: NEWSLETTER_DKIM_KEY


@dataclass(frozen=True)
class Config:
    """The newsletter's settings from newsletter.yaml."""

    name: str
    sender_name: str
    sender_email: str
    postal_address: str
    archive_url: str
    reply_to: str | None = None
    unsubscribe_email: str | None = None
    unsubscribe_url: str | None = None
    list_id: str | None = None
    language: str = "en"
    topics: tuple[str, ...] = ()
    research_types: tuple[str, ...] = ()
    sender: str | None = None  # default sender plug-in name
    smtp: SMTPSettings = field(default_factory=SMTPSettings)
    rate: float | None = None
    concurrency: int = 1
    bounces_address: str | None = None  # VERP envelope senders bounces+<token>@domain when set
    bounce_threshold: float = 3.0  # bounce score (hard 1, soft 0.5, once a day) at which a reader becomes bounced
    dkim: DkimSettings | None = None
    web: WebSettings = field(default_factory=WebSettings)

    def issue_url(self, month: str) -> str:
        """The public archive page of one month ("view in browser")."""
        return f"{self.archive_url.rstrip('/')}/{month}/"


_BLANK_LINE = re.compile(r"\n[ \t]*\n")  # compiled once: every build splits each summary, implication and intro


def paragraphs(text: str) -> list[str]:
    """Split text into paragraphs on blank lines, folding single newlines."""
    blocks = _BLANK_LINE.split(text.strip())
    return [" ".join([line.strip() for line in b.splitlines()]).strip() for b in blocks if b.strip()]


MAX_SLUG = 100  # file names stay far below the usual 255-byte limit, with ".html"/".xml" added


def slugify(text: str) -> str:
    """A lowercase ASCII slug for file names and anchors."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > MAX_SLUG:
        # a topic of 250+ characters made a file name too long for the file system; cut, kept unique by a hash
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=4).hexdigest()
        slug = slug[: MAX_SLUG - 9].rstrip("-") + "-" + digest
    return slug or "item"


def drafted_intro(titles: list[str]) -> str:
    """An intro drafted from article titles, used when an issue has none."""
    lowered = [t.rstrip(".?!") for t in titles]
    if not lowered:
        return "This month I summarise recent research."
    if len(lowered) == 1:
        joined = lowered[0]
    else:
        joined = ", ".join(lowered[:-1]) + ", and " + lowered[-1] if len(lowered) > 2 else " and ".join(lowered)
    return f"This month I summarise research on: {joined}."
