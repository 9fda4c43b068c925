"""The inliner's one-walk rule matching (mail/inline.py, issue 15) against plain premailer.

tests/test_render.py compares the inliner with premailer on the example issues and on random
documents; these add what the one walk of the tree relies on: a stylesheet's worked-out steps
reused on the next document, subtrees of descendant selectors that end together, at a comment
or at the end of the document, non-ASCII text and values (serialised straight to str, set as
bytes when ASCII), and the tables being emptied when full.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_TAGS = ("div", "p", "a", "span", "td", "img", "table")
_NAMES = ("a", "b", "c-d")
_TEXTS = ("x", "é — ü", "&amp; &lt;", "")
_STYLES = ("color: red", "width:10px;float:left", "float: right", "margin:0;text-align:center", "font-family: Café")


@st.composite
def _element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(_TAGS))
    attributes = ""
    classes = draw(st.lists(st.sampled_from(_NAMES), max_size=2))
    if classes:
        attributes += ' class="%s"' % " ".join(classes)
    if draw(st.booleans()):
        attributes += ' id="%s"' % draw(st.sampled_from(_NAMES))
    if draw(st.booleans()):
        attributes += ' style="%s"' % draw(st.sampled_from(_STYLES))
    children = [] if depth >= 4 else draw(st.lists(_element(depth + 1), max_size=3))
    text = draw(st.sampled_from(_TEXTS))
    # comments between children: the walk must find the element after a subtree past them
    between = draw(st.sampled_from(["", "<!-- c -->", "<!--[if mso]><p>m</p><![endif]-->"]))
    return f"<{tag}{attributes}>{text}{between.join(children)}{between}</{tag}>"


_compound = st.builds(
    lambda tag, parts: (tag + "".join(parts)) or "*",
    st.sampled_from(["", "", *_TAGS]),
    st.lists(st.builds(lambda kind, name: kind + name, st.sampled_from([".", "#"]), st.sampled_from(_NAMES)), max_size=2),
)
_selector = st.one_of(
    st.lists(_compound, min_size=1, max_size=4).map(" ".join),
    st.sampled_from(["a:hover", "div > p", ".a + .b", "[id]", "td:first-child"]),
)
_rules = st.lists(
    st.tuples(_selector, st.sampled_from(["color:blue", "width:20px", "font-family:Ünï", "float:right", "color:unset", "background-color:#abc"])),
    min_size=1, max_size=8,
)


def _page(css: str, body: str) -> str:
    return f"<html><head><title>t</title><style>{css}</style></head><body>{body}</body></html>"


def _premailers(html: str) -> str:
    import premailer

    from newsletter.mail.inline import PREMAILER_OPTIONS

    return premailer.Premailer(html, **PREMAILER_OPTIONS).transform()


@settings(max_examples=120, deadline=None)
@given(bodies=st.lists(st.lists(_element(), min_size=1, max_size=4).map("".join), min_size=2, max_size=3), rules=_rules)
def test_one_walk_inlines_what_premailer_inlines_document_after_document(bodies: list[str], rules: list[tuple[str, str]]) -> None:
    """Several documents with one stylesheet (its steps worked out on the first, reused on the
    others): each the same text as premailer's."""
    from newsletter.mail.inline import inline_css

    css = " ".join(f"{selector} {{ {style} }}" for selector, style in rules)
    for body in bodies:
        html = _page(css, body)
        assert inline_css(html) == _premailers(html)


NESTED = """<div class="a"><div class="b"><p>one<a href="#">in both</a></p></div></div><a href="#">after both</a>
<div class="a"><p><span class="b"><a href="#">last</a></span></p></div>"""


@pytest.mark.parametrize("css", [".a .b a { color: blue } .a a { width: 20px }", ".a a { color: red } .b a { color: green } a { margin: 0 }"])
def test_descendant_rules_end_with_their_subtrees(css: str) -> None:
    """Subtrees that end at the same element, and one that ends with the document: the links
    after them get only what applies there."""
    from newsletter.mail.inline import inline_css

    html = _page(css, NESTED)
    expected = _premailers(html)
    assert expected.count("color:blue") + expected.count("color:green") >= 1  # the case is exercised
    assert inline_css(html) == expected


def test_tables_emptied_when_full_still_inline_premailers_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for a couple of steps only, the walk starts afresh between documents and works
    every step out again: still premailer's output."""
    from newsletter.mail import inline

    monkeypatch.setattr(inline, "_CACHE_SIZE", 2)
    html = _page(".a .b a { color: blue } td { width: 10px } #b { color: red }", NESTED + '<table><tr><td id="b">c</td></tr></table>')
    expected = _premailers(html)
    for _ in range(3):
        assert inline.inline_css(html) == expected


def test_a_walk_interrupted_while_it_numbers_a_new_state_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview server inlines in threads, and two walks of one stylesheet share its tables.
    Another thread's walk that runs while this one registers a state it met first (here: inside
    the ``len`` of the table of states, where a thread switch can fall) must not make this one's
    children start from the other's state.  Found by review: before, the state numbered
    len(states) was stored, the other walk appended its own state at that number, and the
    links inside <div class="a"> got nothing (the other document's rule matched instead)."""
    from newsletter.mail import inline

    css = ".race-a .x { color: red } .race-b .y { color: blue }"
    first = _page(css, '<div class="race-a"><p class="x y">in a</p></div>')
    second = _page(css, '<div class="race-b"><p class="y">in b</p></div>')
    expected = _premailers(first), _premailers(second)
    assert "color:red" in expected[0]
    interrupted: list[str] = []
    real_len = len

    def len_with_a_thread_switch(obj: object) -> int:
        n = real_len(obj)  # type: ignore[arg-type]
        if not interrupted and isinstance(obj, list) and obj and isinstance(obj[0], frozenset):
            interrupted.append("")
            interrupted[0] = inline.inline_css(second)  # the other thread runs here
        return n

    monkeypatch.setattr(inline, "len", len_with_a_thread_switch, raising=False)
    assert inline.inline_css(first) == expected[0]
    assert interrupted in ([], [expected[1]])  # (after the change: no such window, never interrupted)
    assert inline.inline_css(second) == expected[1]
