"""VERP envelope senders: tokens that fit a local part, survive case-folding, hide the address and verify."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.content.config import check_config
from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.delivery.send import SendOptions, execute, prepare
from newsletter.mail.verp import TOKEN_LENGTH, make_token, read_token, token_of, verify, verp_address
from send_support import people, write_list

SECRET = b"verp test secret"
local_parts = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,30}", fullmatch=True)
addresses = st.builds(lambda l, d: f"{l}@{d}.org", local_parts, st.from_regex(r"[a-z]{2,12}", fullmatch=True))
months = st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(1990, 2200), st.integers(1, 12))
row_ids = st.integers(1, 2**32 - 1)


@given(addresses, months, row_ids)
@settings(max_examples=300)
def test_token_round_trip_fits_a_local_part_and_never_shows_the_address(address: str, month: str, row_id: int) -> None:
    token = make_token(SECRET, month, row_id, address)
    assert len(token) == TOKEN_LENGTH and re.fullmatch(r"[a-z2-7]+", token)
    assert len(f"bounces+{token}") <= 64
    reference = read_token(token)
    assert reference is not None and (reference.month, reference.row_id) == (month, row_id)
    assert verify(SECRET, reference, address)
    assert verify(SECRET, reference, address.upper())  # addresses compare case-insensitively
    # 16 bytes whatever the address: the month and row id, then 10 bytes of MAC; no room for the address
    decoded = base64.b32decode(token.upper() + "======")
    year, number = map(int, month.split("-"))
    assert len(decoded) == 16 and decoded[:6] == struct.pack(">HI", year * 12 + number - 1, row_id)
    assert address.encode() not in decoded
    # an MTA that upper-cases the local part changes nothing
    upper = read_token(token.upper())
    assert upper == reference


@given(addresses, addresses, months, row_ids, st.integers(0, TOKEN_LENGTH - 1))
@settings(max_examples=200)
def test_a_token_for_someone_else_or_altered_or_other_secret_does_not_verify(a: str, b: str, month: str, row_id: int, position: int) -> None:
    token = make_token(SECRET, month, row_id, a)
    reference = read_token(token)
    assert reference is not None
    if a.lower() != b.lower():
        assert not verify(SECRET, reference, b)
    assert not verify(b"another secret", reference, a)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    changed = token[:position] + alphabet[(alphabet.index(token[position]) + 1) % 32] + token[position + 1 :]
    altered = read_token(changed)
    assert altered is None or not verify(SECRET, altered, a)


@given(st.text(max_size=40))
def test_reading_arbitrary_text_never_raises(text: str) -> None:
    read_token(text)


def test_token_of_finds_the_token_in_any_case_only_for_our_mailbox() -> None:
    token = make_token(SECRET, "2026-11", 7, "ada@example.org")
    address = verp_address("bounces@example.org", token)
    assert address == f"bounces+{token}@example.org"
    assert token_of("bounces@example.org", address.upper()) == token
    assert token_of("bounces@example.org", f"<{address}>") == token
    assert token_of("bounces@example.org", f"other+{token}@example.org") is None
    assert token_of("bounces@example.org", f"bounces+{token}@example.net") is None
    assert token_of("bounces@example.org", "bounces@example.org") is None


def _config_with(folder: Path, bounces: str) -> list[str]:
    text = (folder / "newsletter.yaml").read_text()
    (folder / "newsletter.yaml").write_text(text + bounces)
    _config, problems = check_config(folder, {})
    return [f"{p.line}: {p.message}" for p in problems]


def test_bounces_config_is_checked_with_its_line(folder: Path) -> None:
    lines = len((folder / "newsletter.yaml").read_text().splitlines())
    problems = _config_with(folder, "bounces:\n  address: a-very-long-bounce-mailbox-name-for-the-list@example.org\n  threshold: -1\n")
    assert f"{lines + 2}: bounces.address 'a-very-long-bounce-mailbox-name-for-the-list@example.org': the part before '@' is too long for a VERP address (at most 37 characters); use a shorter mailbox such as bounces@" in problems
    assert f"{lines + 3}: bounces.threshold must be a number above 0 (hard bounce 1, soft 0.5), not '-1'" in problems


def test_bounces_address_with_plus_is_refused(folder: Path) -> None:
    problems = _config_with(folder, "bounces:\n  address: me+bounces@example.org\n")
    assert any("already contains '+'" in p for p in problems)


def test_each_message_gets_its_own_verp_envelope_sender(folder: Path) -> None:
    """Through the maildir sender, whose files carry the envelope sender as Return-Path like a delivery agent's."""
    (folder / "newsletter.yaml").write_text((folder / "newsletter.yaml").read_text() + "bounces:\n  address: bounces@example.org\n")
    csv = write_list(folder / "list.csv", people(5))
    env = {"NEWSLETTER_SECRET": SECRET.decode()}
    plan = prepare(folder, SendOptions(issue="2026-11", to=csv, sender="maildir"), env=env)
    assert "bounces:    to bounces+<token>@example.org, one signed token per reader (`newsletter inbox` reads them)" in plan.summary()
    report = execute(plan)
    assert report.counts["sent"] == 5
    with Ledger(ledger_path(folder, "2026-11"), recover=False) as ledger:
        rows = {row.address: row for row in ledger.rows()}
    seen = set()
    for path in (folder / "outbox" / "new").iterdir():
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        to = msg["Delivered-To"]
        match = re.fullmatch(r"<bounces\+([a-z2-7]{26})@example\.org>", msg["Return-Path"])
        assert match, msg["Return-Path"]
        reference = read_token(match.group(1))
        assert reference is not None and reference.month == "2026-11" and reference.row_id == rows[to].id
        assert verify(SECRET, reference, to)
        assert msg["From"].addresses[0].addr_spec == "notes@example.org"  # the From stays the author's
        seen.add(match.group(1))
    assert len(seen) == 5


def test_without_bounces_address_the_envelope_sender_is_the_from_address(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(2))
    execute(prepare(folder, SendOptions(issue="2026-11", to=csv, sender="maildir"), env={"NEWSLETTER_SECRET": "x"}))
    for path in (folder / "outbox" / "new").iterdir():
        assert path.read_bytes().startswith(b"Return-Path: <notes@example.org>\n")


def test_a_test_copy_uses_the_plain_bounces_address(folder: Path) -> None:
    (folder / "newsletter.yaml").write_text((folder / "newsletter.yaml").read_text() + "bounces:\n  address: bounces@example.org\n")
    execute(prepare(folder, SendOptions(issue="2026-11", test=("me@example.org",), sender="maildir"), env={}))
    [path] = list((folder / "outbox" / "new").iterdir())
    assert path.read_bytes().startswith(b"Return-Path: <bounces@example.org>\n")
