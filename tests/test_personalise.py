"""Personalised bytes must parse exactly like a message built per recipient the slow way."""

from __future__ import annotations

import email
import email.policy
import quopri
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from newsletter.content.config import load_config
from newsletter.content.load import load_issue, resolve_issue_path
from email.headerregistry import Address

from newsletter.mail.headers import one_line
from newsletter.mail.message import build_message, message_bytes
from newsletter.mail.personalise import Personaliser, greeting_for, qp_encode, unsubscribe_token
from newsletter.mail.render import Personal, Renderer

NAMES = [
    "Ada Lovelace",
    "Marta R\u00f8nnestad",
    "Karin Fagern\u00e4s",
    "Eve\r\nBcc: x@evil.test",
    "<script>alert(1)</script>",
    None,
    'A "quoted" \\ name & co',
    "\u00d8" * 80,
    " ".join(["Bj\u00f8rn"] * 20),
    "\u00dcnal Bj\u00f8rn \u00c5s Eve Bcc: x@evil.test",
    "\u674e\u5c0f\u9f8d",
]


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


@pytest.fixture
def parts(folder: Path):
    config = load_config(folder)
    issue = load_issue(resolve_issue_path(folder, "2026-11"), config, folder).issue
    renderer = Renderer(folder, config)
    return config, issue, renderer, Personaliser(renderer, issue, config, b"key")


@pytest.mark.parametrize("name", NAMES)
def test_same_as_building_per_recipient(parts, name: str | None) -> None:
    config, issue, renderer, personaliser = parts
    address = "o'neil+news@example.org"
    fast = personaliser.personalise(address, name, date=1_700_000_000)
    url = personaliser.unsubscribe_url(address)
    slow = message_bytes(
        build_message(
            renderer.render(issue, Personal(greeting_for(name), url)), config,
            to=Address(display_name=one_line(name or ""), addr_spec=address), message_id=fast.message_id, date=1_700_000_000, unsubscribe_url=url,
            mailto_token=unsubscribe_token(b"key", address),
        )
    )
    a, b = parse(fast.data), parse(slow)
    values = lambda m: [(k, " ".join(str(v).split())) for k, v in m.items() if k != "Content-Type"]
    assert values(a) == values(b)
    assert a["To"].addresses == b["To"].addresses
    assert [p.get_content_type() for p in a.walk()] == [p.get_content_type() for p in b.walk()]
    for pa, pb in zip(a.walk(), b.walk()):
        if not pa.is_multipart():
            assert pa.get_content() == pb.get_content()
            assert pa.items() == pb.items()
    head, body = fast.data.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"unsubscribe?t=" not in line and b"subject=unsubscribe%20" not in line)  # a URL cannot fold
    assert head.isascii()
    assert b"nlslot" not in fast.data
    assert not any(line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))


def test_greeting_in_both_parts(parts) -> None:
    *_, personaliser = parts
    msg = parse(personaliser.personalise("a@example.org", "<b>Ann & Bo</b>").data)
    assert "Dear &lt;b&gt;Ann &amp; Bo&lt;/b&gt;," in msg.get_body(("html",)).get_content()
    assert "\r\nDear <b>Ann & Bo</b>,\r\n" in msg.get_body(("plain",)).get_content()
    neutral = parse(personaliser.personalise("a@example.org", None).data)
    assert "Dear reader," in neutral.get_body(("plain",)).get_content()


def test_message_ids_unique_and_test_subject(parts) -> None:
    config, issue, renderer, personaliser = parts
    ids = {personaliser.personalise("a@example.org").message_id for _ in range(200)}
    assert len(ids) == 200
    test = Personaliser(renderer, issue, config, b"key", subject_prefix="[TEST] ")
    assert parse(test.personalise("me@example.org").data)["Subject"] == "[TEST] Practice Research Notes \u2014 November 2026"


@pytest.mark.parametrize("text", ["plain", "trailing space \nnext", "=" * 200, "\u00f8" * 100 + "\n", "tab\t\n", ""])
def test_qp_segments_decode_back(text: str) -> None:
    encoded = qp_encode(text, soft_end=True)
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert quopri.decodestring(encoded).decode("utf-8").replace("\r\n", "\n") == text


def test_placeholder_text_in_content_is_just_text(folder: Path) -> None:
    """Issue 10 item 9: a title containing "nlslot" passed check and build, then send refused it with a merge-field error."""
    issue_path = resolve_issue_path(folder, "2026-11")
    text = issue_path.read_text(encoding="utf-8")
    issue_path.write_text(text.replace("  - title: Feedback From", "  - title: nlslotgreeting nlslotunsubscribe NLSLOTfield0x Feedback From", 1), encoding="utf-8")
    config = load_config(folder)
    issue = load_issue(issue_path, config, folder).issue
    message = parse(Personaliser(Renderer(folder, config), issue, config, b"key").personalise("ada@example.org", "Ada").data)
    for part in ("plain", "html"):
        body = message.get_body((part,)).get_content()
        assert "nlslotgreeting nlslotunsubscribe NLSLOTfield0x Feedback From" in body
        assert "Dear Ada," in body


