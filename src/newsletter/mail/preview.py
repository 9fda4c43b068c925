"""``newsletter preview``: a live preview of one issue, served on 127.0.0.1 only.

The page shows the email at desktop and phone widths side by side, the plain
text, subject, preheader, size and the warnings ``newsletter check`` gives.  It
polls ``/state`` for a version stamp made from the modification times and sizes
of the issue file, the config and every template, and reloads itself when the
stamp changes; the page is rebuilt lazily when it is next requested.  A broken
edit shows the located error instead of the email, and the server keeps going.

Standard library only: ``http.server`` and a few lines of inline JavaScript
(no external assets, no network).
"""

from __future__ import annotations

import errno
import hashlib
import html
import json
import secrets
import threading
import traceback
import webbrowser
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from newsletter.content.config import find_config
from newsletter.errors import NewsletterError
from newsletter.content.load import display_path, resolve_issue_path
from newsletter.content.model import MONTH_RE
from newsletter.mail.render import GMAIL_CLIP_BYTES, PREVIEW_GREETING, Personal, RenderedEmail, template_files

HOST = "127.0.0.1"
DESKTOP_WIDTH = 800
PHONE_WIDTH = 375
NEAR_CLIP_BYTES = 90 * 1024  # warn while there is still room to shorten
POLL_MS = 500


@dataclass(frozen=True)
class Snapshot:
    """One build of the preview: the email, or the errors that stopped it."""

    version: str
    issue_display: str
    rendered: RenderedEmail | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Preview:
    """Watches one issue's inputs and rebuilds its snapshot when they change."""

    def __init__(self, folder: Path, issue_arg: str, greeting: str = PREVIEW_GREETING) -> None:
        self.folder = folder
        self.issue_arg = issue_arg
        self.greeting = greeting  # shown where each reader's "Dear ...," goes
        self.issue_path = resolve_issue_path(folder, issue_arg)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def watched_files(self) -> list[Path]:
        """The files whose change means a rebuild: issue, config, every template."""
        return [self.issue_path, find_config(self.folder), *template_files(self.folder)]

    def version(self) -> str:
        """A stamp of the watched files' identities, sizes and modification times."""
        digest = hashlib.sha1()
        for path in self.watched_files():
            try:
                st = path.stat()
                digest.update(f"{path}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}|missing\n".encode())
        return digest.hexdigest()[:16]

    def snapshot(self) -> Snapshot:
        """The current build, rebuilt first if any watched file changed."""
        with self._lock:
            version = self.version()
            if self._snapshot is None or self._snapshot.version != version:
                self._snapshot = self._build(version)
            return self._snapshot

    def _build(self, version: str) -> Snapshot:
        # Imported here so that `newsletter preview --help` stays quick.
        from newsletter.mail.check import check
        from newsletter.content.config import load_config
        from newsletter.content.load import load_issue
        from newsletter.mail.render import Renderer

        display = display_path(self.issue_path, self.folder)
        try:
            report = check(self.folder, [self.issue_arg], placeholders="warning")
            warnings = [str(p) for p in report.warnings]
            if not report.ok:
                return Snapshot(version, display, errors=[str(p) for p in report.errors], warnings=warnings)
            config = load_config(self.folder)
            loaded = load_issue(self.issue_path, config, self.folder, placeholders="warning")
            assert loaded.issue is not None
            rendered = Renderer(self.folder, config).render(loaded.issue, Personal(greeting=self.greeting))
            return Snapshot(version, display, rendered=rendered, warnings=warnings)
        except NewsletterError as exc:
            return Snapshot(version, display, errors=[str(exc)])
        except Exception as exc:  # a bug, not a user mistake: show it and keep serving
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return Snapshot(version, display, errors=[f"internal error while building the preview: {detail}\n(please report this)"])


def preview_page(folder: Path, issue_arg: str, greeting: str = PREVIEW_GREETING) -> str:
    """The preview page's HTML for an issue, built without a server (for tests and tools)."""
    return render_page(Preview(folder, issue_arg, greeting).snapshot())


