"""``newsletter import``: archive pages to issue files, then check, build and site (importer.py)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.content.config import load_config
from newsletter.content.importer import MergedMonth, PageArticle, is_title_shaped, render_issue_file
from newsletter.content.load import load_issue

PAGES_DIR = Path(__file__).resolve().parents[2] / "shared" / "pprnet-pages"
BOILERPLATE = """Blog
The Example Network blog began in 2013. It offers a monthly summary of two or three published articles.
This month...

…I blog about something that is not on this page at all
Type of Research
Topics
- ALL Topics (clear)
- Empathy
"""
SUMMARY = ("Researchers asked {n} therapists about their work and found that the alliance mattered more than technique, "
           "even after controlling for client severity (r = .28). Smith and colleagues (2019) had reported the same.")
LONG_UNPUNCTUATED = ("A second implications paragraph (n = 12) ends without a full stop; it is long enough to be prose "
                     "and not a title: titles are short, and this paragraph goes on about the alliance (see above)")
IMPLICATIONS = "Therapists should ask clients early how the work is going for them, and repair ruptures when they appear."


@pytest.fixture
def pages() -> list[Path]:
    """The three archive pages saved from the old website (shared, read-only)."""
    if not PAGES_DIR.is_dir():
        pytest.skip(f"the archive pages are not here: {PAGES_DIR} (they live beside the repository in shared/pprnet-pages)")
    found = sorted(PAGES_DIR.glob("*.txt"))
    if not found:
        pytest.skip(f"no *.txt pages in {PAGES_DIR}")
    return found


def run(folder: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--folder", str(folder)], catch_exceptions=False)


def page_oracle(pages: list[Path]) -> dict[str, tuple[str, str]]:
    """title -> (summary, implications) read straight off the page lines, independently of the importer.

    On these pages every paragraph is one line: the summary is the line just
    before "Practice Implications", the implications the line just after, and
    the title is two lines up (three when a citation sits between).
    """
    expected: dict[str, tuple[str, str]] = {}
    for page in pages:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line == "Practice Implications":
                summary, implications = lines[i - 1], lines[i + 1]
                title = lines[i - 2] if len(lines[i - 2]) < 100 and "(20" not in lines[i - 2] else lines[i - 3]
                expected.setdefault(title, (summary, implications))
    return expected


def write_page(tmp_path: Path, name: str, body: str, boilerplate: bool = True) -> Path:
    path = tmp_path / name
    path.write_text((BOILERPLATE if boilerplate else "") + body, encoding="utf-8")
    return path


def article_block(title: str, n: int, citation: str | None = None, implications: str = IMPLICATIONS) -> str:
    lines = [title] + ([citation] if citation else []) + [SUMMARY.format(n=n), "Practice Implications", implications]
    return "\n".join(lines) + "\n"


def imported(folder: Path, month: str):
    return load_issue(folder / "issues" / f"{month}.yaml", load_config(folder), folder).issue


# --- the real pages: import, check, build, site ------------------------------------------


@pytest.fixture
def imported_folder(folder: Path, pages: list[Path]) -> Path:
    result = run(folder, "import", *map(str, pages))
    assert result.exit_code == 0, result.output
    return folder


IMPORTED_MONTHS = ["2020-08", "2020-09", "2021-01", "2021-02", "2021-05", "2021-06", "2021-07", "2021-11", "2023-11"]


def test_import_writes_one_file_per_month_and_check_passes_with_only_warnings(imported_folder: Path):
    written = sorted(p.stem for p in (imported_folder / "issues").glob("20*.yaml") if not p.stem.startswith("2026"))
    assert written == IMPORTED_MONTHS
    result = run(imported_folder, "check")
    assert result.exit_code == 0, result.output
    assert " 0 error(s)" in result.output
    for month in IMPORTED_MONTHS:
        assert f"issues/{month}.yaml" in result.output and "no intro; this one was drafted from the titles" in result.output
    assert "has no topics" in result.output


def test_every_summary_and_implication_is_the_page_text_exactly(imported_folder: Path, pages: list[Path]):
    expected = page_oracle(pages)
    assert len(expected) == 15
    seen: dict[str, tuple[str, str]] = {}
    citations: list[str] = []
    for month in IMPORTED_MONTHS:
        issue = imported(imported_folder, month)
        assert issue.intro_drafted
        for article in issue.articles:
            assert article.title not in seen, f"{article.title} imported twice"
            assert article.topics == ()
            seen[article.title] = (article.summary, article.practice_implications)
            citations.append(article.citation.text if article.citation else "")
    assert seen == expected
    # curly quotes, dashes and diacritics survive byte for byte
    everything = "".join(s + i for s, i in seen.values())
    for char in "’“”–−β":
        assert char in everything
    for word in ("Rønnestad", "Fagernäs", "Flückiger", "skills—A comparison", "patients’ perspectives"):
        assert any(word in citation for citation in citations)


def test_site_boilerplate_is_not_copied_into_any_month(imported_folder: Path):
    for month in IMPORTED_MONTHS:
        text = (imported_folder / "issues" / f"{month}.yaml").read_text(encoding="utf-8")
        assert "I blog about" not in text
        assert "This month" not in text
        assert "PPRNet" not in text
        assert "ALL Topics" not in text


def test_months_on_several_pages_are_merged_in_page_order(imported_folder: Path):
    # September 2020 is on two pages: one shows a single article, the other all three.
    titles = [a.title for a in imported(imported_folder, "2020-09").articles]
    assert titles == [
        "Mentalizing and Psychotherapy",
        "The Reciprocal Relationship Between the Alliance and Outcomes",
        "Supervision in Psychotherapy: The Impact of Attachment on Burnout",
    ]
    # July 2021 has one article on each of two pages.
    assert [a.title for a in imported(imported_folder, "2021-07").articles] == [
        "Adverse Effects of Psychotherapy in Patients with Depression",
        "Psychotherapist burnout affects patient outcomes",
    ]
    header = (imported_folder / "issues" / "2020-09.yaml").read_text(encoding="utf-8").splitlines()[:3]
    assert header[0].startswith("# Imported by `newsletter import`")
    assert header[1].endswith("002_47bd83aba10aca67.txt:75") and header[2].endswith("003_4fc181905bb75a72.txt:45")


def test_articles_without_citation_and_parsed_citations(imported_folder: Path):
    february = imported(imported_folder, "2021-02")
    assert [a.citation for a in february.articles] == [None, None]
    assert february.articles[0].summary.startswith("The COVID-19 pandemic has changed many things")
    january = imported(imported_folder, "2021-01").articles[0].citation
    assert january.text.startswith("Ensink, K., Maheux, J., Normandin, L., Sabourin, S., … & Parent, K. (2013).")
    assert january.doi == "10.1080/10503307.2013.800950"
    assert january.authors[-1] == "Parent, K."
    june = imported(imported_folder, "2021-06").articles[0].citation
    assert june.authors == ("Nissen-Lie, H. A.", "Orlinsky, D. E.", "Rønnestad, M. H.")
    assert june.status == "Advance online publication"


def test_build_shows_every_summary_and_implication(imported_folder: Path, pages: list[Path]):
    expected = page_oracle(pages)
    found = 0
    for month in IMPORTED_MONTHS:
        result = run(imported_folder, "build", month)
        assert result.exit_code == 0, result.output
        out = imported_folder / "build" / month
        page_html = html.unescape((out / "email.html").read_text(encoding="utf-8"))
        # the plain text is wrapped at 72 columns: compare word sequences
        text_words = " ".join((out / "email.txt").read_text(encoding="utf-8").split())
        for article in imported(imported_folder, month).articles:
            summary, implications = expected[article.title]
            for paragraph in (summary, implications):
                assert paragraph in page_html
                assert " ".join(paragraph.split()) in text_words
            found += 1
    assert found == 15


def test_site_with_drafts_shows_every_summary_and_implication(imported_folder: Path, pages: list[Path]):
    result = run(imported_folder, "site", "--include-drafts")
    assert result.exit_code == 0, result.output
    expected = page_oracle(pages)
    for month in IMPORTED_MONTHS:
        site_page = html.unescape((imported_folder / "site" / month / "index.html").read_text(encoding="utf-8"))
        for article in imported(imported_folder, month).articles:
            summary, implications = expected[article.title]
            assert summary in site_page
            assert implications in site_page


@pytest.mark.browser
def test_site_page_in_chromium_shows_the_page_text(imported_folder: Path, pages: list[Path], page):
    assert run(imported_folder, "site", "--include-drafts").exit_code == 0
    expected = page_oracle(pages)
    page.goto((imported_folder / "site" / "2020-09" / "index.html").as_uri())
    paragraphs = page.locator("p").all_inner_texts()
    for title in ("Mentalizing and Psychotherapy", "Supervision in Psychotherapy: The Impact of Attachment on Burnout"):
        summary, implications = expected[title]
        assert summary in paragraphs
        assert implications in paragraphs
    assert page.console_errors == []


def test_subprocess_run_of_the_installed_command(tmp_path: Path, folder: Path, pages: list[Path]):
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "import", *map(str, pages), "--into", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=folder, env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "9 issue file(s) written" in result.stdout
    assert len(list((tmp_path / "out").glob("*.yaml"))) == 9


# --- safety: overwrite, --force, --dry-run ---------------------------------------------------


def test_existing_file_is_not_overwritten_and_the_difference_is_described(imported_folder: Path, pages: list[Path]):
    target = imported_folder / "issues" / "2020-09.yaml"
    data = yaml.safe_load(target.read_text(encoding="utf-8"))
    data["articles"] = data["articles"][1:]  # "Mentalizing" will be new
    data["articles"][0]["summary"] = "An edited summary."
    data["articles"][1]["topics"] = ["Attachment"]
    data["articles"].append({"title": "My Own Article", "summary": "S.", "practice_implications": "P."})
    edited = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    target.write_text(edited, encoding="utf-8")
    result = run(imported_folder, "import", *map(str, pages))
    assert result.exit_code == 1
    assert target.read_text(encoding="utf-8") == edited  # untouched
    assert "issues/2020-09.yaml exists and differs; not overwritten (use --force to replace it):" in result.output
    assert "new articles: 'Mentalizing and Psychotherapy'" in result.output
    assert ("articles that differ: 'The Reciprocal Relationship Between the Alliance and Outcomes' (summary); "
            "'Supervision in Psychotherapy: The Impact of Attachment on Burnout' (topics set in the existing file)") in result.output
    assert "only in the existing file (--force would drop them): 'My Own Article'" in result.output
    assert "unchanged issues/2021-07.yaml" in result.output  # identical files are left alone

    forced = run(imported_folder, "import", "--force", *map(str, pages))
    assert forced.exit_code == 0, forced.output
    assert "replaced issues/2020-09.yaml (3 articles)" in forced.output
    assert [a.title for a in imported(imported_folder, "2020-09").articles][0] == "Mentalizing and Psychotherapy"
    assert "My Own Article" not in target.read_text(encoding="utf-8")


def test_dry_run_prints_the_files_and_writes_nothing(folder: Path, pages: list[Path]):
    before = sorted(p.name for p in (folder / "issues").iterdir())
    result = run(folder, "import", "--dry-run", *map(str, pages))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (folder / "issues").iterdir()) == before
    assert "would write issues/2021-07.yaml (2 articles)" in result.output
    assert "--- issues/2021-07.yaml\n# Imported by `newsletter import`" in result.output
    assert "month: 2021-07" in result.output
    assert "dry run: 3 of 3 page(s) understood, 9 issue file(s) to write" in result.output


def test_dry_run_over_an_existing_file_reports_the_refusal_and_writes_nothing(folder: Path, pages: list[Path]):
    target = folder / "issues" / "2021-07.yaml"
    target.write_text("month: 2021-07\narticles: []\n", encoding="utf-8")
    result = run(folder, "import", "--dry-run", *map(str, pages))
    assert result.exit_code == 1
    assert "issues/2021-07.yaml exists and differs" in result.output
    assert target.read_text(encoding="utf-8") == "month: 2021-07\narticles: []\n"


# --- pages the importer cannot understand ------------------------------------------------------


@pytest.mark.parametrize("body, line, message", [
    ("Nothing here looks like an archive page.\nJust words.\n", 1, "no month heading such as 'July 2021' found"),
    ("July 2021\nA Title\n" + SUMMARY.format(n=3) + "\nNo implications heading here.\n", 10, "no 'Practice Implications' heading under 'July 2021'"),
    # an article whose "Practice Implications" heading is missing: its title sits inside the previous implications
    ("July 2021\n" + article_block("First Article", 1) + "Second Article\n" + SUMMARY.format(n=2) + "\n", 15, "'Second Article' looks like a title"),
    ("July 2021\nA Title\nPractice Implications\n" + IMPLICATIONS + "\n", 11, "expected the summary paragraph before 'Practice Implications' (line 12), found a heading or title"),
    ("July 2021\n" + SUMMARY.format(n=1) + "\nPractice Implications\n" + IMPLICATIONS + "\n", 11, "no article title before the summary on line 11"),
    ("July 2021\nA Title\n" + SUMMARY.format(n=1) + "\n" + SUMMARY.format(n=2) + "\nPractice Implications\n" + IMPLICATIONS + "\n", 12, "expected an article title"),
    ("July 2021\nA Title\n" + SUMMARY.format(n=1) + "\nPractice Implications\nJune 2021\n" + article_block("B", 2), 13, "no implications after 'Practice Implications'"),
])
def test_garbage_gets_file_line_error_and_nothing_is_written(tmp_path: Path, folder: Path, body: str, line: int, message: str):
    bad = write_page(tmp_path, "bad.txt", body)
    good = write_page(tmp_path, "good.txt", "March 2019\n" + article_block("A Good Article", 5))
    before = sorted(p.name for p in (folder / "issues").iterdir())
    result = run(folder, "import", str(bad), str(good))
    assert result.exit_code == 1
    assert f"bad.txt:{line}: {message}" in result.output, result.output
    assert "hint: " in result.output and "nothing from this page was imported" in result.output
    after = sorted(p.name for p in (folder / "issues").iterdir())
    assert after == sorted(before + ["2019-03.yaml"])  # the good page is imported; nothing from the bad one
    assert "2021-07.yaml" not in after


def test_error_late_in_a_page_discards_the_whole_page(tmp_path: Path, folder: Path):
    bad = write_page(tmp_path, "bad.txt", "March 2019\n" + article_block("Fine Article", 1) + "February 2019\nBroken\n")
    result = run(folder, "import", str(bad))
    assert result.exit_code == 1
    assert "bad.txt:15: no 'Practice Implications' heading under 'February 2019'" in result.output
    assert not (folder / "issues" / "2019-03.yaml").exists()


def test_page_that_is_not_utf8_or_missing(tmp_path: Path, folder: Path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(BOILERPLATE.encode() + "July 2021\nCaf\xe9 Therapy\n".encode("latin-1"))
    result = run(folder, "import", str(bad), str(tmp_path / "missing.txt"))
    assert result.exit_code == 1
    assert "latin1.txt:11: not UTF-8 text" in result.output
    assert "missing.txt: page not found" in result.output


def test_a_utf16_page_is_named_as_such(tmp_path: Path, folder: Path):
    """Windows' "Unicode text" is UTF-16: the author needs to hear which encoding to choose instead."""
    page = tmp_path / "unicode.txt"
    page.write_bytes((BOILERPLATE + "July 2021\n").encode("utf-16"))
    result = run(folder, "import", str(page))
    assert result.exit_code == 1
    assert "unicode.txt:1: the file is UTF-16 text: save it as UTF-8" in result.output


