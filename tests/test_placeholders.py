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


def _is_placeholder_by_folding(field: str, value: object) -> bool:
    """The plain definition ``_is_placeholder`` short-cuts: fold the whole field, then compare."""
    if not isinstance(value, str):
        return False
    folded = " ".join(value.split()).casefold()
    if field == "intro":
        return folded == " ".join(placeholders.INTRO.split()).casefold()
    if field == "text":
        return bool(placeholders._CITATION_RE.fullmatch(folded)) or placeholders.DOI in folded
    if field == "doi":
        return placeholders.DOI in folded
    return placeholders._ARTICLE_TEXTS.get(field) == folded


_PLACEHOLDER_TEXTS = st.sampled_from([
    placeholders.INTRO, placeholders.TITLE, placeholders.SUMMARY, placeholders.IMPLICATIONS, placeholders.DOI,
    placeholders.CITATION.format(year="2027", doi=placeholders.DOI), placeholders.CITATION,
])


@st.composite
def _field_texts(draw: st.DrawFn) -> str:
    """A placeholder with its spaces and case changed, perhaps inside other text, or any text at all."""
    base = draw(st.one_of(_PLACEHOLDER_TEXTS, st.text(max_size=20)))
    words = base.split(" ")
    spaces = draw(st.lists(st.sampled_from([" ", "  ", "\n", "\t", " \n  ", "\u00a0", "\u2028"]), min_size=len(words), max_size=len(words)))
    text = "".join(w + s for w, s in zip(words, spaces))
    text = draw(st.sampled_from([text, text.upper(), text.lower(), text.title()]))
    return draw(st.text(max_size=3)) + text + draw(st.sampled_from(["", "", "x", ".", " more"]))


@given(field=st.sampled_from(["intro", "title", "summary", "practice_implications", "text", "doi", "journal"]),
       value=st.one_of(_field_texts(), st.integers(), st.none()))
def test_the_first_word_shortcut_finds_exactly_what_folding_finds(field: str, value: object) -> None:
    """``_is_placeholder`` compares a field's first word before folding all of it (issue 15): the
    same answer as folding the whole field."""
    assert placeholders._is_placeholder(field, value) == _is_placeholder_by_folding(field, value)


def test_folding_never_turns_a_character_into_a_space_or_a_space_into_anything_else() -> None:
    """What the shortcut relies on, for every character: casefold() keeps whitespace as it is and
    makes none, so a word's folded first word, or a DOI inside it, is the same folded alone or in context."""
    for code in range(0x110000):
        char = chr(code)
        folded = char.casefold()
        if char.isspace():
            assert folded == char
        else:
            assert not any(c.isspace() for c in folded), hex(code)