def render_page(snap: Snapshot, nonce: str = "") -> str:
    """The preview page for one snapshot; every user-supplied text is escaped."""
    e = html.escape
    parts: list[str] = []
    if snap.rendered is not None:
        r = snap.rendered
        title = r.subject
        size = r.html_bytes
        size_note = f"HTML {size / 1024:.1f} KB"
        size_class = "ok"
        if size > GMAIL_CLIP_BYTES:
            size_note += " — over Gmail's 102 KB limit: Gmail will clip it, hiding the footer and unsubscribe link"
            size_class = "bad"
        elif size > NEAR_CLIP_BYTES:
            size_note += " — close to Gmail's 102 KB clip; keep it shorter"
            size_class = "warn"
        parts.append(
            f'<header><h1 id="subject">{e(r.subject)}</h1>'
            f'<p id="preheader">{e(r.preheader) if r.preheader else "<em>no preheader</em>"}</p>'
            f'<p id="size" class="{size_class}">{e(size_note)}</p></header>'
        )
    else:
        title = f"{snap.issue_display}: cannot build"
        parts.append(
            f'<header><h1>{e(snap.issue_display)}</h1></header>'
            '<section id="errors" class="errors"><h2>The email cannot be built</h2>'
            + "".join(f"<pre>{e(message)}</pre>" for message in snap.errors)
            + "<p>Fix the file and save; this page reloads by itself.</p></section>"
        )
    if snap.warnings:
        parts.append(
            '<section id="warnings" class="warnings"><h2>Warnings</h2><ul>'
            + "".join(f"<li><code>{e(w)}</code></li>" for w in snap.warnings)
            + "</ul></section>"
        )
    if snap.rendered is not None:
        email = e(snap.rendered.html, quote=True)
        # sandbox without allow-scripts: nothing in the email can run; same-origin
        # lets this page read the frame's height.
        frame = '<iframe id="{id}" title="{label}" sandbox="allow-same-origin allow-popups" style="width:{w}px" srcdoc="{doc}"></iframe>'
        parts.append(
            '<div class="panes">'
            f'<figure><figcaption>Desktop, {DESKTOP_WIDTH} px</figcaption>{frame.format(id="desktop", label="desktop", w=DESKTOP_WIDTH, doc=email)}</figure>'
            f'<figure><figcaption>Phone, {PHONE_WIDTH} px</figcaption>{frame.format(id="phone", label="phone", w=PHONE_WIDTH, doc=email)}</figure>'
            "</div>"
            f'<section><h2>Plain text</h2><pre id="text">{e(snap.rendered.text)}</pre></section>'
        )
    nonce_attr = f' nonce="{e(nonce)}"' if nonce else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Preview: {e(title)}</title><style>{_PAGE_CSS}</style></head>"
        f'<body data-version="{e(snap.version)}"><p id="status" hidden></p>'
        + "".join(parts)
        + f"<script{nonce_attr}>{_PAGE_JS}</script></body></html>\n"
    )


_PAGE_CSS = """
body { font-family: system-ui, sans-serif; margin: 16px; background: #eceae6; color: #222; }
header h1 { font-size: 20px; margin: 0 0 4px 0; }
header p { margin: 0 0 4px 0; color: #444; }
.ok { color: #2d6a2d; } .warn { color: #8a5a00; font-weight: bold; } .bad { color: #a00; font-weight: bold; }
.errors { background: #fff0f0; border: 2px solid #c00; padding: 8px 16px; margin: 12px 0; }
.errors pre { white-space: pre-wrap; font-size: 14px; }
.warnings { background: #fffbe6; border: 1px solid #d9b400; padding: 4px 16px; margin: 12px 0; }
.panes { display: flex; gap: 24px; align-items: flex-start; overflow-x: auto; margin: 12px 0; }
figure { margin: 0; } figcaption { font-size: 13px; color: #555; margin-bottom: 4px; }
iframe { border: 1px solid #bbb; background: #fff; height: 900px; display: block; }
#text { background: #fff; padding: 12px; border: 1px solid #bbb; max-width: 80ch; white-space: pre-wrap; }
#status { position: fixed; top: 0; right: 0; background: #a00; color: #fff; padding: 4px 8px; margin: 0; }
"""

