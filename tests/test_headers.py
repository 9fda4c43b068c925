"""Hand-encoded header values must read back, through the email package's own parser, as what was meant."""

from __future__ import annotations

import email
import email.policy
import random
import re
from email.header import decode_header, make_header

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from newsletter.mail import headers
from newsletter.mail.headers import encoded_words, mailbox_value, one_line, unstructured_value
from newsletter.mail.message import build_message, message_bytes
from newsletter.content.model import Config
from newsletter.mail.render import RenderedEmail

NAMES = [
    "Ada Lovelace",
    "Marta R\u00f8nnestad",
    "\u00c5sa R\u00f8nning, Practice Research Notes",
    "R\u00f8nning, A. (PhD): notes; \"quoted\" <x@y> [z]",
    'A "quoted" \\ name & co',
    "Plain, with comma",
    "=?utf-8?q?not_an_encoded_word?=",
    "\u00d8" * 80,
    " ".join(["Bj\u00f8rn"] * 20),
    "B" * 1200,
    "\u00c5sa R\u00f8nning-\u00d8deg\u00e5rd \u00c6r\u00f8 \u00d8stlandet \u00c5lesund \u00d8rsta B\u00e6rum M\u00f8rk\u00f8v",
    "Ada " + "x" * 70 + " \u00c5s",
    "\u674e\u5c0f\u9f8d",
    "emoji \U0001F600 name",
    "Eve\r\nBcc: x@evil.test",
    "  spaced \t out  ",
    "",
]
SUBJECTS = [
    "Practice Research Notes \u2014 October 2026: the alliance, empathy and therapist self-doubt",
    "Golden Notes \u2014 July 2021 \u2014 R\u00f8nnestad & <friends>",
    "[TEST] plain ASCII subject",
    "=?utf-8?b?Zm9v?= looks encoded",
    "Hello\r\nBcc: victim@example.net",
    "word " * 40,
    "see https://example.org/" + "a" * 90 + " \u2014 now",
    "\u00e4" * 200,
]
ALPHABET = "abcXYZ019 ,.;:\"\\<>()[]@=?_-'\u00e5\u00f8\u00e9\u2014\u674e\U0001F600\t"


def parse_header(name: str, value: str):
    raw = f"{name}: {value}\r\n\r\n".replace("\r\n", "\n").replace("\n", "\r\n")
    return email.message_from_bytes(raw.encode("ascii"), policy=email.policy.default)[name]


def assert_wire_safe(name: str, value: str) -> None:
    lines = f"{name}: {value}".split("\n")
    assert all(len(line) <= 76 for line in lines), lines  # RFC 2047 section 2
    assert all(line.startswith(" ") for line in lines[1:])
    assert value.isascii()


def displayed_name(value: str, parsed_name: str) -> str:
    """The name a reader sees.  Encoded names are decoded by RFC 2047's rules (the legacy
    decoder): Python's phrase parser wrongly keeps the space between adjacent encoded-words."""
    phrase = value.replace("\n", "").rpartition(" <")[0]
    if "=?" not in phrase:
        return parsed_name
    if len(encoded_words(one_line(parsed_name))) == 1 and phrase.count("=?") == 2:
        assert parsed_name == str(make_header(decode_header(phrase)))
    return str(make_header(decode_header(phrase)))


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 90))) for _ in range(count)]


@pytest.mark.parametrize("name", NAMES + random_texts(1, 300))
@pytest.mark.parametrize("header", ["From", "Reply-To", "To"])
def test_mailbox_reads_back(header: str, name: str) -> None:
    value = mailbox_value(header, name, "o'neil+news@example.org")
    assert_wire_safe(header, value)
    parsed = parse_header(header, value)
    assert not parsed.defects, (value, parsed.defects)
    [address] = parsed.addresses
    assert address.addr_spec == "o'neil+news@example.org"
    assert displayed_name(value, address.display_name) == one_line(name)


@pytest.mark.parametrize("text", SUBJECTS + random_texts(2, 300))
def test_unstructured_reads_back(text: str) -> None:
    value = unstructured_value("Subject", text)
    assert_wire_safe("Subject", value)
    assert str(parse_header("Subject", value)) == one_line(text)


def test_a_long_address_is_never_refolded_into_a_different_name() -> None:
    """The message keeps the folded value as written: re-parsing it would space out the name."""
    name = "\u00c5sa R\u00f8nning-\u00d8deg\u00e5rd \u00c6r\u00f8 \u00d8stlandet \u00c5lesund \u00d8rsta B\u00e6rum M\u00f8rk\u00f8v"
    address = "a" * 64 + "@" + "long-domain." * 3 + "example.org"
    config = Config(name="Notes", sender_name=name, sender_email=address, postal_address="1 Road", archive_url="https://example.org/")
    raw = message_bytes(build_message(RenderedEmail("2026-11", "Subject", None, "<p>x</p>", "x\n"), config))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(len(line) <= 998 for line in head.split("\r\n"))
    from_value = re.search(r"^From: (.*?)\r\n(?! )", head, re.S | re.M).group(1)
    assert from_value == mailbox_value("From", name, address).replace("\n", "\r\n")
    assert displayed_name(from_value.replace("\r\n", "\n"), "") == name


def test_only_what_needs_it_is_encoded() -> None:
    assert mailbox_value("From", "Ada Lovelace", "ada@example.org") == "Ada Lovelace <ada@example.org>"
    assert mailbox_value("From", "Plain, with comma", "a@example.org") == '"Plain, with comma" <a@example.org>'
    assert mailbox_value("From", None, "a@example.org") == "a@example.org"
    assert mailbox_value("From", "\u00c5sa R\u00f8nning, Practice Research Notes", "n@example.org") == (
        "=?utf-8?q?=C3=85sa_R=C3=B8nning=2C?= Practice Research Notes\n <n@example.org>"
    )
    assert unstructured_value("Subject", "Notes \u2014 July") == "Notes =?utf-8?q?=E2=80=94?= July"


def test_encoded_words_never_split_a_character() -> None:
    words = encoded_words("\U0001F600" * 40)
    assert all(len(w) <= 75 for w in words)
    decoded = "".join(str(email.header.make_header(email.header.decode_header(w))) for w in words)
    assert decoded == "\U0001F600" * 40


@given(st.text(alphabet=st.sampled_from(list("ab \t\r\n\x00\x7f\x85\xa0\u2028\u200b\u3000\U0001F600")) | st.characters(), max_size=30))
@example(" a")
@example("a ")
@example("a  b")
@example("a\u00a0b")
@example("\u200b")
def test_one_line_fast_path_agrees_with_the_search(value: str) -> None:
    # one_line answers a printable value without its regex search; the answer must be the search's
    reference = value if not headers._NOT_ONE_LINE.search(value) else " ".join(
        "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in value).split())
    assert one_line(value) == reference


def test_one_line_folds_controls() -> None:
    assert one_line("a\r\nb\tc\x00d") == "a b c d"
    assert one_line("a\u00a0b") == "a b"
    assert one_line("already clean") == "already clean"
