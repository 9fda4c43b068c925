"""The endpoint's abuse limits: the per-IP sign-up window and the CSRF double-submit tokens."""

from __future__ import annotations

from newsletter.audience.guard import Csrf, RateLimiter


class Clock:
    """A clock the test moves by hand instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_per_client_in_a_sliding_window() -> None:
    clock = Clock()
    limiter = RateLimiter(3, window=3600, clock=clock)
    assert [limiter.allow("192.0.2.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("192.0.2.2"), "another client has its own allowance"
    assert 3599 <= limiter.retry_after("192.0.2.1") <= 3601
    clock.now += 1800
    assert not limiter.allow("192.0.2.1"), "refused attempts are not counted, but the window has not passed"
    clock.now += 1801
    assert limiter.allow("192.0.2.1")
    assert limiter.retry_after("192.0.2.2") == 0


def test_memory_stays_bounded_forgetting_the_oldest_clients() -> None:
    limiter = RateLimiter(1, clock=Clock(), max_clients=100)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._seen) == 100
    assert limiter.allow("10.0.0.0"), "the first client was forgotten"
    assert not limiter.allow("10.0.3.231"), "the last client is still remembered"


def test_csrf_field_matches_only_its_cookie_and_secret() -> None:
    csrf = Csrf(b"secret one")
    cookie = csrf.new_cookie()
    field = csrf.field_for(cookie)
    assert csrf.valid(cookie, field)
    assert not csrf.valid(csrf.new_cookie(), field)
    assert not csrf.valid(cookie, field[:-1] + ("0" if field[-1] != "0" else "1"))
    assert not csrf.valid(None, field) and not csrf.valid(cookie, None) and not csrf.valid("", "")
    assert not Csrf(b"secret two").valid(cookie, field)


def test_csrf_cookie_is_httponly_strict_and_secure_on_https() -> None:
    name, value = Csrf.cookie_header("abc", secure=True)
    assert name == "Set-Cookie"
    assert value.startswith("nl_csrf=abc;") and "HttpOnly" in value and "SameSite=Strict" in value and value.endswith("Secure")
    assert "Secure" not in Csrf.cookie_header("abc", secure=False)[1]