# --- constructed variations of the page layout -----------------------------------------------


def test_title_and_boundary_detection_on_variations(tmp_path: Path, folder: Path):
    citation = "Smith, J.&Jones, K. (2020). A trial of things. Journal of Things, 1(2), 3-4. doi: 10.1000/abc456"
    body = (
        "\r\n".join([
            "October 2019",
            "",
            "Why Do Clients Drop Out?",  # a title ending in a question mark, with a citation
            citation,
            SUMMARY.format(n=10),
            "Practice Implications",
            "First implications paragraph, with a reference to Smith (2019) in it.",
            "",
            LONG_UNPUNCTUATED,
            "Empathy: What Clients Notice",  # no citation: title then summary
            SUMMARY.format(n=11),
            "Practice implications:",  # heading spelt a little differently
            IMPLICATIONS,
        ])
        + "\r\n"
    )
    page = write_page(tmp_path, "variations.txt", body, boilerplate=False)
    result = run(folder, "import", str(page))
    assert result.exit_code == 0, result.output
    issue = imported(folder, "2019-10")
    first, second = issue.articles
    assert first.title == "Why Do Clients Drop Out?"
    assert first.citation.text == citation and first.citation.doi == "10.1000/abc456"
    assert first.summary == SUMMARY.format(n=10)
    assert first.implication_paragraphs == [
        "First implications paragraph, with a reference to Smith (2019) in it.",
        LONG_UNPUNCTUATED,
    ]
    assert second.title == "Empathy: What Clients Notice" and second.citation is None
    assert second.summary == SUMMARY.format(n=11)  # "Smith and colleagues (2019)" did not make it a citation
    assert second.practice_implications == IMPLICATIONS


