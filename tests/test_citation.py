"""Citations as people really write them, parsed into model.Citation fields (citation.py)."""

from __future__ import annotations

import pytest

from newsletter.content.citation import looks_like_citation, parse_authors, parse_citation
from newsletter.content.load import DOI_RE


def fields(text: str) -> dict:
    """The parsed fields that were filled, plus the problems, for compact assertions."""
    parsed = parse_citation(text)
    assert parsed.citation.text == text.strip()
    out = {k: v for k, v in vars(parsed.citation).items() if k != "text" and v not in (None, ())}
    if parsed.problems:
        out["problems"] = parsed.problems
    return out


# --- real citations from the archive pages -----------------------------------------


def test_no_ampersand_and_initials_without_spaces():
    text = ("Moritz, S., Nestoriuc, Y., Rief, W., Klein, J.P., Jelinek, L., Peth, J. (2019). It can’t hurt, right? "
            "Adverse effects of psychotherapy in patients with depression. European Archives of Psychiatry and "
            "Clinical Neuroscience, 269, 577–586.")
    assert fields(text) == {
        "authors": ("Moritz, S.", "Nestoriuc, Y.", "Rief, W.", "Klein, J.P.", "Jelinek, L.", "Peth, J."),
        "year": 2019,
        "title": "It can’t hurt, right? Adverse effects of psychotherapy in patients with depression",
        "journal": "European Archives of Psychiatry and Clinical Neuroscience",
        "volume": "269",
        "pages": "577–586",
    }


def test_hyphenated_surname_diacritics_and_advance_online_publication():
    text = ("Nissen-Lie, H. A., Orlinsky, D. E., & Rønnestad, M. H. (2021). The emotionally burdened psychotherapist: "
            "Personal and situational risk factors. Professional Psychology: Research and Practice. Advance online publication.")
    assert fields(text) == {
        "authors": ("Nissen-Lie, H. A.", "Orlinsky, D. E.", "Rønnestad, M. H."),
        "year": 2021,
        "title": "The emotionally burdened psychotherapist: Personal and situational risk factors",
        "journal": "Professional Psychology: Research and Practice",
        "status": "Advance online publication",
    }


def test_ellipsis_character_in_authors_and_uppercase_doi_label_after_comma_title():
    text = ("Ensink, K., Maheux, J., Normandin, L., Sabourin, S., … & Parent, K. (2013). The impact of mentalization "
            "training on the reflective function of novice therapists: A randomized controlled trial, Psychotherapy "
            "Research, 23, 526-538, DOI: 10.1080/10503307.2013.800950")
    assert fields(text) == {
        "authors": ("Ensink, K.", "Maheux, J.", "Normandin, L.", "Sabourin, S.", "Parent, K."),
        "year": 2013,
        "title": "The impact of mentalization training on the reflective function of novice therapists: A randomized controlled trial",
        "journal": "Psychotherapy Research",
        "volume": "23",
        "pages": "526-538",
        "doi": "10.1080/10503307.2013.800950",
    }


def test_spaced_dots_ellipsis_multiword_surname_volume_issue():
    text = ("Flückiger, C., Rubel, J., Del Re, A. C., Horvath, A. O., Wampold, B. E., Crits-Christoph, P., "
            "Atzil-Slonim, D., . . . Barber, J. P. (2020). The reciprocal relationship between alliance and early "
            "treatment symptoms: A two-stage individual participant data meta-analysis. Journal of Consulting and "
            "Clinical Psychology, 88(9), 829–843.")
    got = fields(text)
    assert got["authors"] == ("Flückiger, C.", "Rubel, J.", "Del Re, A. C.", "Horvath, A. O.", "Wampold, B. E.",
                              "Crits-Christoph, P.", "Atzil-Slonim, D.", "Barber, J. P.")
    assert (got["volume"], got["issue"], got["pages"]) == ("88", "9", "829–843")
    assert got["journal"] == "Journal of Consulting and Clinical Psychology"


