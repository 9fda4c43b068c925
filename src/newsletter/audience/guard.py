"""Abuse limits of the public endpoint: a per-IP sign-up limit and CSRF tokens for its forms.

The limits live in memory: they exist to blunt floods, and a restart that
forgets them costs nothing (the once-per-15-minutes rule for confirmation
emails is kept in the subscriber store instead, so it survives restarts; see
``web``). Memory stays bounded: at most ``max_clients`` IPs are remembered,
the ones seen longest ago forgotten first.

CSRF: a double-submit token. The form page sets a random value in an
HttpOnly, SameSite=Strict cookie and puts HMAC(secret, value) in a hidden
field; a POST must bring both, and they must match. Another site can neither
read the cookie nor compute the field. The RFC 8058 one-click POST carries no
cookie (mail providers send none) and is exempt: its signed unsubscribe token
is the proof.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

CSRF_COOKIE = "nl_csrf"
CSRF_FIELD = "csrf"
HOUR = 3600.0
# What ``new_cookie`` makes (token_urlsafe); anything else a browser sends is not ours to echo back.
_OWN_COOKIE = re.compile(r"[A-Za-z0-9_-]{1,100}")


class RateLimiter:
    """At most ``limit`` events per client within ``window`` seconds (a sliding window)."""

    def __init__(self, limit: int, window: float = HOUR, *, max_clients: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Count one event for ``client``; False (and not counted) when it is over the limit."""
        now = self.clock()
        with self._lock:
            times = self._seen.pop(client, None) or deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            allowed = len(times) < self.limit
            if allowed:
                times.append(now)
            self._seen[client] = times  # most recently seen last
            while len(self._seen) > self.max_clients:
                self._seen.popitem(last=False)
            return allowed

    def retry_after(self, client: str) -> int:
        """Whole seconds until ``client`` may try again (0 if it may now)."""
        now = self.clock()
        with self._lock:
            times = self._seen.get(client)
            if not times or len(times) < self.limit:
                return 0
            return max(1, int(times[0] + self.window - now) + 1)


class Csrf:
    """Issue and check double-submit CSRF tokens bound to a key derived from the secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"newsletter csrf v1", hashlib.sha256).digest()

    def new_cookie(self) -> str:
        return secrets.token_urlsafe(24)

    @staticmethod
    def reusable(cookie: str) -> bool:
        """True when ``cookie`` has the form ``new_cookie`` gives, so the form page may set it again.

        A quoted cookie unquotes to any byte (CR LF included); echoed into Set-Cookie
        that would split the header, which the server refuses with an error.
        """
        return _OWN_COOKIE.fullmatch(cookie) is not None

    def field_for(self, cookie: str) -> str:
        return hmac.new(self._key, cookie.encode("ascii", "replace"), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field or len(cookie) > 100:
            return False
        return hmac.compare_digest(self.field_for(cookie), field)

    @staticmethod
    def cookie_header(value: str, *, secure: bool) -> tuple[str, str]:
        """The Set-Cookie header: unreadable by scripts, never sent by another site's requests."""
        flags = "; Secure" if secure else ""
        return ("Set-Cookie", f"{CSRF_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400{flags}")