def test_title_ending_in_a_full_stop_is_accepted_above_a_citation(tmp_path: Path, folder: Path):
    citation = "Chui, H., & Liu, F. (2021). Emotional experience of psychotherapists: A latent profile analysis. Psychotherapy, 58(3), 401–413."
    page = write_page(tmp_path, "p.txt", "May 2018\n" + article_block("Feelings Matter.", 1, citation) + article_block("Second", 2))
    result = run(folder, "import", str(page))
    assert result.exit_code == 0, result.output
    first, second = imported(folder, "2018-05").articles
    assert first.title == "Feelings Matter." and first.citation.volume == "58" and first.citation.issue == "3"
    assert first.practice_implications == IMPLICATIONS and second.title == "Second"


def test_reimport_from_another_directory_is_unchanged(tmp_path: Path, imported_folder: Path, pages: list[Path]):
    copies = tmp_path / "elsewhere"
    copies.mkdir()
    for page in pages:
        (copies / page.name).write_bytes(page.read_bytes())
    result = run(imported_folder, "import", *map(str, sorted(copies.iterdir())))
    assert result.exit_code == 0, result.output
    assert "0 issue file(s) written, 9 unchanged, 0 refused" in result.output


def test_line_numbers_count_newlines_only(tmp_path: Path, folder: Path):
    page = write_page(tmp_path, "p.txt", "Intro with a\u2028line separator and a \x0c form feed\nMay 2018\nOnly A Title\n", boilerplate=False)
    result = run(folder, "import", str(page))
    assert f"{page}:2: no 'Practice Implications' heading under 'May 2018'" in result.output


