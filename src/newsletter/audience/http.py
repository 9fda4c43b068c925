"""The few pieces of HTTP the public endpoint needs, on plain WSGI (PEP 3333).

Why no web framework: the endpoint has five routes whose only inputs are a
query string, an ``application/x-www-form-urlencoded`` body and one cookie,
all of which the standard library parses (``urllib.parse``, ``http.cookies``);
its pages are Jinja2 templates, already a dependency. A framework would add a
dependency and a layer on the hot path (the one-click POST) without removing
any of the code that matters here: tokens, limits and the store. waitress,
the production server that runs it, does the HTTP itself (parsing, keep-alive,
chunked bodies, the body size limit, trusted proxy headers).

Every response carries the security headers (``SECURITY_HEADERS``): a CSP
that forbids framing, and ``Referrer-Policy: no-referrer`` so a token in a URL
never leaks to another site.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

MAX_BODY = 16 * 1024  # a sign-up form is a few hundred bytes; anything bigger is not ours

# The endpoint's own pages: styles only from the inline block whose hash is given, nothing else.
PAGE_CSP = "default-src 'none'; style-src {style}; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
# The archive site: its own files only (site.css, filter.js), never framed.
SITE_CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
SECURITY_HEADERS = (
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),  # for browsers that predate frame-ancestors
)

StartResponse = Callable[..., Any]


class BodyTooLarge(Exception):
    """The request declares a body over MAX_BODY."""


@dataclass
class Request:
    """What a handler needs from the WSGI environ; the body is read lazily and at most MAX_BODY bytes."""

    environ: dict[str, Any]

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @property
    def path(self) -> str:
        # PEP 3333 hands the path over as latin-1 decoded bytes; the URL's bytes are UTF-8
        raw = str(self.environ.get("PATH_INFO", "") or "/")
        return raw.encode("latin-1").decode("utf-8", "replace")

    @property
    def remote_addr(self) -> str:
        """The client's IP (waitress rewrites it from X-Forwarded-For only for the trusted proxy)."""
        return str(self.environ.get("REMOTE_ADDR", ""))

    @property
    def user_agent(self) -> str:
        return str(self.environ.get("HTTP_USER_AGENT", ""))[:500]

    def query(self, name: str) -> str | None:
        values = parse_qs(str(self.environ.get("QUERY_STRING", "")), max_num_fields=20).get(name)
        return values[0] if values else None

    def form(self) -> dict[str, str]:
        """The urlencoded body's fields (first value of each); {} for any other content type."""
        if "_form" in self.environ:
            return self.environ["_form"]  # type: ignore[no-any-return]
        ctype = str(self.environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            raise BodyTooLarge
        body = self.environ["wsgi.input"].read(length) if length > 0 else b""
        self.environ["_body"] = body
        fields: dict[str, str] = {}
        if ctype == "application/x-www-form-urlencoded":
            try:
                parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
            except ValueError:  # more fields than any form of ours has: not one of ours, so no form
                parsed = {}
            fields = {k: v[0] for k, v in parsed.items()}
        self.environ["_form"] = fields
        return fields

    def cookie(self, name: str) -> str | None:
        raw = self.environ.get("HTTP_COOKIE")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(str(raw))
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    @property
    def origin(self) -> str | None:
        value = self.environ.get("HTTP_ORIGIN")
        return str(value) if value else None


@dataclass
class Response:
    """A status, headers and a body; ``file`` streams a static file instead of ``body``."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    csp: str | None = None
    file: Path | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        phrase = HTTPStatus(self.status).phrase
        headers = [("Content-Type", self.content_type), *SECURITY_HEADERS, *self.headers]
        if self.csp:
            headers.append(("Content-Security-Policy", self.csp))
        if self.file is not None:
            stat = self.file.stat()
            headers.append(("Content-Length", str(stat.st_size)))
            headers.append(("Last-Modified", formatdate(stat.st_mtime, usegmt=True)))
            start_response(f"{self.status} {phrase}", headers)
            if environ.get("REQUEST_METHOD") == "HEAD":
                return [b""]
            handle = open(self.file, "rb")
            wrapper = environ.get("wsgi.file_wrapper")
            return wrapper(handle, 65536) if wrapper else _chunks(handle)
        headers.append(("Content-Length", str(len(self.body))))
        start_response(f"{self.status} {phrase}", headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else self.body]


def _chunks(handle: Any) -> Iterable[bytes]:
    with handle:
        while chunk := handle.read(65536):
            yield chunk


def static_file(root: Path, url_path: str) -> Path | None:
    """The file under ``root`` that ``url_path`` names (``folder/`` means its index.html), or None.

    Nothing outside ``root`` is ever returned: dot segments and symlinks that
    lead out are refused after resolving.
    """
    parts = [p for p in url_path.split("/") if p]
    if any(p in (".", "..") or "\\" in p or "\x00" in p or p.startswith(".") for p in parts):
        return None
    try:
        base = root.resolve(strict=True)
        target = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if target != base and base not in target.parents:
        return None
    if target.is_dir():
        if not url_path.endswith("/"):
            return None  # relative links inside need the slash: the caller redirects
        target = target / "index.html"
    return target if target.is_file() and os.access(target, os.R_OK) else None


def content_type_of(path: Path) -> str:
    """The Content-Type of a static file of the archive site, with a charset for text."""
    if path.suffix == ".xml":  # the site's only XML files are its Atom feeds
        return "application/atom+xml; charset=utf-8"
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind in ("application/javascript", "application/json") else kind
