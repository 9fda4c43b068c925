"""Reading subscriber exports as they come from real tools, and the suppression list."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from newsletter.errors import NewsletterError, SubscriberError
from newsletter.audience.subscribers import HashSeen, ReadStats, iter_subscribers, load_suppressed, suppress


def read(path: Path, **kwargs) -> tuple[list, ReadStats]:
    stats = ReadStats()
    return list(iter_subscribers(path, stats=stats, display="list.csv", **kwargs)), stats


def test_spreadsheet_export_bom_crlf_semicolons_spaces_status(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(
        "\ufeffE-mail ; Name ; Status ; City\r\n"
        "  ada@example.org ;  Ada   Lovelace ; subscribed ; Oslo\r\n"
        "gone@example.org;Gone;Unsubscribed;Bergen\r\n"
        "bounce@example.org;B;bounced;\r\n"
        "\r\n"
        "not-an-address;Nobody;;\r\n"
        "ADA@example.org;Ada again;;\r\n"
        '"multi@example.org";"Line  Break";;Troms\u00f8\r\n'
        ";no email;;\r\n"
        "karin@example.org;Karin Fagern\u00e4s\r\n".encode("utf-8")
    )
    subs, stats = read(path, seen=HashSeen())
    assert [(s.email, s.name, s.line) for s in subs] == [
        ("ada@example.org", "Ada Lovelace", 2),
        ("multi@example.org", "Line Break", 8),
        ("karin@example.org", "Karin Fagern\u00e4s", 10),
    ]
    assert subs[0].fields == {"city": "Oslo"} and subs[1].fields == {"city": "Troms\u00f8"}
    assert (stats.status_skipped, stats.invalid, stats.duplicates) == (2, 2, 1)
    assert stats.problems == [
        "list.csv:6: 'not-an-address' is not a valid email address (An email address must have an @-sign); row skipped",
        "list.csv:9: no email address; row skipped",
    ]


def test_comma_delimiter_and_no_name_column(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\nA@x.org\nb@x.org\n")
    subs, _ = read(path, seen=HashSeen())
    assert [(s.email, s.name) for s in subs] == [("A@x.org", None), ("b@x.org", None)]


def test_suppressed_addresses_are_skipped_case_insensitively(tmp_path: Path) -> None:
    (tmp_path / "suppressed.txt").write_text("# people who asked\nBOB@example.org\n\n")
    path = tmp_path / "list.csv"
    path.write_text("email,name\nbob@Example.org,Bob\ncarol@example.org,Carol\n")
    subs, stats = read(path, suppressed=load_suppressed(tmp_path))
    assert [s.email for s in subs] == ["carol@example.org"] and stats.suppressed == 1


def test_header_injection_in_names_and_fields_is_flattened(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text('email,name,note\neve@example.org,"Eve\tBcc: evil","a\x0bb"\n', newline="")
    (sub,), _ = read(path)
    assert sub.name == "Eve Bcc: evil" and sub.fields == {"note": "a b"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "list.csv:1: the file is empty"),
        (b"name,mail address\nx,y\n", "list.csv:1: no 'email' column in the header (found: name, mail address)"),
        (b"email\nok@example.org\n\xe9@example.org\n", "list.csv:3: not UTF-8 text"),
    ],
)
def test_unreadable_files_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    with pytest.raises(SubscriberError) as info:
        read(path)
    assert str(info.value).startswith(message)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match="list.csv: cannot read the subscriber list"):
        read(tmp_path / "nope.csv")


def test_streaming_memory_does_not_grow_with_the_list(tmp_path: Path) -> None:
    """Without in-memory de-duplication (the send record does it) the reader keeps nothing per row."""

    def peak(n: int) -> int:
        path = tmp_path / f"list{n}.csv"
        with path.open("w") as out:
            out.write("email,name,city\n")
            for i in range(n):
                out.write(f"reader{i}@example.org,Reader {i},Oslo\n")
        tracemalloc.start()
        count = sum(1 for _ in iter_subscribers(path))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n
        return top

    small, large = peak(2_000), peak(40_000)
    assert large < small + 64 * 1024, (small, large)


def test_suppress_adds_atomically_validates_and_ignores_case(tmp_path: Path) -> None:
    added, already = suppress(tmp_path, ["Ada@Example.org", "bob@example.org"])
    assert (added, already) == (["ada@example.org", "bob@example.org"], [])
    added, already = suppress(tmp_path, ["ADA@example.org", "carol@example.org"])
    assert (added, already) == (["carol@example.org"], ["ada@example.org"])
    with pytest.raises(NewsletterError, match="not a valid email address: 'x@'; nothing was added"):
        suppress(tmp_path, ["dave@example.org", "x@"])
    assert (tmp_path / "suppressed.txt").read_text() == "ada@example.org\nbob@example.org\ncarol@example.org\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def lines_of_readers(n: int) -> str:
    return "".join(f"r{i}@x.org,Reader {i}\n" for i in range(n))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # issue 10 item 2: one stray quote swallowed 1,000 rows into one reader's name
        (
            'email,name\na1@x.org,"Ada\n' + lines_of_readers(1000),
            "list.csv:2: a quoted field starts on this line and runs over 1001 lines (to line 1002): "
            "probably a stray '\"', which would swallow the rows after it",
        ),
        ('email,name\na@x.org,"Line\nBreak"\nb@x.org,B\n', "list.csv:2: a quoted field starts on this line and runs over 2 lines (to line 3)"),
        (
            "email,name\na@x.org,Ada\nb@x.org,Bo c@x.org\n",
            "list.csv:3: the 'name' field contains an email address ('c@x.org'): a shifted column or a stray quote "
            "could show one reader another reader's address",
        ),
        ("email;name;city\na@x.org;Ada;see d@x.org\n", "list.csv:2: the 'city' field contains an email address ('d@x.org')"),
        ("email,name\na@x.org,A\rb@x.org,B\n", "list.csv:2: malformed CSV: a line break (a lone carriage return) inside a line"),
    ],
)
def test_a_possibly_misread_list_stops_with_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(content, newline="")
    with pytest.raises(SubscriberError) as info:
        read(path)
    assert str(info.value).startswith(message)
    assert "nothing was sent or recorded" in str(info.value)


def test_a_second_address_column_may_hold_addresses(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name,referrer email\na@x.org,Ada,b@x.org\n")
    (sub,), _ = read(path)
    assert sub.fields == {"referrer email": "b@x.org"}


def test_invisible_characters_in_addresses_are_shown(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b"email\nn1@x.org\nn2@x.org\x00\nn3@x.org\xe2\x80\x8b\n")
    subs, stats = read(path)
    assert [s.email for s in subs] == ["n1@x.org"]
    assert stats.problems == [
        "list.csv:3: 'n2@x.org\\x00' is not a valid email address"
        " (The part after the @-sign contains invalid characters: U+0000); row skipped",
        "list.csv:4: 'n3@x.org\\u200b' is not a valid email address (The email address contains unsafe characters: ZERO WIDTH SPACE); row skipped",
    ]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_list_says_save_as_utf8(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes("email,name\nada@x.org,Ada\n".encode(encoding))
    with pytest.raises(SubscriberError) as info:
        read(path)
    assert str(info.value).startswith("list.csv:1: the file is UTF-16 text: save it as UTF-8")


def test_send_with_a_stray_quote_sends_and_records_nothing(folder: Path) -> None:
    """Issue 10 item 2 end to end: before the fix one reader got 1,000 others' addresses and the issue was archived."""
    from click.testing import CliRunner

    from newsletter.cli import main
    from send_support import Server

    csv = folder / "list.csv"
    csv.write_text('email,name\na1@x.org,"Ada\n' + lines_of_readers(1000))
    with Server() as server:
        result = CliRunner().invoke(
            main, ["send", "2026-11", "--to", str(csv), "--sender", "smtp", "--yes", "--folder", str(folder)], env=server.env(),
        )
        assert server.receiver.received() == []
    assert result.exit_code == 1, result.output
    assert "list.csv:2: a quoted field starts on this line and runs over 1001 lines" in result.output
    assert not (folder / "sends" / "2026-11.sqlite").exists()
    assert not list((folder / "sends").glob(".staging-*")) and not (folder / "archive").exists()


def test_a_carriage_return_in_the_header_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    """Found by tests/test_fuzz.py: the csv module's error on the header line escaped as a traceback."""
    path = tmp_path / "list.csv"
    path.write_bytes(b"email\rname\nada@x.org\n")
    with pytest.raises(SubscriberError) as info:
        read(path)
    assert str(info.value).startswith("list.csv:1: malformed CSV header: a line break (a lone carriage return) inside a line")