def test_merge_keeps_the_order_every_page_shows(tmp_path: Path, folder: Path):
    a = write_page(tmp_path, "a.txt", "May 2018\n" + article_block("Alpha", 1) + article_block("Gamma", 3))
    b = write_page(tmp_path, "b.txt", "May 2018\n" + article_block("Beta", 2) + article_block("Gamma", 3) + article_block("Delta", 4))
    c = write_page(tmp_path, "c.txt", "May 2018\n" + article_block("alpha", 1))  # same title in other case: same article
    result = run(folder, "import", str(a), str(b), str(c))
    assert result.exit_code == 0, result.output
    assert [x.title for x in imported(folder, "2018-05").articles] == ["Alpha", "Beta", "Gamma", "Delta"]


def test_same_title_twice_on_one_page_is_one_article(tmp_path: Path, folder: Path):
    page = write_page(tmp_path, "p.txt", "May 2018\n" + article_block("Alpha", 1) + article_block("Beta", 2) + article_block("Alpha", 1))
    other = write_page(tmp_path, "q.txt", "June 2018\n" + article_block("Gamma", 1) + article_block("Gamma", 1))
    result = run(folder, "import", str(page), str(other))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output  # identical repeats need no warning
    assert [a.title for a in imported(folder, "2018-05").articles] == ["Alpha", "Beta"]
    assert [a.title for a in imported(folder, "2018-06").articles] == ["Gamma"]


