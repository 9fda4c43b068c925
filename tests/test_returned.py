"""Classifying returned mail: a folder of samples and a table of expected results, as flufl.bounce tests its detectors.

postfix-user-unknown.eml and postfix-mailbox-full.eml are real DSNs, produced by the private
Postfix of test_inbox_e2e.py; the others follow the formats their senders use (Postfix delay
warnings, ARF feedback loops, Exchange out-of-office, qmail's QSBMF bounces).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.returned import classify

DATA = Path(__file__).parent / "data" / "returned"

# file, kind, [(failing address, its kind)], evidence that must be kept
EXPECTED = [
    ("postfix-user-unknown.eml", "hard", [("ghost1@readers.test", "hard")],
     {"status": "5.1.1", "reporting_mta": "dns; mx.newsletter.test", "diagnostic_code": 'X-Postfix; unknown user: "ghost1@readers.test"', "action": "failed"}),
    ("postfix-mailbox-full.eml", "soft", [("grace@readers.test", "soft")], {"status": "5.2.2", "diagnostic_code": "X-Postfix; Mailbox full: quota exceeded"}),
    ("postfix-delayed.eml", "soft", [("grace@readers.test", "soft")], {"status": "4.4.1", "action": "delayed", "date": "Thu, 3 Dec 2026 04:30:01 +0000 (UTC)"}),
    ("dsn-delivered.eml", "other", [], {}),
    ("arf-not-spam.eml", "other", [], {}),
    ("exchange-out-of-office.eml", "auto-reply", [], {}),
    ("qmail.eml", "hard", [("ghost3@readers.test", "hard")], {"detector": "flufl.bounce"}),
    ("personal-vacation-plans.eml", "other", [], {}),
    ("personal-bounce.eml", "hard", [("ada@readers.test", "hard")], {"status": "5.1.1"}),
]


@pytest.mark.parametrize("name, kind, failures, evidence", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_samples(name: str, kind: str, failures: list, evidence: dict) -> None:
    returned = classify((DATA / name).read_bytes(), unsubscribe_address="unsubscribe@newsletter.test")
    assert returned.kind == kind, returned.why
    assert [(f.address, f.kind) for f in returned.failures] == failures
    if evidence:
        assert evidence.items() <= returned.failures[0].evidence.items()


def test_the_original_message_is_found_in_a_full_copy_and_in_headers_only() -> None:
    full = classify((DATA / "postfix-mailbox-full.eml").read_bytes())
    assert full.original_message_id and full.original_message_id.endswith("@example.org>")
    assert full.original_headers["List-Id"] == "Practice Research Notes <practice-research-notes.example.org>"
    headers_only = classify((DATA / "postfix-delayed.eml").read_bytes())
    assert headers_only.original_message_id == "<94f60df329ca4619b4313f59e2db535b@example.org>"
    assert headers_only.recipients_to == ("bounces+l4baaaaaao24xdyghpybhliose@newsletter.test",)


AUTO = [
    ("Auto-Submitted: auto-replied\nSubject: Re: your message\n", True),
    ("auto-submitted: auto-generated\nSubject: hello\n", True),  # header names in any case
    ("AUTO-SUBMITTED: no\nSubject: hello\n", False),
    ("Precedence: auto_reply\nSubject: hello\n", True),
    ("X-Autoreply: yes\nSubject: hello\n", True),
    ("Subject: Out of Office: back on Monday\n", True),
    ("Subject: =?utf-8?q?R=C3=A9ponse_automatique?=\n", True),
    ("Subject: Lunch on Friday?\n", False),
    ("Subject: Out of ideas\n", False),
]


@pytest.mark.parametrize("headers, auto", AUTO)
def test_auto_replies(headers: str, auto: bool) -> None:
    raw = f"From: someone@readers.test\nTo: bounces+x@newsletter.test\nMessage-ID: <a@b>\n{headers}\nbody\n".encode()
    assert (classify(raw).kind == "auto-reply") is auto


def test_mail_to_the_unsubscribe_address_carries_its_tokens() -> None:
    token = "AfmBAT9kq7EDMoVgYcZ8ecCXchf8njW3JP8Nvl5sTYy-MWQ6U5OVJlj8aKm9GeCu1Oh-Zd8"
    raw = f"From: ada@readers.test\nTo: Unsubscribe <UNSUBSCRIBE@newsletter.test>\nSubject: Re: unsubscribe {token}\n\nplease\n".encode()
    returned = classify(raw, unsubscribe_address="unsubscribe@newsletter.test")
    assert returned.kind == "unsubscribe" and returned.unsubscribe_tokens == (token,)


@given(st.binary(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_any_bytes_classify_without_raising(data: bytes) -> None:
    classify(data, unsubscribe_address="unsubscribe@newsletter.test")


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_report_body_classifies_without_raising(body: str) -> None:
    raw = ("From: MAILER-DAEMON@x.test\nReturn-Path: <>\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
           f"--b\nContent-Type: message/delivery-status\n\n{body}\n--b--\n").encode("utf-8", "surrogatepass")
    classify(raw)



_REPORTS = {
    "delivery-status": "Reporting-MTA: dns; mx.test\n\nFinal-Recipient: rfc822; ghost@readers.test\nAction: failed\nStatus: 5.1.1\n",
    "feedback-report": "Feedback-Type: abuse\nOriginal-Rcpt-To: ghost@readers.test\n",
}
_FIELDS = ["Message-ID", "Date", "Auto-Submitted", "Return-Path", "Precedence", "Feedback-Type", "Action", "Final-Recipient"]


@pytest.mark.parametrize("report", [None, *_REPORTS])
@pytest.mark.parametrize("field", _FIELDS)
def test_a_raw_8bit_byte_in_any_header_classifies_without_raising(field: str, report: str | None) -> None:
    """compat32 hands back an email.header.Header, not a str, for a header holding undecodable bytes."""
    head = ("Message-ID: <b@mx.test>\nDate: Tue, 1 Dec 2026 09:00:00 +0000\nAuto-Submitted: auto-replied\nReturn-Path: <>\n"
            "Precedence: auto_reply\nFrom: MAILER-DAEMON@mx.test\nTo: bounces+x@newsletter.test\n")
    if report is None:
        text = head + "\nbody\n"
    else:
        text = (head + f"Content-Type: multipart/report; report-type={report}; boundary=b\n\n"
                f"--b\nContent-Type: message/{report}\n\n{_REPORTS[report]}\n--b--\n")
    raw = text.encode().replace(f"{field}: ".encode(), f"{field}: \xe9".encode("latin-1"))
    classify(raw, unsubscribe_address="unsubscribe@newsletter.test")