def test_doi_url_with_diacritics_and_em_dash_title():
    text = ("Alfonsson, S., Fagernäs, S., Sjöstrand, G., & Tyrberg, M. J. (2023). Psychotherapist variables that may "
            "lead to treatment failure or termination—A qualitative analysis of patients’ perspectives. Psychotherapy. "
            "Advance online publication. https://doi.org/10.1037/pst0000503")
    assert fields(text) == {
        "authors": ("Alfonsson, S.", "Fagernäs, S.", "Sjöstrand, G.", "Tyrberg, M. J."),
        "year": 2023,
        "title": "Psychotherapist variables that may lead to treatment failure or termination—A qualitative analysis of patients’ perspectives",
        "journal": "Psychotherapy",
        "doi": "10.1037/pst0000503",
        "status": "Advance online publication",
    }


def test_online_first_with_doi_url_and_final_period():
    text = ("Hiebler-Rager, M., Nausner, L., Blaha, A., Grimmer, K., Korlath, S., Mernyi, M., & Unterrainer, H.F. (2020). "
            "The supervisory relationship from an attachment perspective: Connections to burnout and sense of coherence "
            "in health professionals. Clinical Psychology and Psychotherapy, Online First Publication: "
            "https://doi.org/10.1002/cpp.2494.")
    got = fields(text)
    assert got["doi"] == "10.1002/cpp.2494"  # the sentence's full stop is not part of the DOI
    assert got["authors"][-1] == "Unterrainer, H.F."
    assert got["status"] == "Online First Publication"
    assert got["journal"] == "Clinical Psychology and Psychotherapy"
    assert "url" not in got  # the doi.org link is the DOI, not a separate URL


def test_date_with_month_and_day():
    text = ("Keefe, J. R., McMain, S. F., McCarthy, K. S., Zilcha-Mano, S., Dinger, U., Sahin, Z., Graham, K., & "
            "Barber, J. P. (2019, December 5). A meta-analysis of psychodynamic treatments for borderline and Cluster C "
            "personality disorders. Personality Disorders: Theory, Research, and Treatment. Advance online publication.")
    got = fields(text)
    assert got["year"] == 2019
    assert got["journal"] == "Personality Disorders: Theory, Research, and Treatment"
    assert got["title"] == "A meta-analysis of psychodynamic treatments for borderline and Cluster C personality disorders"
    assert len(got["authors"]) == 8


# --- constructed forms ---------------------------------------------------------------


def test_ampersand_without_space_and_lowercase_doi_label():
    assert fields("Smith, J.&Jones, K. (2020). A trial of things. Journal of Things, 1(2), 3-4. doi: 10.1000/xyz123") == {
        "authors": ("Smith, J.", "Jones, K."),
        "year": 2020,
        "title": "A trial of things",
        "journal": "Journal of Things",
        "volume": "1",
        "issue": "2",
        "pages": "3-4",
        "doi": "10.1000/xyz123",
    }


def test_et_al_and_march_date():
    got = fields("Smith, J., Jones, K., et al. (2021, March 18). Telepsychology after the pandemic. Psychotherapy. "
                 "https://doi.org/10.1037/pst0000999")
    assert got["authors"] == ("Smith, J.", "Jones, K.")
    assert got["year"] == 2021
    assert got["title"] == "Telepsychology after the pandemic"
    assert got["doi"] == "10.1037/pst0000999"


def test_no_date_group_author_and_web_url():
    got = fields("World Health Organization. (n.d.). Depression fact sheet. Retrieved from https://www.example.org/depression")
    assert "year" not in got and "authors" not in got  # n.d. is no year; a group author is not "Surname, I."
    assert got["url"] == "https://www.example.org/depression"


def test_in_press_in_place_of_year():
    got = fields("Smith, J. (in press). Something about therapy. Journal of Stuff.")
    assert got["status"] == "in press"
    assert "year" not in got
    assert got["journal"] == "Journal of Stuff"


def test_bare_doi_article_number_and_particles():
    got = fields("van der Berg, A., & De la Cruz, M. (2018). Title text. Journal, 12, e12345. 10.1002/cpp.1977")
    assert got["authors"] == ("van der Berg, A.", "De la Cruz, M.")
    assert got["doi"] == "10.1002/cpp.1977"
    assert got["pages"] == "e12345"


def test_apostrophe_hyphenated_initials_and_question_mark_title():
    got = fields("O’Brien, K. M., Smith, J.-P. & Müller, Ä. (2017). Why? A study. Clinical Psychology & Psychotherapy, 24(1), 48–60.")
    assert got["authors"] == ("O’Brien, K. M.", "Smith, J.-P.", "Müller, Ä.")
    assert got["title"] == "Why? A study"
    assert got["journal"] == "Clinical Psychology & Psychotherapy"