def test_same_title_with_different_text_is_reported(tmp_path: Path, folder: Path):
    a = write_page(tmp_path, "a.txt", "May 2018\n" + article_block("Alpha", 1))
    b = write_page(tmp_path, "b.txt", "May 2018\n" + article_block("Alpha", 2))
    result = run(folder, "import", str(a), str(b))
    assert result.exit_code == 0
    assert f"{b}:11: warning: 'Alpha' differs from {a}:11 (summary); kept the text from {a}:11" in result.output
    assert imported(folder, "2018-05").articles[0].summary == SUMMARY.format(n=1)


def test_malformed_doi_is_reported_and_not_written(tmp_path: Path, folder: Path):
    citation = "Smith, J. (2020). Title of it. JAMA Psychiatry, 3, 1-2. doi: 10:1001/jamapsychiatry.2020.1"
    page = write_page(tmp_path, "doi.txt", "May 2018\n" + article_block("Alpha", 1, citation))
    result = run(folder, "import", str(page))
    assert result.exit_code == 0, result.output
    assert "doi.txt:12: warning: malformed DOI '10:1001/jamapsychiatry.2020.1'" in result.output
    article = imported(folder, "2018-05").articles[0]
    assert article.citation.text == citation
    assert article.citation.doi is None and article.citation.link is None