# Polls /state and reloads when the inputs changed; keeps the scroll position
# across reloads so a writer stays where they were reading.
_PAGE_JS = """
(function () {
  var version = document.body.dataset.version;
  var status = document.getElementById("status");
  function fit() {
    document.querySelectorAll("iframe").forEach(function (f) {
      try { f.style.height = (f.contentDocument.documentElement.scrollHeight + 4) + "px"; } catch (e) {}
    });
  }
  window.addEventListener("load", function () {
    fit();
    var y = sessionStorage.getItem("preview-scroll");
    if (y !== null) { window.scrollTo(0, parseInt(y, 10)); sessionStorage.removeItem("preview-scroll"); }
  });
  function poll() {
    fetch("/state", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (s) {
      status.hidden = true;
      if (s.version !== version) {
        sessionStorage.setItem("preview-scroll", String(window.scrollY));
        location.reload();
        return;
      }
      setTimeout(poll, %d);
    }).catch(function () {
      status.textContent = "The preview server is not answering; is `newsletter preview` still running?";
      status.hidden = false;
      setTimeout(poll, 2000);
    });
  }
  setTimeout(poll, %d);
})();
""" % (POLL_MS, POLL_MS)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._host_allowed():
            self._send(HTTPStatus.FORBIDDEN, "text/plain", b"forbidden host\n")
            return
        preview = self.server.preview
        route = urlsplit(self.path).path
        if route == "/state":
            body = json.dumps({"version": preview.version()}).encode()
            self._send(HTTPStatus.OK, "application/json", body)
        elif route == "/":
            nonce = secrets.token_urlsafe(12)
            body = render_page(preview.snapshot(), nonce).encode("utf-8")
            csp = f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src data: http: https:; connect-src 'self'; frame-src 'self'"
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", body, {"Content-Security-Policy": csp})
        elif route in ("/email.html", "/email.txt"):
            snap = preview.snapshot()
            if snap.rendered is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "\n\n".join(snap.errors).encode("utf-8") + b"\n")
            elif route == "/email.html":
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", snap.rendered.html_utf8, {"Content-Security-Policy": "script-src 'none'"})
            else:
                self._send(HTTPStatus.OK, "text/plain; charset=utf-8", snap.rendered.text.encode("utf-8"))
        elif route == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, "image/x-icon", b"")
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def _host_allowed(self) -> bool:
        # refuse other Host names so a web page cannot reach us by DNS rebinding
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost", "")

    def _send(self, status: HTTPStatus, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # one poll every half second would drown the terminal


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    preview: Preview


class PreviewServer:
    """The preview HTTP server; bind on construction, then serve (here or in a thread)."""

    def __init__(self, folder: Path, issue_arg: str, port: int = 0, greeting: str = PREVIEW_GREETING) -> None:
        self.preview = Preview(folder, issue_arg, greeting)
        if not self.preview.issue_path.is_file():
            raise NewsletterError(
                "file not found",
                path=display_path(self.preview.issue_path, folder),
                hint=f"create it with `newsletter new {issue_arg if MONTH_RE.match(issue_arg) else 'YYYY-MM'}`, or give the path of an existing issue file",
            )
        try:
            self.httpd = _Server((HOST, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise NewsletterError(f"{HOST}:{port} is already in use", hint="choose another port with --port N, or --port 0 for any free one") from None
            raise NewsletterError(f"cannot listen on {HOST}:{port}: {exc.strerror}", hint="choose another port with --port N") from None
        self.httpd.preview = self.preview
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve until ``stop()`` (from another thread) or KeyboardInterrupt."""
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> "PreviewServer":
        """Serve in a daemon thread (for tests and embedding); returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="newsletter-preview", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> "PreviewServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(folder: Path, issue_arg: str, *, port: int, open_browser: bool, announce: Callable[[str], None],
          greeting: str = PREVIEW_GREETING) -> None:
    """Serve the live preview on 127.0.0.1 until Ctrl-C, showing ``greeting`` as readers' copies do."""
    server = PreviewServer(folder, issue_arg, port, greeting)
    first = server.preview.snapshot()  # build once now so the first page is quick
    announce(f"previewing {first.issue_display} at {server.url} (Ctrl-C to stop)")
    for message in first.errors:
        announce(message)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        announce("preview stopped")
    finally:
        server.httpd.server_close()
