"""`newsletter serve` as a real process on 127.0.0.1, spoken to over HTTP: sign-up, confirmation,
one-click unsubscribe, the archive, and the abuse limits."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from newsletter.audience.store import SubscriberStore
from newsletter.mail.tokens import seal
from process_support import listening_addresses
from serve_support import (
    SECRET, Reply, Served, confirm_link, configure_web, one_click, outbox_messages, request, serve_env, start_serve,
    wait_for_messages,
)
from smtp_fault_server import free_port

SECURE = SECRET.encode("utf-8")


def _status(folder: Path, address: str) -> str | None:
    with SubscriberStore.open(folder) as store:
        return store.status_of(address)


def _form(base: str) -> tuple[str, str]:
    """GET /subscribe: the CSRF cookie and the form's hidden field."""
    reply = request(base, "GET", "/subscribe")
    assert reply.status == 200
    cookie = reply.headers["Set-Cookie"].split(";")[0]
    field = re.search(r'name="csrf" value="([0-9a-f]+)"', reply.body).group(1)
    return cookie, field


def _subscribe(base: str, address: str, *, name: str = "", website: str = "", cookie_field: tuple[str, str] | None = None) -> Reply:
    cookie, field = cookie_field or _form(base)
    body = urlencode({"csrf": field, "email": address, "name": name, "website": website}).encode()
    return request(base, "POST", "/subscribe", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
    })


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# -- starting -----------------------------------------------------------------------------------