def test_yaml_round_trip_of_awkward_strings():
    awkward = [
        "Yes", "null", "2021", "- a dash", "# not a comment", "key: value", "'quoted'", "\"double\"", "a | pipe",
        "Café – “curly” ‘quotes’ — Rønnestad, Fagernäs, Flückiger…", "trailing colon:", "[brackets]", "{braces}", "@at", "%percent",
    ]
    articles = tuple(
        PageArticle(title=f"{text} {i}", citation=f"Smith, J. (2020). {text}. Journal, 1, 2.", summary=text,
                    implications=f"{text}\n\n{text} again", source=f"x.txt:{i}")
        for i, text in enumerate(awkward)
    )
    merged = MergedMonth("2020-01", list(articles), ["x.txt:1"])
    data = yaml.safe_load(render_issue_file(merged, []))
    for article, loaded in zip(articles, data["articles"]):
        assert loaded["title"] == article.title
        assert loaded["summary"] == article.summary
        assert loaded["practice_implications"] == article.implications
        assert loaded["citation"]["text"] == article.citation


@pytest.mark.parametrize("line, shaped", [
    ("The COVID-19 Telepsychology Revolution", True),
    ("Does Clinical Training Lead to Greater Therapist Interpersonal Skills?", True),
    ("Psychotherapist burnout affects patient outcomes", True),
    ("Chui, H., & Liu, F. (2021). Emotional experience of psychotherapists. Psychotherapy, 58(3), 401–413", False),
    ("Therapists should ask.", False),
    ("Key points:", False),
    ("See https://example.org/more", False),
    ("word " * 40, False),
])
def test_title_shape(line: str, shaped: bool):
    assert is_title_shaped(line.strip()) is shaped


def test_import_with_archive_publishes_the_back_catalogue_on_the_site(tmp_path: Path, folder: Path):
    """Past issues were sent before this tool: --archive freezes them, so plain `site` shows them as sent."""
    page = write_page(tmp_path, "p.txt", "May 2018\n" + article_block("Alpha", 1) + "April 2018\n" + article_block("Beta", 2))
    result = run(folder, "import", "--archive", str(page))
    assert result.exit_code == 0, result.output
    assert re.search(r"^archived 2018-05 in \S*archive/2018-05/$", result.output, re.M)
    assert re.search(r"^archived 2018-04 in \S*archive/2018-04/$", result.output, re.M)
    assert not (folder / "archive" / "2026-11").exists()  # the folder's own unsent issues are left alone
    site = run(folder, "site")
    assert site.exit_code == 0, site.output
    may = (folder / "site" / "2018-05" / "index.html").read_text(encoding="utf-8")
    assert "Alpha" in may and SUMMARY.format(n=1).split(" (r")[0] in may and "Draft" not in may
    again = run(folder, "import", "--archive", str(page))  # rerunning changes nothing
    assert again.exit_code == 0 and re.search(r"2018-05 is already archived in \S*archive/2018-05/ and has not changed", again.output)


def test_archive_takes_several_issues_and_reports_each(folder: Path):
    result = run(folder, "archive", "2026-10", "2031-01", "2026-11")
    assert result.exit_code == 1
    assert re.search(r"^archived 2026-10 in \S*archive/2026-10/$", result.output, re.M)
    assert re.search(r"^archived 2026-11 in \S*archive/2026-11/$", result.output, re.M)
    assert "issues/2031-01.yaml: error: file not found" in result.output
    assert "1 of 3 issue(s) not archived; fix them and run the same command again" in result.output
