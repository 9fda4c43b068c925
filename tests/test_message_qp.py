"""The hand-written quoted-printable encoder against binascii.b2a_qp, which it replaces for speed."""

from __future__ import annotations

import binascii

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.mail.message import QP_ROOM, _qp_body, _qp_encode


def b2a_qp(body: str) -> str:
    """What message.py wrote before: b2a_qp of the UTF-8 body with CRLF made LF."""
    return binascii.b2a_qp(body.replace("\r\n", "\n").encode("utf-8"), istext=True, quotetabs=False).decode("ascii")


# Pieces that meet b2a_qp's rules: "=", whitespace before a line end or ending the data, a "."
# alone on a line (or before a NUL), controls, non-ASCII, and runs that reach column 76 or pass it.
_PIECES = st.sampled_from([
    "=", " ", "\t", ".", "\n", "\r\n", "\r", "a", "x" * 70, "y" * 74, "z" * 150, "é", "—", "\U0001F600",
    "\xa0", "\x00", "\x01", "\x0b", "\x7f", "=3D", "..", "\n.\n", ".\x00", " \n", "\t\n",
])
_BODIES = st.builds(
    lambda lead, parts: "w" * lead + "".join(parts),
    st.integers(0, 80),
    st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=60),
)


@given(_BODIES)
@settings(max_examples=1500, deadline=None)
def test_qp_encode_is_b2a_qp(body: str) -> None:
    data = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    assert _qp_encode(data) == binascii.b2a_qp(data, istext=True, quotetabs=False).decode("ascii")


@given(_BODIES)
@settings(max_examples=500, deadline=None)
def test_qp_body_is_b2a_qp(body: str) -> None:
    assert _qp_body(body) == b2a_qp(body)


@given(st.binary(max_size=400), st.integers(1, 200))
@settings(max_examples=500, deadline=None)
def test_qp_encode_of_any_bytes_in_long_lines(noise: bytes, width: int) -> None:
    """Random bytes (invalid UTF-8 included) cut into lines of one width, as long as mjml's."""
    flat = noise.replace(b"\r", b"")
    data = b"\n".join(flat[i:i + width] for i in range(0, len(flat), width))
    assert _qp_encode(data) == binascii.b2a_qp(data, istext=True, quotetabs=False).decode("ascii")


def test_long_html_lines_take_the_hand_written_encoder() -> None:
    """A body of lines longer than a quoted-printable line is the case the encoder is for."""
    html = ("<p style=\"color:red\">Åsa — " + "x" * 200 + " </p>\n") * 20 + "."
    assert len(html) > QP_ROOM * (html.count("\n") + 1)
    assert _qp_body(html) == b2a_qp(html)
    assert max(len(line) for line in _qp_body(html).split("\n")) <= 78
