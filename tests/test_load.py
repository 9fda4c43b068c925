"""Issue validation: every problem is reported at once, with file:line:column and a way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.content.config import load_config
from newsletter.errors import ValidationError
from newsletter.content.load import check_issue, did_you_mean, load_issue, resolve_issue_path

GOOD = """\
month: 2021-07
intro: I blog about burnout.
articles:
  - title: First
    citation:
      text: "Surname, A. (2021). Title. Journal, 1, 2-3."
      doi: 10.1037/pst0000172
    topics: [Empathy]
    summary: One.
    practice_implications: Two.
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / "issues" / name
    path.write_text(text, encoding="utf-8")
    return path


def messages(folder: Path, path: Path) -> list[str]:
    return [str(p) for p in check_issue(path, load_config(folder), folder).problems]


def test_good_issue_loads_into_the_model(folder: Path) -> None:
    path = write(folder, "2021-07.yaml", GOOD)
    issue = load_issue(path, load_config(folder), folder).issue
    assert issue is not None
    assert issue.month == "2021-07"
    assert issue.month_name == "July 2021"
    assert issue.articles[0].citation is not None
    assert issue.articles[0].citation.link == "https://doi.org/10.1037/pst0000172"
    assert issue.articles[0].topics == ("Empathy",)
    assert not issue.intro_drafted


def test_yaml_syntax_error_has_position(folder: Path) -> None:
    path = write(folder, "2021-07.yaml", "month: 2021-07\narticles:\n  - title: [unclosed\n    summary: x\n")
    (msg,) = messages(folder, path)
    assert msg.startswith("issues/2021-07.yaml:3:12: error: the '[' here is not closed by a ']' before line 4")


def test_every_problem_is_reported_at_once(folder: Path) -> None:
    text = """\
month: 2021-08
articles:
  - title: Same title
    citation:
      text: Some citation
      doi: "10:1001/abc"
    topics: [Alliance]
    summary: A
  - title: same title
    topics: [Empathy]
    summary: B
    practice_implications: C
"""
    path = write(folder, "2021-07.yaml", text)
    assert messages(folder, path) == [
        "issues/2021-07.yaml:1:8: error: month 2021-08 does not match the file name '2021-07.yaml'; rename the file to 2021-08.yaml or fix the month",
        "issues/2021-07.yaml:3:5: error: missing required field 'practice_implications'",
        "issues/2021-07.yaml:6:12: error: malformed DOI '10:1001/abc'; a DOI looks like 10.1037/pst0000123 (prefix 10., a registrant number, a slash, a suffix)",
        "issues/2021-07.yaml:7:14: error: unknown topic 'Alliance'; did you mean 'Alliance and Therapeutic Relationship'?",
        "issues/2021-07.yaml:9:12: error: duplicate title 'same title' (also article 1); each article needs its own title",
    ]


def test_duplicate_titles_are_an_error(folder: Path) -> None:
    text = GOOD + """\
  - title: FIRST
    topics: [Empathy]
    summary: x
    practice_implications: y
"""
    path = write(folder, "2021-07.yaml", text)
    assert messages(folder, path) == [
        "issues/2021-07.yaml:11:12: error: duplicate title 'FIRST' (also article 1); each article needs its own title"
    ]


def test_missing_month_and_articles(folder: Path) -> None:
    path = write(folder, "2021-07.yaml", "intro: hello\n")
    assert messages(folder, path) == [
        "issues/2021-07.yaml:1:1: error: missing required field 'month' (write it as YYYY-MM, e.g. month: 2021-07)",
        "issues/2021-07.yaml:1:1: error: missing required field 'articles' (a list of one or more articles)",
    ]


def test_unknown_field_suggests_the_right_one(folder: Path) -> None:
    path = write(folder, "2021-07.yaml", GOOD.replace("practice_implications: Two.", "practise_implications: Two."))
    assert messages(folder, path) == [
        "issues/2021-07.yaml:4:5: error: missing required field 'practice_implications'",
        "issues/2021-07.yaml:10:5: error: unknown field 'practise_implications' in article 1 (did you mean 'practice_implications'?)",
    ]


def test_warnings_for_no_topics_and_long_summary(folder: Path) -> None:
    long_summary = " ".join(["word"] * 500)
    path = write(folder, "2021-07.yaml", GOOD.replace("topics: [Empathy]", "topics: []").replace("summary: One.", f"summary: {long_summary}"))
    loaded = check_issue(path, load_config(folder), folder)
    assert loaded.errors == []
    assert [str(w) for w in loaded.warnings] == [
        "issues/2021-07.yaml:4:5: warning: 'First' has no topics; it will not appear on any topic page (add topics: [...])",
        "issues/2021-07.yaml:9:14: warning: summary is 500 words; readers skim, consider under 450",
    ]
    assert loaded.issue is not None


def test_article_without_citation_is_allowed_and_intro_is_drafted(folder: Path) -> None:
    text = "month: 2021-07\narticles:\n  - title: The COVID-19 Telepsychology Revolution\n    topics: [Miscellaneous]\n    summary: S\n    practice_implications: P\n"
    loaded = load_issue(write(folder, "2021-07.yaml", text), load_config(folder), folder)
    assert loaded.issue is not None
    assert loaded.issue.articles[0].citation is None
    assert loaded.issue.intro_drafted
    assert "The COVID-19 Telepsychology Revolution" in loaded.issue.intro


def test_load_issue_raises_with_all_problems(folder: Path) -> None:
    path = write(folder, "2021-07.yaml", "month: 2021-07\narticles: []\n")
    with pytest.raises(ValidationError) as info:
        load_issue(path, load_config(folder), folder)
    assert [str(p) for p in info.value.problems] == [
        "issues/2021-07.yaml:2:11: error: 'articles' must be a list of one or more articles, each starting with '- title:'"
    ]


def test_doi_prefixes_are_normalised(folder: Path) -> None:
    path = write(folder, "2021-07.yaml", GOOD.replace("doi: 10.1037/pst0000172", "doi: https://doi.org/10.1037/pst0000172"))
    issue = load_issue(path, load_config(folder), folder).issue
    assert issue is not None and issue.articles[0].citation is not None
    assert issue.articles[0].citation.doi == "10.1037/pst0000172"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Alliance", "Alliance and Therapeutic Relationship"),
        ("empathy", "Empathy"),
        ("Therapist Factor", "Therapist Factors"),
        ("Psychodynamic", "Psychodynamic Therapy (PDT)"),
        ("Quantum chromodynamics", None),
    ],
)
def test_did_you_mean(folder: Path, word: str, expected: str | None) -> None:
    assert did_you_mean(word, load_config(folder).topics) == expected


def test_resolve_issue_path(folder: Path) -> None:
    assert resolve_issue_path(folder, "2026-10") == folder / "issues" / "2026-10.yaml"
    assert resolve_issue_path(folder, "elsewhere/x.yaml") == folder / "elsewhere" / "x.yaml"


@pytest.mark.parametrize("tagged", ["!!set {Hello}", "!!set {a, b}"])
def test_a_text_field_given_a_set_tag_is_refused(folder: Path, tagged: str) -> None:
    """``intro: !!set {Hello}`` passed check and built an email saying {'Hello'}: the text check
    refused only lists and mappings, and str() wrote out the rest."""
    path = write(folder, "2021-07.yaml", GOOD.replace("intro: I blog about burnout.", f"intro: {tagged}"))
    problems = messages(folder, path)
    assert any(p.startswith("issues/2021-07.yaml:2:8: error: 'intro' must be text") for p in problems), problems