def test_refuses_to_start_without_the_secret(folder: Path) -> None:
    configure_web(folder, free_port())
    env = serve_env()
    del env["NEWSLETTER_SECRET"]
    result = subprocess.run([sys.executable, "-m", "newsletter", "serve", "--port", "0", "--folder", str(folder)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: NEWSLETTER_SECRET is not set")
    assert "Traceback" not in result.stderr


def test_refuses_to_start_without_base_url(folder: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "newsletter", "serve", "--port", "0", "--folder", str(folder)],
                            env=serve_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "newsletter.yaml: web.base_url is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_listens_on_loopback_only_by_default(served: Served) -> None:
    assert listening_addresses(served.port) == ["0100007F"]  # 127.0.0.1 in /proc's byte order, nothing else


# -- sign-up ------------------------------------------------------------------------------------


def test_sign_up_confirm_and_the_consent_recorded(served: Served) -> None:
    folder, base = served.folder, served.base
    reply = _subscribe(base, "Ada.Lovelace@Example.org", name="Ada Lovelace")
    assert (reply.status, reply.title) == (200, "Check your inbox")
    (message,) = wait_for_messages(folder, "Ada.Lovelace@example.org")
    assert message["Subject"] == "Confirm your subscription to Practice Research Notes"
    assert _status(folder, "ada.lovelace@example.org") == "pending"
    link = confirm_link(message)
    assert "Lovelace" not in link and "example" not in link.split("?t=")[1]
    confirmed = request(base, "GET", _path(link), headers={"User-Agent": "test-browser/1"})
    assert (confirmed.status, confirmed.title) == (200, "You are subscribed")
    with SubscriberStore.open(folder) as store:
        assert store.status_of("ada.lovelace@example.org") == "confirmed"
        row = store.get("ada.lovelace@example.org")
        assert row.name == "Ada Lovelace" and row.consent_how == "form" and row.consent_ip == "127.0.0.1"
        assert row.consent_text.startswith("Yes, send me this newsletter by email")
        assert row.confirm_user_agent == "test-browser/1"
    again = request(base, "GET", _path(link))
    assert (again.status, again.title) == (200, "You are subscribed")


def test_an_internationalised_domain_signs_up_and_gets_mail_at_its_punycode_form(served: Served) -> None:
    assert _subscribe(served.base, "leser@bücher.de").status == 200
    (message,) = wait_for_messages(served.folder, "leser@xn--bcher-kva.de")
    assert request(served.base, "GET", _path(confirm_link(message))).title == "You are subscribed"
    assert _status(served.folder, "leser@bücher.de") == "confirmed"


def test_the_answer_is_the_same_whoever_is_asking(served: Served) -> None:
    """New, pending, confirmed and unsubscribed addresses get byte-identical pages."""
    folder, base = served.folder, served.base
    with SubscriberStore.open(folder) as store:
        store.subscribe("pending@example.org", how="command", status="pending")
        store.subscribe("confirmed@example.org", how="command", status="confirmed")
        store.subscribe("gone@example.org", how="command", status="confirmed")
        store.unsubscribe("gone@example.org", via="command")
    bodies = {address: _subscribe(base, address).body for address in
              ("new@example.org", "pending@example.org", "confirmed@example.org", "gone@example.org")}
    assert len(set(bodies.values())) == 1, "the page differs between addresses"
    assert "Check your inbox" in bodies["new@example.org"]
    assert _status(folder, "confirmed@example.org") == "confirmed"
    assert _status(folder, "gone@example.org") == "pending", "a new sign-up brings back someone who left, pending confirmation"
    for address in ("new@example.org", "pending@example.org", "gone@example.org"):
        assert len(wait_for_messages(folder, address)) == 1, address
    time.sleep(0.5)  # the mailer thread had its chance
    assert outbox_messages(folder, "confirmed@example.org") == []


def test_one_confirmation_email_per_address_per_quarter_hour(served: Served) -> None:
    for _ in range(3):
        assert _subscribe(served.base, "eager@example.org").status == 200
    assert len(wait_for_messages(served.folder, "eager@example.org")) == 1
    time.sleep(0.5)
    assert len(outbox_messages(served.folder, "eager@example.org")) == 1


def test_honeypot_gets_the_same_page_and_nothing_happens(served: Served) -> None:
    honest = _subscribe(served.base, "human@example.org")
    bot = _subscribe(served.base, "bot@example.org", website="http://spam.example")
    assert (bot.status, bot.body) == (honest.status, honest.body)
    assert _status(served.folder, "bot@example.org") is None
    wait_for_messages(served.folder, "human@example.org")
    assert outbox_messages(served.folder, "bot@example.org") == []


def test_invalid_address_shows_the_form_again_with_the_reason(served: Served) -> None:
    reply = _subscribe(served.base, "not an address", name="<b>Eve</b>")
    assert reply.status == 400 and reply.title == "Subscribe to Practice Research Notes"
    assert "That is not an email address we can send to" in reply.body
    assert "&lt;b&gt;Eve&lt;/b&gt;" in reply.body and "<b>Eve" not in reply.body


def test_post_without_csrf_or_from_another_site_is_refused(served: Served) -> None:
    body = urlencode({"email": "victim@example.org"}).encode()
    reply = request(served.base, "POST", "/subscribe", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (reply.status, reply.title) == (403, "Please try again")
    cookie, field = _form(served.base)
    body = urlencode({"csrf": field, "email": "victim@example.org"}).encode()
    reply = request(served.base, "POST", "/subscribe", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "Origin": "https://evil.example"})
    assert reply.status == 403
    assert _status(served.folder, "victim@example.org") is None


def test_per_ip_limit_on_sign_ups(folder: Path) -> None:
    server = start_serve(folder, extra_config="  subscribe_limit: 3\n")
    try:
        replies = [_subscribe(server.base, f"reader{i}@example.org") for i in range(4)]
        assert [r.status for r in replies] == [200, 200, 200, 429]
        assert replies[3].title == "Too many sign-ups" and int(replies[3].headers["Retry-After"]) > 3000
        assert _status(folder, "reader3@example.org") is None
    finally:
        assert "Traceback" not in server.stop()


def test_bodies_over_the_limit_are_refused(served: Served) -> None:
    cookie, field = _form(served.base)
    body = urlencode({"csrf": field, "email": "big@example.org", "name": "x" * 20000}).encode()
    reply = request(served.base, "POST", "/subscribe", body=body, headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    assert (reply.status, reply.title) == (413, "Too much data")
    assert _status(served.folder, "big@example.org") is None


def test_bad_and_expired_confirmation_links_get_a_clear_400(served: Served) -> None:
    expired = seal(SECURE, "confirm", "late@example.org", now=time.time() - 8 * 86400)
    reply = request(served.base, "GET", f"/confirm?t={expired}")
    assert (reply.status, reply.title) == (400, "This link has expired")
    fresh = seal(SECURE, "confirm", "late@example.org")
    tampered = fresh[:-3] + ("A" if fresh[-3] != "A" else "B") + fresh[-2:]
    assert request(served.base, "GET", f"/confirm?t={tampered}").title == "This link is not valid"
    unsubscribe_token = seal(SECURE, "unsubscribe", "late@example.org", now=0)
    assert request(served.base, "GET", f"/confirm?t={unsubscribe_token}").status == 400, "a token works for its own purpose only"
    assert request(served.base, "GET", "/confirm").status == 400
    assert _status(served.folder, "late@example.org") is None


# -- unsubscribing ------------------------------------------------------------------------------


def test_get_unsubscribe_changes_nothing_and_one_click_does(served: Served) -> None:
    folder, base = served.folder, served.base
    with SubscriberStore.open(folder) as store:
        store.subscribe("reader@example.org", how="command", status="confirmed")
    token = seal(SECURE, "unsubscribe", "reader@example.org", now=0)
    page = request(base, "GET", f"/unsubscribe?t={token}")
    assert (page.status, page.title) == (200, "Unsubscribe")
    assert "r•••@example.org" in page.body and "reader@example.org" not in page.body
    assert page.headers["Cache-Control"] == "no-store"
    assert _status(folder, "reader@example.org") == "confirmed", "a GET (a mail scanner) must not unsubscribe"
    for _ in range(2):  # idempotent
        reply = one_click(base, f"/unsubscribe?t={token}")
        assert (reply.status, reply.title) == (200, "You are unsubscribed")
        assert reply.headers.get("Set-Cookie") is None
        assert _status(folder, "reader@example.org") == "unsubscribed", "committed before the answer"
    with SubscriberStore.open(folder) as store:
        vias = [e["detail"].get("via") for e in store.events("reader@example.org") if e["event"] == "unsubscribed"]
    assert vias == ["one-click"]


def test_one_click_as_multipart_form_data_works_too(served: Served) -> None:
    token = seal(SECURE, "unsubscribe", "multi@example.org", now=0)
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n")
    reply = request(served.base, "POST", f"/unsubscribe?t={token}", body=body, headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert reply.status == 200
    assert _status(served.folder, "multi@example.org") == "unsubscribed"


def test_a_csv_recipient_is_added_to_the_store_as_unsubscribed(served: Served) -> None:
    token = seal(SECURE, "unsubscribe", "Only.In.CSV@example.org", now=0)
    assert one_click(served.base, f"/unsubscribe?t={token}").status == 200
    assert _status(served.folder, "only.in.csv@example.org") == "unsubscribed"


def test_unsubscribe_post_without_one_click_or_the_page_field_changes_nothing(served: Served) -> None:
    token = seal(SECURE, "unsubscribe", "kept@example.org", now=0)
    reply = request(served.base, "POST", f"/unsubscribe?t={token}", body=b"", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 403
    assert _status(served.folder, "kept@example.org") is None


def test_bad_unsubscribe_tokens_get_400_and_never_a_traceback(served: Served) -> None:
    good = seal(SECURE, "unsubscribe", "someone@example.org", now=0)
    for token in (good[:-1], good + "A", "x" * 40, "%ff%00", "", good.replace(good[10], "-" if good[10] != "-" else "_", 1)):
        reply = one_click(served.base, f"/unsubscribe?t={token}")
        assert reply.status == 400, token
        assert "Traceback" not in reply.body and "Error" not in reply.body
    foreign = seal(b"another secret", "unsubscribe", "someone@example.org", now=0)
    assert one_click(served.base, f"/unsubscribe?t={foreign}").status == 400
    assert _status(served.folder, "someone@example.org") is None


# -- headers, errors and the archive ------------------------------------------------------------


def test_every_answer_carries_the_security_headers(served: Served) -> None:
    token = seal(SECURE, "unsubscribe", "h@example.org", now=0)
    for method, path in (("GET", "/subscribe"), ("GET", f"/unsubscribe?t={token}"), ("GET", "/unsubscribe?t=bad"),
                         ("GET", "/nowhere"), ("DELETE", "/subscribe"), ("GET", "/")):
        reply = request(served.base, method, path)
        assert reply.headers["Referrer-Policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], path
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "Traceback" not in reply.body
    assert request(served.base, "DELETE", "/subscribe").status == 405
    assert request(served.base, "GET", "/nowhere").status == 404


def test_the_archive_site_is_served_at_the_root(folder: Path) -> None:
    from newsletter.publish.archive import archive_issue
    from newsletter.publish.site import build_site

    archive_issue(folder, "2026-10", report=None)
    build_site(folder)
    server = start_serve(folder)
    try:
        index = request(server.base, "GET", "/")
        assert index.status == 200 and "<title>Practice Research Notes</title>" in index.body
        assert index.body == (folder / "site" / "index.html").read_text(encoding="utf-8")
        assert index.headers["Content-Security-Policy"].startswith("default-src 'self'")
        css = request(server.base, "GET", "/assets/site.css")
        assert css.status == 200 and css.headers["Content-Type"] == "text/css; charset=utf-8"
        month = request(server.base, "GET", "/2026-10")
        assert month.status == 301 and month.headers["Location"] == "2026-10/"
        assert request(server.base, "GET", "/2026-10/").status == 200
        assert request(server.base, "GET", "/../newsletter.yaml").status == 404
        assert request(server.base, "GET", "/subscribe").title == "Subscribe to Practice Research Notes", "the endpoint's routes come first"
    finally:
        assert "Traceback" not in server.stop()


# -- concurrency --------------------------------------------------------------------------------


def test_fifty_sign_ups_and_fifty_unsubscribes_during_a_send_lose_nothing(folder: Path) -> None:
    """While a rate-limited send to 1,000 readers runs (at least 5 s at 200 msg/s), 100 requests at
    once: every one answered 200, every write in the store, no "database is locked" anywhere."""
    from concurrent.futures import ThreadPoolExecutor

    from newsletter.audience.subscribers import Subscriber

    readers = [f"reader{i:04d}@example.org" for i in range(1000)]
    with SubscriberStore.open(folder) as store:
        store.subscribe_many((Subscriber(a) for a in readers), how="import", status="confirmed", source="test")
    (folder / "list.csv").write_text("email\n" + "\n".join(readers) + "\n", encoding="utf-8")
    server = start_serve(folder, extra_config="  subscribe_limit: 1000\n")
    send = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "2026-10", "--to", str(folder / "list.csv"), "--yes", "--rate", "200", "--folder", str(folder)],
                            env=serve_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        new = folder / "outbox" / "new"
        while not (new.is_dir() and any(new.iterdir())) and send.poll() is None and time.monotonic() < deadline:  # the send is handing messages over
            time.sleep(0.05)
        leaving = readers[100:150]
        joining = [f"new{i:02d}@example.org" for i in range(50)]
        forms = [_form(server.base) for _ in joining]

        def leave(address: str) -> int:
            return one_click(server.base, f"/unsubscribe?t={seal(SECURE, 'unsubscribe', address, now=0)}").status

        def join(args: tuple[str, tuple[str, str]]) -> int:
            return _subscribe(server.base, args[0], cookie_field=args[1]).status

        with ThreadPoolExecutor(max_workers=100) as pool:
            left = pool.map(leave, leaving)
            joined = pool.map(join, zip(joining, forms))
            statuses = list(left) + list(joined)
        assert send.poll() is None, "the send was still running while the requests were answered"
        assert statuses == [200] * 100
        send_out, send_err = send.communicate(timeout=120)
        assert send.returncode == 0, send_out + send_err
    finally:
        if send.poll() is None:
            send.kill()
            send.communicate()
        server_err = server.stop()
    assert "database is locked" not in server_err + send_err and "Traceback" not in server_err, server_err
    with SubscriberStore.open(folder) as store:
        assert [store.status_of(a) for a in leaving] == ["unsubscribed"] * 50
        assert [store.status_of(a) for a in joining] == ["pending"] * 50
        assert all(store.status_of(a) == "confirmed" for a in readers[:100] + readers[150:])
    confirmations = Counter(m["To"].addresses[0].addr_spec for m in outbox_messages(folder) if str(m["Subject"]).startswith("Confirm"))
    assert confirmations == Counter(joining), "one confirmation email to each new address (stopping the server sends what is queued)"


def test_a_second_confirmation_goes_out_only_after_a_quarter_hour(folder: Path) -> None:
    """The app called in-process (WSGI) with the store and the app on one hand-moved clock."""
    import io

    from newsletter.audience.confirmation import Mailer
    from newsletter.audience.web import Endpoint
    from newsletter.content.config import load_config

    configure_web(folder, 8080)
    clock = [time.time()]
    store = SubscriberStore.open(folder, clock=lambda: clock[0])
    mailer = Mailer(load_config(folder, {}), folder, {})
    app = Endpoint(folder, load_config(folder, {}), SECURE, store, mailer, clock=lambda: clock[0])

    def call(method: str, path: str, body: bytes = b"", cookie: str = "") -> tuple[str, dict[str, str], str]:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1",
                   "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "HTTP_COOKIE": cookie}
        answer: dict[str, object] = {}
        body_out = b"".join(app(environ, lambda status, headers: answer.update(status=status, headers=dict(headers))))
        return str(answer["status"]), answer["headers"], body_out.decode()  # type: ignore[return-value]

    def sign_up() -> str:
        _status, headers, page = call("GET", "/subscribe")
        cookie = headers["Set-Cookie"].split(";")[0]
        field = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        return call("POST", "/subscribe", urlencode({"csrf": field, "email": "slow@example.org"}).encode(), cookie)[0]

    try:
        assert sign_up() == "200 OK"
        clock[0] += 14 * 60
        assert sign_up() == "200 OK"
        clock[0] += 2 * 60
        assert sign_up() == "200 OK"
    finally:
        app.close()
        mailer.close()
        store.close()
    assert len(outbox_messages(folder, "slow@example.org")) == 2, "at 0 and 16 minutes, not at 14"


def test_x_forwarded_for_counts_only_from_the_trusted_proxy(folder: Path) -> None:
    """Behind the configured proxy each client has its own sign-up allowance; without one the header is ignored."""
    server = start_serve(folder, extra_config="  subscribe_limit: 1\n  trusted_proxy: 127.0.0.1\n")
    try:
        def from_client(ip: str, address: str) -> int:
            cookie, field = _form(server.base)
            body = urlencode({"csrf": field, "email": address}).encode()
            return request(server.base, "POST", "/subscribe", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "X-Forwarded-For": ip}).status

        assert [from_client("192.0.2.1", "a@example.org"), from_client("192.0.2.2", "b@example.org"),
                from_client("192.0.2.1", "c@example.org")] == [200, 200, 429]
        with SubscriberStore.open(folder) as store:
            assert store.get("b@example.org").consent_ip == "192.0.2.2"
    finally:
        assert "Traceback" not in server.stop()
    server = start_serve(folder, extra_config="  subscribe_limit: 1\n")  # no trusted proxy: a forged header changes nothing
    try:
        assert [from_client("192.0.2.3", "d@example.org"), from_client("192.0.2.4", "e@example.org")] == [200, 429]
    finally:
        server.stop()


def test_a_broken_page_template_gives_an_error_page_and_the_reason_only_in_the_log(folder: Path) -> None:
    (folder / "templates" / "web").mkdir(parents=True)
    (folder / "templates" / "web" / "unsubscribe.html.j2").write_text("{{ no_such_variable }}", encoding="utf-8")
    server = start_serve(folder)
    try:
        token = seal(SECURE, "unsubscribe", "x@example.org", now=0)
        reply = request(server.base, "GET", f"/unsubscribe?t={token}")
        assert (reply.status, reply.title) == (500, "Something went wrong")
        assert "Traceback" not in reply.body and "no_such_variable" not in reply.body
        assert reply.headers["Referrer-Policy"] == "no-referrer"
    finally:
        log = server.stop()
    assert f"error answering GET /unsubscribe: {folder / 'templates/web/unsubscribe.html.j2'}:1: template error: 'no_such_variable' is undefined" in log
    assert token not in log, "the log names the path, never the token"


def test_a_broken_template_for_a_fixed_page_stops_the_start_with_its_file_and_line(folder: Path) -> None:
    (folder / "templates" / "web").mkdir(parents=True)
    (folder / "templates" / "web" / "message.html.j2").write_text("<p>\n{% if %}</p>\n", encoding="utf-8")
    configure_web(folder, free_port())
    result = subprocess.run([sys.executable, "-m", "newsletter", "serve", "--port", "0", "--folder", str(folder)],
                            env=serve_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "message.html.j2:2: template syntax error" in result.stderr and "Traceback" not in result.stderr


def test_a_crafted_csrf_cookie_is_not_echoed_into_set_cookie(folder: Path) -> None:
    """A quoted cookie can carry any byte (``"\\015\\012"`` is CR LF once unquoted); echoed back it split the
    Set-Cookie header, which waitress refuses with a traceback. Only a cookie of our own form is kept."""
    import io

    from newsletter.audience.confirmation import Mailer
    from newsletter.audience.web import Endpoint
    from newsletter.content.config import load_config

    configure_web(folder, 8080)
    store = SubscriberStore.open(folder)
    mailer = Mailer(load_config(folder, {}), folder, {})
    app = Endpoint(folder, load_config(folder, {}), SECURE, store, mailer)
    try:
        for cookie in ('nl_csrf="a\\015\\012Set-Cookie: evil=1"', 'nl_csrf="a; b"'):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/subscribe", "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1",
                       "wsgi.input": io.BytesIO(b""), "HTTP_COOKIE": cookie}
            answer: dict[str, object] = {}
            b"".join(app(environ, lambda status, headers: answer.update(status=status, headers=dict(headers))))
            set_cookie = answer["headers"]["Set-Cookie"]  # type: ignore[index]
            assert answer["status"] == "200 OK"
            assert re.fullmatch(r"nl_csrf=[A-Za-z0-9_-]{32}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400", set_cookie), set_cookie
    finally:
        app.close()
        mailer.close()
        store.close()


def test_a_hostile_multipart_one_click_body_is_refused_not_an_error() -> None:
    """The RFC 8058 value is ASCII, so the check compares the part's bytes: an unknown charset label or a
    multipart part without a boundary no longer raises, and a nested message is simply not one-click. These raised inside the
    check, so the client got a 500 and the log a traceback."""
    from newsletter.audience.http import Request
    from newsletter.audience.web import is_one_click

    def one_click(part_headers: str, content: bytes = b"One-Click") -> bool:
        body = (b'--x\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n' + part_headers.encode()
                + b"\r\n" + content + b"\r\n--x--\r\n")
        return is_one_click(Request({"CONTENT_TYPE": "multipart/form-data; boundary=x", "_body": body}), {})

    assert one_click("") is True
    assert one_click("Content-Transfer-Encoding: base64\r\n", b"T25lLUNsaWNr") is True
    assert one_click("Content-Type: text/plain; charset=bogus\r\n") is True
    assert one_click("Content-Type: message/rfc822\r\n") is False
    # a multipart part without a boundary is read as text (the parser's fallback): what matters is no error
    assert one_click("Content-Type: multipart/mixed\r\n") is True


def test_a_confirmation_that_loses_a_race_with_an_unsubscribe_says_so(folder: Path) -> None:
    """The store's confirm decides (it reads the status in its own transaction): an unsubscribe that
    lands between the page's first read and the confirm gets the stale page, not "You are subscribed"."""
    import io

    from newsletter.audience.confirmation import Mailer
    from newsletter.audience.web import Endpoint
    from newsletter.content.config import load_config
    from newsletter.mail.tokens import CONFIRM

    configure_web(folder, 8080)
    store = SubscriberStore.open(folder)
    mailer = Mailer(load_config(folder, {}), folder, {})
    app = Endpoint(folder, load_config(folder, {}), SECURE, store, mailer)
    try:
        store.subscribe("racer@example.org", how="form", consent_text="yes")
        store.unsubscribe("racer@example.org", via="link")
        store.status_of = lambda email: "pending"  # type: ignore[method-assign]  # the read before the unsubscribe
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/confirm", "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(b""),
                   "QUERY_STRING": urlencode({"t": seal(SECURE, CONFIRM, "racer@example.org")})}
        answer: dict[str, object] = {}
        b"".join(app(environ, lambda status, headers: answer.update(status=status)))
        assert answer["status"] == "400 Bad Request"
    finally:
        app.close()
        mailer.close()
        store.close()
