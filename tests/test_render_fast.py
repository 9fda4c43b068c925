"""render.py's fast paths (issue 15) against the plain code they replace, on random inputs.

check_footer's search of a finished page looks at the page's end first and decodes only an HTML
page's tail: it must answer what decoding and searching the whole page answers.  cite_html
escapes its pieces into one string rather than through Markup.format.  wrap does not split and
join a paragraph that is already single-spaced.  The Gmail size check encodes the HTML only when
it may be over the limit.
"""

from __future__ import annotations

import html
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from markupsafe import Markup, escape

from newsletter.content.model import Citation
from newsletter.mail.render import GMAIL_CLIP_BYTES, FooterSearch, RenderedEmail, _single_spaced, cite_html, contains_collapsed

# Pieces of pages that make character references start, end or fail near any cut: named ones with and
# without ';', numeric ones, a bare '&', tags, and whitespace that str.split and \s know.
_PIECES = st.sampled_from([
    "&amp;", "&amp", "&lt;", "&lt", "&#60;", "&#x3c;", "&#X3C", "&nbsp;", "&nbspx", "&#32;", "&#10;", "&#97;", "&ampx;",
    "&", "&&", "&#", "&#;", "&a<b;", "<", ">", "</p>", "<p>", ";", "#", "a", "b", "ab", "a b", " ", "\n", "\t", "\xa0", "\u2028",
])
_PAGES = st.lists(_PIECES, max_size=40).map("".join)
_WORDS = st.lists(st.text(alphabet="ab<&;#\xa0", min_size=1, max_size=4).filter(lambda word: not word.isspace()), max_size=3)


@settings(max_examples=1000, deadline=None)
@given(page=_PAGES, words=_WORDS, tail_chars=st.integers(0, 80))
def test_html_search_answers_what_decoding_the_whole_page_answers(page: str, words: list[str], tail_chars: int) -> None:
    needle = tuple(" ".join(words).split())
    expected = contains_collapsed(html.unescape(page), needle)
    assert FooterSearch(page, is_html=True, tail_chars=tail_chars).contains(needle) == expected


@settings(max_examples=500, deadline=None)
@given(page=_PAGES, words=_WORDS)
def test_text_search_answers_what_searching_from_the_start_answers(page: str, words: list[str]) -> None:
    needle = tuple(" ".join(words).split())
    assert FooterSearch(page, is_html=False).contains(needle) == contains_collapsed(page, needle)


def test_words_found_only_before_the_tail_are_found() -> None:
    """The fast path's miss falls back to the whole page: a footer far from the end still counts."""
    page = "<p>12 Example &amp; Street</p>" + "<p>filler</p>" * 1000
    search = FooterSearch(page, is_html=True, tail_chars=100)
    assert search.contains(("12", "Example", "&", "Street"))
    assert not search.contains(("12", "Example", "Street"))
    assert FooterSearch(page.replace("&amp;", "&"), is_html=False).contains(("12", "Example", "&", "Street"))


def test_a_reference_cut_by_the_tail_is_decoded_whole() -> None:
    """A cut inside '&amp;' would leave 'amp;' in the tail: the tail starts at a '<' instead."""
    page = "<p>A &amp; B</p>"
    for tail_chars in range(len(page) + 2):
        search = FooterSearch(page, is_html=True, tail_chars=tail_chars)
        assert search.contains(("A", "&", "B"))
        assert not search.contains(("amp;",))



def _cite_html_by_format(citation: Citation) -> Markup:
    """What cite_html wrote with Markup.format (before issue 15)."""
    text, link = citation.text, citation.link
    if not link:
        return escape(text)
    for shown in (link, citation.url, f"doi.org/{citation.doi}" if citation.doi else None, citation.doi):
        if shown and shown in text:
            before, _, after = text.partition(shown)
            return escape(before) + Markup('<a href="{}">{}</a>').format(link, shown) + escape(after)
    return escape(text) + Markup(' <a href="{}">{}</a>').format(link, link)


_CITATION_BITS = st.text(alphabet="ab1./:<>&\"' ", max_size=6)


@settings(max_examples=500, deadline=None)
@given(before=_CITATION_BITS, after=_CITATION_BITS, doi=st.none() | _CITATION_BITS, url=st.none() | _CITATION_BITS,
       shown=st.sampled_from(["", "doi", "url", "doi.org/doi", "https://doi.org/doi"]))
def test_cite_html_writes_what_markup_format_wrote(before: str, after: str, doi: str | None, url: str | None, shown: str) -> None:
    inside = {"": "", "doi": doi or "", "url": url or "", "doi.org/doi": f"doi.org/{doi}", "https://doi.org/doi": f"https://doi.org/{doi}"}[shown]
    citation = Citation(text=before + inside + after, doi=doi, url=url)
    written = cite_html(citation)
    assert isinstance(written, Markup)
    assert str(written) == str(_cite_html_by_format(citation))


def test_the_space_is_the_only_printable_whitespace() -> None:
    """What wrap's _single_spaced relies on, for every character of this Python's Unicode database."""
    printable_whitespace = [character for character in map(chr, range(sys.maxunicode + 1)) if character.isspace() and character.isprintable()]
    assert printable_whitespace == [" "]


@settings(max_examples=1000, deadline=None)
@given(text=st.lists(st.sampled_from(["a", "bc", " ", "  ", "\t", "\n", "\xa0", "\u3000", "\x1c", "\x1f", "\xad", "\u200b", "é"]), max_size=12).map("".join))
def test_single_spaced_text_is_what_splitting_and_joining_writes(text: str) -> None:
    assert _single_spaced(text) == (" ".join(text.split()) == text and text.isprintable())


@pytest.mark.parametrize(("html", "clipped"), [
    ("a" * 30_000, False),  # too long to skip counting, and under the limit
    ("a" * GMAIL_CLIP_BYTES, False),
    ("a" * (GMAIL_CLIP_BYTES + 1), True),
    ("€" * (GMAIL_CLIP_BYTES // 3 + 1), True),  # 3 bytes each
    ("😀" * (GMAIL_CLIP_BYTES // 4), False),  # 4 bytes each: exactly the limit, the most a page this long can take
    ("😀" * (GMAIL_CLIP_BYTES // 4 + 1), True),
])
def test_clipped_by_gmail_counts_utf8_bytes(html: str, clipped: bool) -> None:
    rendered = RenderedEmail("2026-10", "s", None, html, "t")
    assert rendered.clipped_by_gmail == clipped == (len(html.encode("utf-8")) > GMAIL_CLIP_BYTES)
    assert rendered.html_bytes == len(html.encode("utf-8")) and rendered.html_utf8 == html.encode("utf-8")