@pytest.mark.parametrize("text, bad", [
    ("Smith, J. (2020). Title. JAMA Psychiatry, 3, 1-2. doi: 10:1001/jamapsychiatry.2020.1", "10:1001/jamapsychiatry.2020.1"),
    ("Smith, J. (2020). Title. JAMA Psychiatry, 3, 1-2. https://doi.org/jamapsychiatry.2020.1", "jamapsychiatry.2020.1"),
    ("Smith, J. (2020). Title. JAMA Psychiatry, 3, 1-2. DOI: 10.1001", "10.1001"),
])
def test_malformed_doi_is_reported_not_fixed(text, bad):
    parsed = parse_citation(text)
    assert parsed.citation.doi is None
    assert parsed.citation.text == text
    assert len(parsed.problems) == 1
    assert f"malformed DOI '{bad}'" in parsed.problems[0]


def test_every_filled_doi_passes_the_loader_rule():
    for text in ("A, B. (2020). T. J, 1. https://dx.doi.org/10.1000/a(b)c).", "A, B. (2020). T. J, 1. doi:10.1000/x.y;"):
        doi = parse_citation(text).citation.doi
        assert doi is not None and DOI_RE.match(doi), doi
    assert parse_citation("A, B. (2020). T. J, 1. https://dx.doi.org/10.1000/a(b)c).").citation.doi == "10.1000/a(b)c"


# --- conservative: leave doubtful fields empty ----------------------------------------


def test_abbreviated_journal_leaves_title_and_journal_empty():
    got = fields("Smith, J. (2019). Mental health. J. Clin. Psychol., 75, 1-10.")
    assert "title" not in got and "journal" not in got
    assert got["year"] == 2019


def test_book_chapter_leaves_title_and_journal_empty():
    got = fields("Brown, T. (2015). Book chapter. In J. Smith (Ed.), Handbook (pp. 1–20). Publisher.")
    assert "title" not in got and "journal" not in got


def test_comma_in_journal_name_with_comma_title_is_not_guessed():
    got = fields("Smith, J. (2019). Stress in nurses, Brain, Behavior, and Immunity, 5, 1-9.")
    assert "journal" not in got


def test_unparseable_author_list_leaves_authors_empty():
    assert parse_authors("Smith, J., Jr., & Jones, K.") is None
    assert parse_authors("Smith J & Jones K") is None
    assert parse_authors("Rønnestad, M. H.") == ("Rønnestad, M. H.",)


def test_unusual_author_list_is_a_citation_without_authors():
    got = fields("Smith, J., Jr., Van Halen, E. P., & Jones, K. (2020). Unusual author list. Journal of Things, 1, 2.")
    assert "authors" not in got  # not every name parses: none are guessed
    assert got["year"] == 2020 and got["journal"] == "Journal of Things"


def test_a_summary_sentence_is_not_a_citation_and_gets_no_fields():
    sentence = "Moritz and colleagues (2019) found that adverse events happen. More text follows here."
    assert not looks_like_citation(sentence)
    assert fields(sentence) == {}


@pytest.mark.parametrize("line", [
    "The COVID-19 Telepsychology Revolution",
    "Practice Implications",
    "July 2021",
    "In this study (2019), Smith, J. and colleagues looked at 135 patients.",
    "Smith, J. wrote about this in 2019 and again (2020) with others.",
    "Smith, J. P. and colleagues (2020) found that the alliance matters. They asked 300 clients.",
    "Patients, i.e. those in the trial (2020). Then more.",
    "Patients (n = 135) reported at least one adverse event (52.5%).",
])
def test_non_citation_lines(line):
    assert not looks_like_citation(line)


@pytest.mark.parametrize("line", [
    "Chui, H., & Liu, F. (2021). Emotional experience of psychotherapists: A latent profile analysis. Psychotherapy, 58(3), 401–413.",
    "American Psychological Association. (2020). Publication manual of the American Psychological Association.",
    "Smith, J. (n.d.). A web page. https://example.org/",
    "Smith, J., Jr., Van Halen, E. P., & Jones, K. (2020). Unusual author list. Journal, 1, 2.",
])
def test_citation_lines(line):
    assert looks_like_citation(line)
