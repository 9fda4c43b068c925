"""Scaffold text left in an issue: an error for check and send (file:line), a warning for build and preview."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from newsletter.cli import main
from newsletter.content import placeholders
from newsletter.content.placeholders import find_placeholders
from newsletter.mail.preview import preview_page

MONTH = "2027-01"


def run(folder: Path, *args: str):
    return CliRunner().invoke(main, ["-C", str(folder), *args], catch_exceptions=False)


@pytest.fixture
def scaffolded(folder: Path) -> Path:
    assert run(folder, "new", MONTH).exit_code == 0
    return folder


EXPECTED = [
    f"issues/{MONTH}.yaml:9:8: error: 'I blog about ...' is placeholder text from `newsletter new`; replace it with your own before sending",
    f"issues/{MONTH}.yaml:13:12: error: 'Title of the first article' is placeholder text from `newsletter new`; replace it with your own before sending",
    f"issues/{MONTH}.yaml:15:13: error: 'Surname, A., & Other, B. (2027). Title of the p...' is placeholder text from `newsletter new`; replace it with your own before sending",
    f"issues/{MONTH}.yaml:21:14: error: 'What the study asked, how, and what it found. B...' is placeholder text from `newsletter new`; replace it with your own before sending",
    f"issues/{MONTH}.yaml:24:28: error: 'What a clinician might do differently on Monday.' is placeholder text from `newsletter new`; replace it with your own before sending",
]


def test_check_reports_each_placeholder_as_an_error_at_its_line(scaffolded: Path) -> None:
    result = run(scaffolded, "check", MONTH)
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if "placeholder" in line] == EXPECTED


def test_send_refuses_an_untouched_scaffold_and_sends_nothing(scaffolded: Path) -> None:
    (scaffolded / "list.csv").write_text("email,name\nada@example.org,Ada\n", encoding="utf-8")
    result = run(scaffolded, "send", MONTH, "--to", str(scaffolded / "list.csv"), "--yes")
    assert result.exit_code == 1
    assert EXPECTED[1] in result.output
    assert not (scaffolded / "outbox").exists() and not (scaffolded / "sends" / f"{MONTH}.sqlite").exists()


def test_build_and_preview_only_warn(scaffolded: Path) -> None:
    result = run(scaffolded, "build", MONTH)
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if "placeholder" in line] == [e.replace(": error: ", ": warning: ") for e in EXPECTED]
    assert (scaffolded / "build" / MONTH / "message.eml").is_file()
    page = preview_page(scaffolded, MONTH)
    assert "Title of the first article" in page  # the preview renders it
    assert "is placeholder text from `newsletter new`" in page


def test_a_filled_in_issue_passes(scaffolded: Path) -> None:
    path = scaffolded / "issues" / f"{MONTH}.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in [("I blog about ...", "This month: empathy."), ("Title of the first article", "Empathy works"),
                     ("https://doi.org/10.1000/xyz123", "https://doi.org/10.1037/pst0000123"),
                     ("What the study asked", "Whether empathy helped"), ("What a clinician might", "What you might")]:
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    result = run(scaffolded, "check", MONTH)
    assert result.exit_code == 0, result.output


def test_the_example_doi_alone_is_caught() -> None:
    data = {"articles": [{"citation": {"text": "Real, A. (2020). Real. J, 1, 2.", "doi": "10.1000/xyz123"}}]}
    assert [key for key, _ in find_placeholders(data)] == [("articles", 0, "citation", "doi")]


@given(st.text(min_size=1).filter(lambda t: t.strip() and " ".join(t.split()).casefold() not in {
    " ".join(p.split()).casefold() for p in (placeholders.INTRO, placeholders.TITLE, placeholders.SUMMARY, placeholders.IMPLICATIONS)}
    and placeholders.DOI not in t.casefold()))
def test_own_text_is_never_taken_for_a_placeholder(text: str) -> None:
    data = {"intro": text, "articles": [{"title": text, "summary": text, "practice_implications": text, "citation": {"text": text, "doi": text}}]}
    assert list(find_placeholders(data)) == []
