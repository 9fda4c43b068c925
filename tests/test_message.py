"""The MIME message: structure, encodings, headers, and no header injection."""

from __future__ import annotations

import email
import email.policy
import shutil
from email.headerregistry import Address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.mail.build import render_issue
from newsletter.content.config import load_config
from newsletter.mail.message import WIRE_POLICY, build_message, message_bytes
from newsletter.mail.render import RenderedEmail

DATA = Path(__file__).parent / "data" / "golden"


@pytest.fixture
def golden_folder(tmp_path: Path) -> Path:
    target = tmp_path / "golden"
    shutil.copytree(DATA, target)
    return target


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_structure_and_encodings(golden_folder: Path) -> None:
    _, rendered, raw = render_issue(golden_folder, "2021-07")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert parts[0].get_content() == rendered.text.replace("\n", "\r\n") or parts[0].get_content().replace("\r\n", "\n") == rendered.text
    assert parts[1].get_content().replace("\r\n", "\n") == rendered.html.replace("\r\n", "\n")
    assert msg["MIME-Version"] == "1.0"
    for name in ("Subject", "From", "Date", "Message-ID", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert msg[name], name


def test_no_line_over_998_octets_and_crlf(golden_folder: Path) -> None:
    _, rendered, raw = render_issue(golden_folder, "2021-07")
    assert max(len(line) for line in rendered.html.splitlines()) > 998  # mjml's long lines...
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78  # ...are folded by quoted-printable
    assert b"\n" not in raw.replace(b"\r\n", b"")
    raw.decode("ascii")  # 7-bit clean on the wire


def test_non_ascii_names_use_rfc2047(golden_folder: Path) -> None:
    _, _, raw = render_issue(golden_folder, "2021-07")
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "=?utf-8?" in head
    msg = parse(raw)
    assert str(msg["From"]) == "Karin Fagernäs <golden@example.org>"
    assert str(msg["Subject"]) == "Golden Notes — July 2021 — Rønnestad & <friends>"
    assert msg["List-Unsubscribe"] == "<mailto:leave@example.org?subject=unsubscribe>, <https://golden.example.org/unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_header_injection_is_impossible(golden_folder: Path) -> None:
    config = load_config(golden_folder)
    _, rendered, _ = render_issue(golden_folder, "2021-07")
    from dataclasses import replace

    evil = replace(rendered, subject="Hello\r\nBcc: victim@example.net")
    evil_config = replace(config, sender_name="Eve\nBcc: other@example.net")
    raw = message_bytes(build_message(evil, evil_config, to="reader@example.org"))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head
    msg = parse(raw)
    assert msg["Bcc"] is None
    assert str(msg["Subject"]) == "Hello Bcc: victim@example.net"


def test_message_ids_are_unique_and_in_sender_domain(golden_folder: Path) -> None:
    ids = {parse(render_issue(golden_folder, "2021-07")[2])["Message-ID"] for _ in range(3)}
    assert len(ids) == 3
    assert all(i.endswith("@example.org>") for i in ids)


def test_built_message_is_addressed_to_undisclosed_recipients(golden_folder: Path) -> None:
    _, _, raw = render_issue(golden_folder, "2021-07")
    assert b"\r\nTo: undisclosed-recipients:;\r\n" in raw.split(b"\r\n\r\n", 1)[0]
    assert parse(raw)["To"] == "undisclosed-recipients:;"


def test_feedback_id_names_month_list_and_sender(golden_folder: Path) -> None:
    from newsletter.mail.message import parse_feedback_id

    _, _, raw = render_issue(golden_folder, "2021-07")
    value = parse(raw)["Feedback-ID"]
    # the sender "Karin Fagernäs" and list "Golden Notes" as ASCII slugs, no colon inside a field
    assert value == "2021-07:golden-notes:karin-fagernas"
    assert parse_feedback_id(value) == ("2021-07", "golden-notes", "karin-fagernas")
    assert parse_feedback_id("someone-else:123") is None


GOLDEN_EML = Path(__file__).parent / "golden" / "2021-07.eml"


def _fixed_boundary(raw: bytes) -> bytes:
    import re

    return re.sub(rb"==[0-9a-f]{24}==", b"==BOUNDARY==", raw)


def test_message_matches_golden_eml(golden_folder: Path) -> None:
    """The .eml of the golden issue, byte for byte (fixed Date and Message-ID, boundary named)."""
    config = load_config(golden_folder)
    _, rendered, _ = render_issue(golden_folder, "2021-07")
    msg = build_message(rendered, config, message_id="<golden.2021-07@example.org>", date=1625097600)
    assert _fixed_boundary(message_bytes(msg)) == GOLDEN_EML.read_bytes()


@pytest.mark.parametrize("to", [None, "Ann <ann@example.org>", "Zoë Ångström-Ångström-Ångström-Ångström-Ångström <zoe@example.org>", Address("Zoë Ångström", "zoe@example.org")])
def test_message_bytes_is_what_the_email_package_writes(golden_folder: Path, to: object) -> None:
    """message_bytes writes by hand what the generator writes; a free-form To (a header object)
    goes through the email package itself."""
    config = load_config(golden_folder)
    _, rendered, _ = render_issue(golden_folder, "2021-07")
    msg = build_message(rendered, config, to=to, subject_prefix="[TEST] ")  # type: ignore[arg-type]
    assert message_bytes(msg) == msg.as_bytes(policy=WIRE_POLICY)


@given(
    text=st.text(alphabet=st.sampled_from("ab =.\r\n\tZ\x0b\x1c"), max_size=60),
    html=st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=0x2030), max_size=60),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_message_bytes_matches_generator_for_any_bodies(golden_folder: Path, text: str, html: str) -> None:
    """Bodies with any line ends (CR, LF, CRLF, and str.splitlines' other separators) and characters."""
    config = load_config(golden_folder)
    rendered = RenderedEmail("2021-07", "Subject\x1cwith a separator", None, html, text)
    msg = build_message(rendered, config)
    assert message_bytes(msg) == msg.as_bytes(policy=WIRE_POLICY)
    raw_part = msg.get_payload()[0]
    raw_part.set_payload("line\rone\nline two\r\n\x0bend")  # not quoted-printable: line ends made CRLF
    assert message_bytes(msg) == msg.as_bytes(policy=WIRE_POLICY)


@pytest.mark.parametrize("content_types", [
    ['multipart/alternative;\n boundary="==0123456789ABCDEF01234567=="'],
    ['multipart/alternative; boundary="other"'],
    ['Multipart/Alternative;\n boundary="==0123456789abcdef01234567=="'],
    ['multipart/alternative;\n boundary="==0123456789abcdef01234567=="', 'multipart/alternative; boundary="second"'],
])
def test_message_bytes_reads_the_boundary_the_generator_reads(golden_folder: Path, content_types: list[str]) -> None:
    """The boundary of build_message's own Content-Type is read without parsing it; any other
    header (or a second one) is parsed by the email package, as its generator does."""
    config = load_config(golden_folder)
    msg = build_message(RenderedEmail("2021-07", "Subject", None, "<p>html</p>", "text"), config)
    del msg["Content-Type"]
    for value in content_types:
        msg.set_raw("Content-Type", value)
    assert message_bytes(msg) == msg.as_bytes(policy=WIRE_POLICY)
