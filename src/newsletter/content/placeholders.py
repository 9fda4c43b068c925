"""The placeholder texts of the issue scaffold, and how to spot them left in an issue.

``scaffold`` writes these texts into a new issue file and ``load`` reports any field still
identical to one of them (whitespace and case aside), so an untouched draft cannot reach readers.
One definition serves both, so the scaffold and the check can never drift apart.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

INTRO = "I blog about ..."
TITLE = "Title of the first article"
CITATION = "Surname, A., & Other, B. ({year}). Title of the paper. Journal, 1(2), 3–4. https://doi.org/{doi}"
DOI = "10.1000/xyz123"  # the DOI Handbook's example DOI
SUMMARY = "What the study asked, how, and what it found.  Blank lines\nseparate paragraphs."
IMPLICATIONS = "What a clinician might do differently on Monday."

Key = tuple[Any, ...]


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


# The citation's year is the issue's, so it is matched with any four digits there.
_CITATION_RE = re.compile(
    re.escape(_fold(CITATION)).replace(re.escape("{year}"), r"\d{4}").replace(re.escape("{doi}"), re.escape(DOI))
)
_ARTICLE_TEXTS = {"title": _fold(TITLE), "summary": _fold(SUMMARY), "practice_implications": _fold(IMPLICATIONS)}


_INTRO_TEXT = _fold(INTRO)
# The first word of each placeholder, folded: a field starting with another word (every real
# summary) is told apart without folding all of it (a tenth of checking an issue, issue 15).
_FIRST_WORDS = {
    "intro": _INTRO_TEXT.split(" ", 1)[0],
    "text": _fold(CITATION).split(" ", 1)[0],
    **{field: text.split(" ", 1)[0] for field, text in _ARTICLE_TEXTS.items()},
}


def _first_word(text: str) -> str:
    """The first word of ``text`` as ``_fold`` would write it ("" for blank text)."""
    words = text.split(None, 1)
    return words[0].casefold() if words else ""


def _is_placeholder(field: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if field == "doi":
        return DOI in value.casefold()  # the DOI has no space: folding the spaces cannot make or break it
    if field == "text":
        if DOI in value.casefold():
            return True
        return _first_word(value) == _FIRST_WORDS["text"] and bool(_CITATION_RE.fullmatch(_fold(value)))
    first = _FIRST_WORDS.get(field)
    if first is None or _first_word(value) != first:
        return False
    return _fold(value) == (_INTRO_TEXT if field == "intro" else _ARTICLE_TEXTS[field])


def find_placeholders(data: Any) -> Iterator[tuple[Key, str]]:
    """Each field of parsed issue data still holding scaffold text: (its key path, the text)."""
    if not isinstance(data, dict):
        return
    if _is_placeholder("intro", data.get("intro")):
        yield ("intro",), str(data["intro"])
    articles = data.get("articles")
    if not isinstance(articles, list):
        return
    for i, article in enumerate(articles):
        if not isinstance(article, dict):
            continue
        for field in ("title", "summary", "practice_implications"):
            if _is_placeholder(field, article.get(field)):
                yield ("articles", i, field), str(article[field])
        citation = article.get("citation")
        if isinstance(citation, str):
            citation = {"text": citation}
            where: Key = ("articles", i, "citation")
        else:
            where = ("articles", i, "citation", "text")
        if isinstance(citation, dict):
            if _is_placeholder("text", citation.get("text")):
                yield where, str(citation["text"])
            elif _is_placeholder("doi", citation.get("doi")):
                yield ("articles", i, "citation", "doi"), str(citation["doi"])


def placeholder_message(text: str) -> str:
    """What to tell the author about one placeholder left in the issue."""
    shown = " ".join(text.split())
    if len(shown) > 50:
        shown = shown[:47] + "..."
    return f"'{shown}' is placeholder text from `newsletter new`; replace it with your own before sending"
