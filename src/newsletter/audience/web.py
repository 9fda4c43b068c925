"""The public endpoint's WSGI app: sign-up with double opt-in, one-click unsubscribe, the archive.

Routes (everything else is the archive site, ``site/``, when it exists):

- ``GET /subscribe`` the form; ``POST /subscribe`` answers the same "check your
  inbox" page whatever the address's state, so it reveals nobody, and sends a
  confirmation link (``confirm?t=``, valid ``CONFIRM_DAYS``) to anyone not yet
  confirmed, at most once per address per ``RESEND_AFTER`` seconds.
- ``GET /confirm?t=`` confirms and records the consent (400 when the token is
  bad or expired).
- ``GET /unsubscribe?t=`` a page with one button: a GET never changes
  anything, since mail scanners open links. ``POST /unsubscribe?t=`` (the
  button, or RFC 8058 one-click with the body ``List-Unsubscribe=One-Click``)
  unsubscribes; the store commits before the 200 answer, and repeating it
  changes nothing. An address the store does not know (a CSV recipient) is
  added as unsubscribed, so a later send from any list skips it.

CSRF: the sign-up form uses a double-submit cookie (see ``guard``). The
unsubscribe button's hidden field is an HMAC of the page's own unsubscribe
token instead of a cookie: whoever can forge it already holds the token, which
one-click accepts alone, and a button that works with cookies blocked matters
more than a second secret.

Whatever goes wrong inside, the client gets a page, never a traceback (the
traceback goes to the server's standard error).
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
import time
import traceback
from base64 import b64encode
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote, urlsplit

from markupsafe import Markup

from newsletter.audience.confirmation import CONFIRM_DAYS, Mailer, confirmation_message
from newsletter.audience.groupcommit import UnsubscribeWriter
from newsletter.audience.guard import CSRF_COOKIE, CSRF_FIELD, Csrf, RateLimiter
from newsletter.audience.http import MAX_BODY, PAGE_CSP, SITE_CSP, BodyTooLarge, Request, Response, StartResponse, content_type_of, static_file
from newsletter.audience.store import SubscriberStore
from newsletter.content.addresses import address_problem
from newsletter.content.model import Config
from newsletter.mail.headers import one_line
from newsletter.errors import NewsletterError, TemplateError
from newsletter.mail.render import make_environment, render_template
from newsletter.mail.tokens import CONFIRM, CONFIRM_MAX_AGE, UNSUBSCRIBE, TokenError, seal, unseal

SITE_DIR = "site"
WEB_TEMPLATES = "templates/web/"
RESEND_AFTER = 15 * 60  # at most one confirmation email per address per 15 minutes
CONFIRMATION_SENT = "confirmation-sent"  # the store event that the rule above reads
HONEYPOT = "website"
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058 section 3.1


@dataclass(frozen=True)
class Page:
    """A rendered page: its status and body."""

    status: int
    body: bytes


class Endpoint:
    """The WSGI application of ``newsletter serve`` for one newsletter folder."""

    def __init__(
        self, folder: Path, config: Config, secret: bytes, store: SubscriberStore, mailer: Mailer, *,
        clock: Callable[[], float] = time.time, log: Callable[[str], None] | None = None,
    ) -> None:
        assert config.web.base_url, "newsletter serve needs web.base_url"
        self.folder = folder
        self.config = config
        self.secret = secret
        self.store = store
        self.mailer = mailer
        self.clock = clock
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.base_url = config.web.base_url
        base = urlsplit(self.base_url)
        self.origin = f"{base.scheme}://{base.netloc}"
        self.secure = base.scheme == "https"
        self.site = folder / SITE_DIR
        self.csrf = Csrf(secret)
        self.limiter = RateLimiter(config.web.subscribe_limit)
        self._unsubscribe_field_key = hmac.new(secret, b"newsletter unsubscribe form v1", hashlib.sha256).digest()
        # The store already takes one write at a time from this process (its own lock keeps threads
        # out of SQLite's busy handler); this lock only makes a sign-up's read-decide-write steps one
        # step, so two requests for one address cannot both send a confirmation. Unsubscribes are
        # group-committed.
        self.signup_lock = threading.Lock()
        self.unsubscriber = UnsubscribeWriter(store)
        self.env = make_environment(folder)
        css = render_template(self.env, "web/web.css", {}, copies=WEB_TEMPLATES)
        if "</" in css:
            raise TemplateError("a style sheet cannot contain '</' (it would end the <style> element)", path=f"{WEB_TEMPLATES}web.css")
        self.css = Markup(css)  # inside <style> nothing is escaped, so it goes in verbatim
        style_hash = b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
        self.page_csp = PAGE_CSP.format(style=f"'sha256-{style_hash}'")
        self.pages = self._fixed_pages()
        self.routes: dict[str, dict[str, Callable[[Request], Response]]] = {
            "/subscribe": {"GET": self.subscribe_form, "POST": self.subscribe},
            "/confirm": {"GET": self.confirm},
            "/unsubscribe": {"GET": self.unsubscribe_form, "POST": self.unsubscribe},
        }

    def close(self) -> None:
        """Write the unsubscribes still waiting; the store and mailer are closed by their owner."""
        self.unsubscriber.close()

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.route(request)
        except BodyTooLarge:
            response = self.page(self.pages["too-large"])
        except NewsletterError as exc:  # e.g. a user's template copy that fails on this page
            self.log(f"error answering {request.method} {one_line(request.path)[:200]}: {exc}")
            response = self.page(self.pages["error"])
        except Exception:  # a bug or a broken disk: a page for the client, the traceback for the log
            self.log(f"error answering {request.method} {one_line(request.path)[:200]}:\n{traceback.format_exc()}")
            response = self.page(self.pages["error"])
        return response(environ, start_response)

    def route(self, request: Request) -> Response:
        """Dispatch on the path and method."""
        path, method = request.path, request.method
        routes = self.routes.get(path.rstrip("/") or path)
        if routes is None:
            return self.archive(request)
        handler = routes.get("GET" if method == "HEAD" else method)
        if handler is None:
            response = self.page(self.pages["method"])
            response.headers.append(("Allow", ", ".join(sorted({*routes, "HEAD"} if "GET" in routes else routes))))
            return response
        return handler(request)

    # -- sign-up ---------------------------------------------------------------------------------

    def subscribe_form(self, request: Request, *, error: str | None = None, email: str = "", name: str = "") -> Response:
        cookie = request.cookie(CSRF_COOKIE)
        headers = []
        if not cookie or not self.csrf.reusable(cookie):
            cookie = self.csrf.new_cookie()
        headers.append(self.csrf.cookie_header(cookie, secure=self.secure))
        body = self.render(
            "web/subscribe.html.j2", title=f"Subscribe to {self.config.name}", csrf=self.csrf.field_for(cookie),
            consent_text=self.config.web.consent_text, error=error, email=email, name=name,
        )
        response = Response(400 if error else 200, body, headers=headers, csp=self.page_csp)
        response.headers.append(("Cache-Control", "no-store"))
        return response

    def subscribe(self, request: Request) -> Response:
        form = request.form()
        if not self._same_origin(request) or not self.csrf.valid(request.cookie(CSRF_COOKIE), form.get(CSRF_FIELD)):
            return self.page(self.pages["csrf"])
        client = request.remote_addr
        if not self.limiter.allow(client):
            response = self.page(self.pages["too-many"])
            response.headers.append(("Retry-After", str(self.limiter.retry_after(client))))
            return response
        if form.get(HONEYPOT):  # a bot: it gets the same answer and nothing happens
            return self.page(self.pages["check-inbox"])
        raw_email = form.get("email", "").strip()
        name = " ".join(one_line(form.get("name", "")).split())[:200] or None
        problem = form_address_problem(raw_email)
        if problem:
            return self.subscribe_form(request, error=problem, email=raw_email[:254], name=name or "")
        email = raw_email
        with self.signup_lock:
            if self.store.status_of(email) == "confirmed":
                return self.page(self.pages["check-inbox"])
            status = self.store.subscribe(
                email, name, how="form", consent_text=self.config.web.consent_text,
                ip=client or None, user_agent=request.user_agent or None,
            )
            send = status == "pending" and self._may_send_confirmation(email)
        if send:
            self._send_confirmation(email)
        return self.page(self.pages["check-inbox"])

    def _may_send_confirmation(self, email: str) -> bool:
        """True, and recorded, unless a confirmation went to this address in the last RESEND_AFTER seconds
        (called under the sign-up lock, so two requests cannot both pass)."""
        last = self.store.last_event_at(email, CONFIRMATION_SENT)
        if last is not None and self.clock() - last < RESEND_AFTER:
            return False
        self.store.record_event(email, CONFIRMATION_SENT)
        return True

    def _send_confirmation(self, email: str) -> None:
        """Queue the confirmation email with a link valid CONFIRM_DAYS."""
        now = self.clock()
        url = self.base_url + "confirm?t=" + seal(self.secret, CONFIRM, email, now=now)
        self.mailer.send(email, confirmation_message(self.config, email, url, now=now))

    def confirm(self, request: Request) -> Response:
        email = self._address_from_token(request, CONFIRM, max_age=CONFIRM_MAX_AGE)
        if isinstance(email, Response):
            return email
        status = self.store.status_of(email)  # a repeated click on a confirmed address needs no write
        if status == "confirmed" or (status == "pending" and self.store.confirm(
                email, ip=request.remote_addr or None, user_agent=request.user_agent or None)):
            # confirm re-reads the status in its transaction: an unsubscribe since the read above wins
            return self.page(self.pages["confirmed"])
        return self.page(self.pages["confirm-stale"])

    # -- leaving ---------------------------------------------------------------------------------

    def unsubscribe_form(self, request: Request) -> Response:
        email = self._address_from_token(request, UNSUBSCRIBE)
        if isinstance(email, Response):
            return email
        token = request.query("t") or ""
        body = self.render(
            "web/unsubscribe.html.j2", title="Unsubscribe", token=quote(token, safe=""), masked=masked(email),
            csrf=self._unsubscribe_field(token),
        )
        return Response(200, body, csp=self.page_csp, headers=[("Cache-Control", "no-store")])

    def unsubscribe(self, request: Request) -> Response:
        email = self._address_from_token(request, UNSUBSCRIBE)
        if isinstance(email, Response):
            return email
        form = request.form()
        if is_one_click(request, form):
            via = "one-click"
        elif hmac.compare_digest(self._unsubscribe_field(request.query("t") or ""), form.get(CSRF_FIELD, "")) and self._same_origin(request):
            via = "link"
        else:
            return self.page(self.pages["csrf-unsubscribe"])
        self.unsubscriber.unsubscribe(email, via)  # returns once committed: only then do we answer
        return self.page(self.pages["unsubscribed"])

    def _unsubscribe_field(self, token: str) -> str:
        return hmac.new(self._unsubscribe_field_key, token.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    # -- the archive -----------------------------------------------------------------------------

    def archive(self, request: Request) -> Response:
        """The static site at /; anything but GET and HEAD is refused."""
        if request.method not in ("GET", "HEAD"):
            response = self.page(self.pages["method"])
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        path = request.path
        site = self.site if self.site.is_dir() else None
        target = static_file(site, path) if site else None
        if target is None and site and not path.endswith("/") and static_file(site, path + "/"):
            # a folder named without its slash: relative links inside it need the slash
            return Response(301, b"", headers=[("Location", quote(path.rsplit("/", 1)[-1] + "/"))])
        if target is None:
            return self.page(self.pages["home" if path == "/" else "not-found"])
        return Response(200, content_type=content_type_of(target), file=target, csp=SITE_CSP,
                        headers=[("Cache-Control", "public, max-age=300")])

    # -- pages -----------------------------------------------------------------------------------

    def _address_from_token(self, request: Request, purpose: str, *, max_age: float | None = None) -> str | Response:
        """The address sealed in ``?t=``, or the 400 page saying why not."""
        token = request.query("t")
        if not token:
            return self.page(self.pages[f"{purpose}-missing"])
        try:
            return unseal(self.secret, purpose, token, max_age=max_age, now=self.clock())
        except TokenError as exc:
            return self.page(self.pages[f"{purpose}-expired" if exc.expired else f"{purpose}-invalid"])

    def _same_origin(self, request: Request) -> bool:
        """False when the browser says the form came from another site. Origin is absent or
        "null" under Referrer-Policy: no-referrer, so those pass to the CSRF check."""
        origin = request.origin
        return origin is None or origin == "null" or origin == self.origin

    def render(self, template: str, **context: Any) -> bytes:
        """A page from templates/web/ (the user's copy first); a broken copy is a TemplateError naming its line."""
        context.update(config=self.config, css=self.css, archive_url=self.config.archive_url)
        return render_template(self.env, template, context, copies=WEB_TEMPLATES).encode("utf-8")

    def page(self, page: Page) -> Response:
        return Response(page.status, page.body, csp=self.page_csp, headers=[("Cache-Control", "no-store")])

    def _fixed_pages(self) -> dict[str, Page]:
        """Every page whose words do not depend on the request, rendered once."""
        name = self.config.name
        signup = {"href": "subscribe", "text": "Sign up again"}
        texts: dict[str, tuple[int, str, list[str], dict[str, str] | None]] = {
            "check-inbox": (200, "Check your inbox", [
                "If this address can receive the newsletter, an email with a confirmation link is on its way to it.",
                f"Open the link within {CONFIRM_DAYS} days to start receiving {name}. Nothing arrives until you do. "
                "If you are already subscribed, there is nothing more to do.",
            ], None),
            "confirmed": (200, "You are subscribed", [f"Thank you. {name} will arrive with the next issue."], {"href": self.config.archive_url, "text": "Read past issues"}),
            "confirm-stale": (400, "This link no longer applies", [
                "This sign-up is no longer waiting for confirmation (the address was unsubscribed or removed since). Sign up again if you want the newsletter.",
            ], signup),
            "confirm-missing": (400, "This link is incomplete", ["The confirmation link lacks its code. Open the whole link from the email, or sign up again."], signup),
            "confirm-invalid": (400, "This link is not valid", ["The confirmation link is damaged (perhaps cut when it was copied). Open the whole link from the email, or sign up again."], signup),
            "confirm-expired": (400, "This link has expired", [f"Confirmation links work for {CONFIRM_DAYS} days. Sign up again to get a new one."], signup),
            "unsubscribed": (200, "You are unsubscribed", [f"You will not receive {name} any more. If this was a mistake, you can sign up again."], signup),
            "unsubscribe-missing": (400, "This link is incomplete", ["The unsubscribe link lacks its code. Open the whole link from the bottom of an issue."], None),
            "unsubscribe-invalid": (400, "This link is not valid", [
                "The unsubscribe link is damaged (perhaps cut when it was copied). Open the whole link from the bottom of an issue, "
                f"or reply to an issue asking to be removed{' (' + self.config.unsubscribe_email + ')' if self.config.unsubscribe_email else ''}.",
            ], None),
            "unsubscribe-expired": (400, "This link is not valid", ["This unsubscribe link cannot be read. Use the link in a recent issue."], None),
            "csrf": (403, "Please try again", ["The form had expired or came from another site. Reload the sign-up page and send it again (it needs cookies for this site)."], {"href": "subscribe", "text": "Reload the form"}),
            "csrf-unsubscribe": (403, "Please use the button", ["This request did not come from the unsubscribe page. Open the unsubscribe link from an issue and press the button."], None),
            "too-many": (429, "Too many sign-ups", ["Too many sign-ups came from your network in the last hour. Please try again later."], None),
            "too-large": (413, "Too much data", [f"The form sent more than {MAX_BODY // 1024} KB; a sign-up needs far less."], {"href": "subscribe", "text": "Back to the form"}),
            "method": (405, "Not allowed", ["This address does not accept that kind of request."], None),
            "not-found": (404, "Page not found", ["There is no page at this address."], {"href": self.config.archive_url, "text": "Past issues"}),
            "home": (200, name, [f"One email a month with summaries of recent research."], {"href": "subscribe", "text": "Subscribe"}),
            "error": (500, "Something went wrong", ["The server could not answer this request. Please try again in a few minutes."], None),
        }
        return {
            key: Page(status, self.render("web/message.html.j2", title=title, paragraphs=paragraphs, link=link))
            for key, (status, title, paragraphs, link) in texts.items()
        }


def is_one_click(request: Request, form: Mapping[str, str]) -> bool:
    """An RFC 8058 POST: ``List-Unsubscribe=One-Click`` as urlencoded (what Gmail and Yahoo send) or multipart form data."""
    if form.get(ONE_CLICK[0]) == ONE_CLICK[1]:
        return True
    ctype = str(request.environ.get("CONTENT_TYPE", ""))
    if not ctype.lower().startswith("multipart/form-data"):
        return False
    body = request.environ.get("_body", b"")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == ONE_CLICK[0]:
            # The bytes, not get_content(): that raises on an unknown charset or a nested message/multipart
            # part (a 500 for a hostile body), and the value is ASCII whatever the part claims.
            payload = part.get_payload(decode=True)  # None for a nested message or multipart
            return isinstance(payload, bytes) and payload.strip() == ONE_CLICK[1].encode("ascii")
    return False


def form_address_problem(raw: str) -> str | None:
    """Why the address typed into the form cannot be used (the same checks as every list), or None."""
    if not raw:
        return "Please enter your email address."
    problem = address_problem(raw)
    return f"That is not an email address we can send to: {problem}." if problem else None


def masked(address: str) -> str:
    """'a•••@example.org': enough for the owner to recognise, not a full address for whoever holds a forwarded link."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"
