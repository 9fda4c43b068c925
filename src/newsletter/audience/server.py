"""``newsletter serve``: run the public endpoint (``web.Endpoint``) on waitress.

waitress is a production WSGI server in pure Python (no C build, runs on any
Debian): it parses HTTP, keeps connections alive, buffers bodies and refuses
those over the limit before the app sees them, and believes
``X-Forwarded-For`` only from the configured ``web.trusted_proxy``, so the
per-IP sign-up limit counts real clients behind a reverse proxy and cannot be
dodged by a forged header. It binds 127.0.0.1 unless told otherwise: TLS
belongs to the reverse proxy in front (see the README).

It writes no access log: the URLs carry subscribers' tokens.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable, Mapping

from newsletter.audience.confirmation import Mailer
from newsletter.audience.http import MAX_BODY
from newsletter.audience.store import SubscriberStore
from newsletter.audience.web import Endpoint
from newsletter.content.config import CONFIG_NAME, load_config
from newsletter.errors import ConfigError, NewsletterError
from newsletter.mail.tokens import SECRET_ENV

THREADS = 16  # enough for a burst of one-click POSTs to share one commit (see audience/groupcommit.py and docs/benchmarks.md)


def serve(
    folder: Path, *, host: str = "127.0.0.1", port: int = 8080, env: Mapping[str, str] | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until Ctrl-C or SIGTERM; refuse to start without NEWSLETTER_SECRET or web.base_url."""
    import waitress.server

    env = os.environ if env is None else env
    secret = env.get(SECRET_ENV, "")
    if not secret:
        raise NewsletterError(
            f"{SECRET_ENV} is not set: the endpoint needs the key that signed the unsubscribe links in your emails",
            hint=f"export {SECRET_ENV}=<the same value you send with> (in a systemd unit: EnvironmentFile=, see the README)",
        )
    config = load_config(folder, env)
    if not config.web.base_url:
        raise ConfigError(
            "web.base_url is not set: the endpoint must know the public address its links use",
            path=CONFIG_NAME, hint="add to newsletter.yaml:\n    web:\n      base_url: https://notes.example.org/",
        )
    store = SubscriberStore.open(folder)
    mailer = Mailer(config, folder, env)
    app = Endpoint(folder, config, secret.encode("utf-8"), store, mailer)
    options: dict[str, object] = {
        "host": host, "port": port, "threads": THREADS, "ident": "newsletter",
        # waitress drops anything far over the limit; the app answers its own 413 page below that
        "max_request_body_size": 64 * MAX_BODY, "max_request_header_size": 64 * 1024,
        "expose_tracebacks": False, "clear_untrusted_proxy_headers": True,
    }
    if config.web.trusted_proxy:
        options.update(trusted_proxy=config.web.trusted_proxy, trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"})
    try:
        server = waitress.server.create_server(app, **options)
    except OSError as exc:
        raise NewsletterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="pick another --port, or stop what uses this one") from None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # systemd stops services with SIGTERM
    announce(f"serving {config.web.base_url} on http://{_url_host(host)}:{server.effective_port}/ (Ctrl-C stops)")  # type: ignore[union-attr]
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        app.close()
        mailer.close()
        store.close()
    announce("stopped")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