def _reference_encode_line(data: bytes, *, hard: bool) -> str:
    """The per-byte greedy quoted-printable line the sliced one must equal."""
    from newsletter.mail.personalise import _QP_CHAR

    pieces, out, column = [_QP_CHAR[b] for b in data], [], 0
    if hard and pieces and pieces[-1] in (" ", "\t"):
        pieces[-1] = f"={ord(pieces[-1]):02X}"
    for piece in pieces:
        if column + len(piece) > 75:
            out.append("=\r\n")
            column = 0
        out.append(piece)
        column += len(piece)
    return "".join(out) + ("\r\n" if hard else "=\r\n")


@given(st.binary(max_size=400) | st.text(alphabet="ab=é \t-_?&:/", max_size=300).map(lambda t: t.encode("utf-8")), st.booleans())
@settings(max_examples=500, deadline=None)
def test_qp_line_cut_is_the_greedy_one(data: bytes, hard: bool) -> None:
    from newsletter.mail.personalise import _encode_line

    out: list[str] = []
    _encode_line(data, out, hard=hard)
    assert "".join(out) == _reference_encode_line(data, hard=hard)


_NAME_CHARS = st.sampled_from(list("Ab z09!#'*+/=?^_`{|}~-.,\"\\<>@()[]:;é\u00a0\t\r\n") + ["=?", "  ", "Ø"])
_ATOM = st.text(alphabet="AbZz09!#'*+/=?^_`{|}~-", min_size=1, max_size=25)
_NAMES = st.one_of(
    st.none(),
    st.lists(_ATOM, min_size=1, max_size=8).map(" ".join),  # plain names, some long enough to fold
    st.lists(_NAME_CHARS, max_size=40).map("".join),
)


@settings(max_examples=1500, deadline=None)
@example("Ann Lee", "r" * 50 + "@example.org")  # 69 characters together: the longest line not folded
@example("Ann Leek", "r" * 50 + "@example.org")  # 70: folded
@example("A" * 59, "a@b.org")  # the longest word that stays literal
@example("A" * 60, "a@b")
@given(_NAMES, st.lists(st.sampled_from(list("ab.+-_'@ \té") + ["example.org", "x" * 30]), min_size=1, max_size=12).map("".join))
def test_to_line_fast_path_is_the_mailbox_value(name: str | None, address: str) -> None:
    # a plain name with a short address is written directly; it must be what mailbox_value folds
    from newsletter.mail.headers import mailbox_value
    from newsletter.mail.personalise import to_header

    try:
        expected = f"To: {mailbox_value('To', name, address, linesep=chr(13) + chr(10))}\r\n".encode("ascii")
    except UnicodeEncodeError:  # a non-ASCII address: both refuse it alike
        with pytest.raises(UnicodeEncodeError):
            to_header(name, address)
        return
    assert to_header(name, address) == expected


@settings(max_examples=800, deadline=None)
@given(st.one_of(_NAMES, st.lists(st.sampled_from(["Ab", "Z", " ", "  ", "\t", "ø"]), max_size=80).map("".join)))
def test_greeting_needs_wrapping_only_when_longer_than_a_line(name: str | None) -> None:
    from newsletter.mail.personalise import greeting_text
    from newsletter.mail.render import wrap

    greeting = greeting_for(name)
    assert greeting_text(greeting) == wrap(greeting)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_message_id_is_a_uuid4_hex(random16: bytes) -> None:
    # the batch of Message-IDs sets the version and variant bits as uuid does
    import uuid

    from newsletter.mail.personalise import uuid4_hex

    assert uuid4_hex(bytearray(random16)) == uuid.UUID(bytes=random16, version=4).hex


def test_message_ids_are_new_each_time(parts) -> None:
    *_, personaliser = parts
    ids = personaliser.make_message_ids(50) + [personaliser.make_message_id() for _ in range(50)]
    assert len(set(ids)) == 100
    assert all(len(i) == len("<" + "0" * 32 + "@example.org>") and i.endswith("@example.org>") and i[13] == "4" for i in ids)


@given(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), min_size=1, max_size=90) | st.text(alphabet="ab =~\x7f\t\u00e9", min_size=1, max_size=90))
@example("x" * 70)
@example("x" * 71)
@example("a=b")
def test_qp_short_line_path_is_the_line_encoding(text: str) -> None:
    # qp_encode answers a short printable-ASCII text without the line encoder; the bytes must be the encoder's
    from newsletter.mail.personalise import _encode_line

    out: list[str] = []
    _encode_line(text.encode("utf-8"), out, hard=False)
    assert qp_encode(text, soft_end=True) == "".join(out).encode("ascii")


@given(st.text(max_size=20) | st.text(alphabet="a@. \t\x7f\x20\x21\x7e\u00e9", max_size=20))
def test_plain_address_is_the_printable_ascii_regex(address: str) -> None:
    from newsletter.mail.personalise import _plain_address

    assert _plain_address(address) == bool(re.fullmatch(r"[\x21-\x7e]+", address))
