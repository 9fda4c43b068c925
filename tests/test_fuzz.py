"""Property-based tests (Hypothesis) of the three parsers of user files: the subscriber CSV, the YAML
issue and config files, and the archive-page importer.

Inputs are random bytes and random mutations of the real example files. The property: a clear
``NewsletterError`` naming the file, or a valid result; never another exception; never a row dropped
without being reported. Deterministic (``derandomize``: the seed comes from the test's name, so CI
cannot flake); a failure prints the shrunk input and a ``@reproduce_failure`` blob. To explore beyond
the fixed seed: ``pytest tests/test_fuzz.py --hypothesis-seed=N`` with ``NEWSLETTER_FUZZ_RANDOM=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.audience.subscribers import ReadStats, iter_subscribers
from newsletter.content.addresses import is_valid_address
from newsletter.content.config import check_config, load_config
from newsletter.content.importer import PageError, merge_months, parse_page, read_page, render_issue_file
from newsletter.content.load import check_issue
from newsletter.content.yamlsource import parse_yaml
from newsletter.errors import NewsletterError
from test_importer import BOILERPLATE, article_block

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CSV = (ROOT / "subscribers.example.csv").read_bytes()
EXAMPLE_ISSUE = (ROOT / "issues" / "2026-11.yaml").read_bytes()
EXAMPLE_CONFIG = (ROOT / "newsletter.yaml").read_bytes()
EXAMPLE_PAGE = (
    BOILERPLATE + "November 2026\n"
    + article_block("The Alliance Matters", 40, "Smith, A., & Jones, B. (2020). The alliance. Psychotherapy, 57(1), 1-10. https://doi.org/10.1037/pst0000001")
    + article_block("Feedback Helps", 12)
    + "October 2026\n" + article_block("Empathy Predicts Outcome", 7)
).encode("utf-8")

FUZZ = settings(
    max_examples=int(os.environ.get("NEWSLETTER_FUZZ_EXAMPLES", "250")),
    derandomize=os.environ.get("NEWSLETTER_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# bytes that matter to these formats, to make mutations likely to hit something
SPECIAL = [b'"', b",", b";", b"\n", b"\r", b"\r\n", b"\t", b"\x00", b"@", b":", b" ", b"-", b"[", b"]", b"{", b"}", b"*", b"&",
           b"!", b"|", b">", b"#", b"'", b"%", b"?", b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"\xe2\x80\x8b", b"  ", b"    "]


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few random edits: insert, delete, replace or duplicate bytes or whole lines."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup_line", "drop_line", "indent"]))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=8)))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            if kind == "dup_line":
                lines.insert(i, lines[i])
            elif kind == "drop_line" and len(lines) > 1:
                del lines[i]
            elif kind == "indent":
                lines[i] = draw(st.sampled_from([b"", b" ", b"  ", b"\t", b"   "])) + lines[i].lstrip(b" ")
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def any_bytes(example: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=400), mutated(example), mutated(example), mutated(example))


# -- the subscriber CSV ------------------------------------------------------------------------------


def _content_lines(data: bytes) -> int | None:
    """Rows with something in them, counted independently of the csv module (None when quotes make it unclear)."""
    text = data.decode("utf-8")
    text = text[1:] if text.startswith("\ufeff") else text
    lines = text.split("\n")
    header, rows = lines[0], lines[1:]
    if '"' in "\n".join(rows):
        return None
    delimiter = ";" if header.count(";") > header.count(",") else ","
    return sum(1 for line in rows if line.replace(delimiter, "").strip())


@FUZZ
@given(data=any_bytes(EXAMPLE_CSV))
def test_csv_reader_reports_every_row_or_stops_clearly(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    stats = ReadStats()
    try:
        subscribers = list(iter_subscribers(path, stats=stats, display="list.csv"))
    except NewsletterError as exc:
        assert exc.path == "list.csv" and exc.message
        return
    for sub in subscribers:
        assert is_valid_address(sub.email)
        assert sub.line >= 2
    # every row is sent, or counted under a reason; invalid ones are also reported with their line
    assert stats.rows == stats.yielded + stats.invalid + stats.status_skipped + stats.suppressed + stats.duplicates
    assert stats.yielded == len(subscribers)
    assert len(stats.problems) == min(stats.invalid, ReadStats.MAX_KEPT)
    assert all(p.startswith("list.csv:") for p in stats.problems)
    expected = _content_lines(data)
    if expected is not None:
        assert stats.rows == expected  # no row swallowed into another


# -- the YAML issue and config files ---------------------------------------------------------------


@FUZZ
@given(data=any_bytes(EXAMPLE_ISSUE))
def test_issue_file_check_never_crashes(folder: Path, data: bytes) -> None:
    path = folder / "issues" / "2026-11.yaml"
    path.write_bytes(data)
    loaded = check_issue(path, load_config(folder), folder)  # collects problems; must not raise
    for problem in loaded.problems:
        assert problem.path == "issues/2026-11.yaml" and problem.message
    if loaded.issue is not None:
        assert not loaded.errors and loaded.issue.articles


@FUZZ
@given(data=any_bytes(EXAMPLE_CONFIG))
def test_config_check_never_crashes(folder: Path, data: bytes) -> None:
    (folder / "newsletter.yaml").write_bytes(data)
    config, problems = check_config(folder, {})
    assert config is not None or any(p.is_error for p in problems)
    for problem in problems:
        assert problem.message and (problem.path == "newsletter.yaml" or problem.path.startswith("environment"))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list(":-[]{}*&!|>#'\"%?@` \n\tabc01.\\,")), max_size=300))
def test_yaml_parser_on_yaml_punctuation(text: str) -> None:
    try:
        src = parse_yaml(text, "f.yaml")
    except NewsletterError as exc:
        assert exc.path == "f.yaml" and exc.message
        return
    for line, column in src.positions.values():
        assert line >= 1 and column >= 1


# -- the archive-page importer ---------------------------------------------------------------------


@FUZZ
@given(data=any_bytes(EXAMPLE_PAGE))
def test_page_importer_reads_or_refuses_clearly(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "page.txt"
    path.write_bytes(data)
    try:
        months = parse_page(read_page(path, "page.txt"), "page.txt")
    except PageError as exc:
        assert exc.path == "page.txt" and exc.message
        return
    warnings: list[str] = []
    for merged in merge_months([months], warnings):
        assert merged.articles
        text = render_issue_file(merged, warnings)  # raises if the YAML would not load back to the page text
        assert parse_yaml(text, "out.yaml").data["month"] == merged.month


def test_the_seeds_inputs_are_the_real_examples() -> None:
    """The mutations start from the repository's own example files (a guard against fuzzing nothing)."""
    assert b"email" in EXAMPLE_CSV.split(b"\n")[0].lower()
    assert parse_yaml(EXAMPLE_ISSUE.decode("utf-8"), "x").data["articles"]
    assert EXAMPLE_PAGE.count(b"Practice Implications") == 3
    with pytest.raises(PageError):
        parse_page([], "empty.txt")
