"""Rendering: golden output of a fixed issue, escaping, the phone @media rules, user templates."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.content.config import load_config
from newsletter.errors import TemplateError
from newsletter.content.load import load_issue
from newsletter.mail.render import Personal, Renderer, wrap

DATA = Path(__file__).parent / "data" / "golden"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NEWSLETTER_UPDATE_GOLDEN") == "1"


@pytest.fixture
def golden_folder(tmp_path: Path) -> Path:
    target = tmp_path / "golden"
    shutil.copytree(DATA, target)
    return target


def render(folder: Path, personal: Personal | None = None):
    config = load_config(folder)
    issue = load_issue(folder / "issues" / "2021-07.yaml", config, folder).issue
    return Renderer(folder, config).render(issue, personal)


def compare_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), f"{name} changed; rerun with NEWSLETTER_UPDATE_GOLDEN=1 if intended"


def test_golden_text(golden_folder: Path) -> None:
    compare_golden("2021-07.txt", render(golden_folder).text)


def test_golden_html(golden_folder: Path) -> None:
    compare_golden("2021-07.html", render(golden_folder).html)


def test_text_lines_fit_72_columns_except_urls(golden_folder: Path) -> None:
    for line in render(golden_folder).text.splitlines():
        assert len(line) <= 72 or re.search(r"https?://\S{40,}", line), line


def test_text_has_every_part_in_order(golden_folder: Path) -> None:
    text = render(golden_folder).text
    parts = [
        "GOLDEN NOTES", "July 2021", "THIS MONTH...", "…I blog about", "1. The Emotionally Burdened Psychotherapist",
        "Nissen-Lie, H. A., Orlinsky", "Practice Implications", "2. The COVID-19 Telepsychology Revolution",
        "unsubscribe [", "1 Golden Road", "Links", "https://doi.org/10.1037/pro0000387",
        "https://golden.example.org/archive/2021-07/", "https://golden.example.org/unsubscribe",
    ]
    positions = [text.index(p) for p in parts]
    assert positions == sorted(positions)


def test_user_text_is_escaped_in_html(golden_folder: Path) -> None:
    html = render(golden_folder).html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html or "&lt;script&gt;alert(\"x\")&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html
    assert "Rønnestad &amp; &lt;friends&gt;" in html


def test_phone_media_rules_keep_important(golden_folder: Path) -> None:
    html = render(golden_folder).html
    head = html[: html.index("</head>")]
    media = re.findall(r"@media[^{]*max-width:\s*480px\)\s*\{(.*?)\}\s*\}", head, re.S)
    assert media, "the phone @media block must stay in <head>"
    assert re.search(r"\.article-title\s*\{\s*font-size:\s*20px\s*!important", media[0])
    # and the inlined desktop size is on the element itself
    assert re.search(r'<h2 class="article-title"[^>]*style="[^"]*font-size:\s*24px', html)


def test_caching_inliner_writes_what_premailer_writes(folder: Path) -> None:
    import premailer

    from newsletter.mail.inline import PREMAILER_OPTIONS, inline_css

    config = load_config(folder)
    renderer = Renderer(folder, config)
    for month in ("2026-10", "2026-11"):
        issue = load_issue(folder / "issues" / f"{month}.yaml", config, folder).issue
        html = renderer._compile_mjml(renderer._render_template("email.mjml.j2", {
            "issue": issue, "config": config, "subject": "s", "preheader": issue.preheader, "greeting": None,
            "unsubscribe_url": "https://example.org/u", "unsubscribe_email": None, "view_url": "https://example.org/v",
        }))
        expected = premailer.Premailer(html, **PREMAILER_OPTIONS).transform()
        for _ in range(3):  # the first call fills the cache, the others read it
            assert inline_css(html) == expected
    # a different stylesheet is not answered from the cache
    other = html.replace("<style", "<style>p { color: #123456 }</style><style", 1)
    assert "color:#123456" in inline_css(other).replace(" ", "")


EDGE_CASES_HTML = """<html><body>
<style>p { color: red; margin: 0 } a:hover { color: blue } li:first-child { font-weight: bold }
.x { width: 20px; background-color: #abc; text-align: center; vertical-align: top }
td { color: unset } .big { font-size: 20px !important } * { border: 0 }
@media (max-width: 480px) { .x { width: 10px } }</style>
<style media="print">p { color: green }</style>
<style data-premailer="ignore">p { color: purple }</style>
<p class="x big" style="color: black; font-size: 12px">one</p><a href="#" class="x">link</a>
<ul><li>first</li><li style="color:#FFF;">second</li></ul><table><tr><td style="COLOR: Red">c</td></tr></table>
<img src="a.png" style="float: right; width: 30px"><img src="b.png" style="float:left !important">
<img src="c.png" style="FLOAT: right"></body></html>"""


@pytest.mark.parametrize("case", ["edge", "no doctype", "head"])
def test_caching_inliner_matches_premailer_on_edge_cases(case: str) -> None:
    """Pseudo-classes, filter selectors, media rules, unset, !important, print and ignored
    style blocks, floats and a missing <head>: the same bytes as premailer."""
    import premailer

    from newsletter.mail.inline import PREMAILER_OPTIONS, inline_css

    html = {"edge": "<!doctype html>\n" + EDGE_CASES_HTML, "no doctype": EDGE_CASES_HTML,
            "head": EDGE_CASES_HTML.replace("<body>", "<head><title>t</title></head><body>")}[case]
    expected = premailer.Premailer(html, **PREMAILER_OPTIONS).transform()
    assert 'align="right"' in expected and "color:blue" in expected  # the cases are exercised
    for _ in range(2):
        assert inline_css(html) == expected


_TAGS = ("div", "p", "a", "span", "td", "img", "h2")
_NAMES = ("a", "b", "c-d", "_e")


@st.composite
def _element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(_TAGS))
    attributes = ""
    classes = draw(st.lists(st.sampled_from(_NAMES), max_size=3))
    if classes:
        attributes += ' class="%s"' % draw(st.sampled_from(["\t", " ", "  ", "\n"])).join(classes)
    if draw(st.booleans()):
        attributes += ' id="%s"' % draw(st.sampled_from(_NAMES))
    if draw(st.booleans()):
        attributes += ' style="%s"' % draw(st.sampled_from(["color: red", "width:10px;float:left", "margin:0;text-align:center"]))
    children = "" if depth >= 3 else "".join(draw(st.lists(_element(depth + 1), max_size=3)))
    return f"<{tag}{attributes}>x{children}</{tag}>"


_compound = st.builds(
    lambda tag, parts: (tag + "".join(parts)) or "*",
    st.sampled_from(["", "", *_TAGS, "P"]),
    st.lists(st.builds(lambda kind, name: kind + name, st.sampled_from([".", "#"]), st.sampled_from(_NAMES)), max_size=2),
)
_selector = st.one_of(
    st.lists(_compound, min_size=1, max_size=3).map(" ".join),
    st.sampled_from(["a:hover", "p:first-child", "div > p", ".a + .b", "[id]", ".b:last-child", "div  .a"]),
)


@settings(max_examples=150, deadline=None)
@given(body=st.lists(_element(), min_size=1, max_size=4),
       rules=st.lists(st.tuples(_selector, st.sampled_from(["color:blue", "width:20px", "background-color:#abc", "vertical-align:top", "color:unset"])),
                      min_size=1, max_size=6))
def test_inliner_selector_matching_is_cssselects(body: list[str], rules: list[tuple[str, str]]) -> None:
    """The inliner's own matching of tag, #id, .class and descendant selectors (issue 15) inlines
    what premailer's cssselect XPath queries inline, on random documents and stylesheets."""
    import premailer

    from newsletter.mail.inline import PREMAILER_OPTIONS, inline_css

    css = " ".join(f"{selector} {{ {style} }}" for selector, style in rules)
    html = f"<html><head><style>{css}</style></head><body>{''.join(body)}</body></html>"
    expected = premailer.Premailer(html, **PREMAILER_OPTIONS).transform()
    assert inline_css(html) == expected


def test_the_inliners_copies_of_premailers_constants_and_defaults_are_premailers() -> None:
    """The steps written out in mail/inline.py rely on these; a premailer upgrade that changes
    one must fail here, not change the email silently."""
    import premailer

    from newsletter.mail import inline

    assert inline._FILTER_PSEUDOSELECTORS == premailer.premailer.FILTER_PSEUDOSELECTORS
    assert inline._ATTRIBUTE_NAME == premailer.Premailer.attribute_name
    assert inline.PREMAILER_OPTIONS["cssutils_logging_level"] == __import__("logging").CRITICAL
    steps = premailer.Premailer("", **inline.PREMAILER_OPTIONS)
    assert (steps.method, steps.align_floating_images, steps.remove_unset_properties, steps.disable_basic_attributes,
            steps.exclude_pseudoclasses, steps.include_star_selectors) == ("html", True, True, [], True, False)


def test_html_has_doctype_and_no_remote_fonts(golden_folder: Path) -> None:
    html = render(golden_folder).html
    assert html.lower().startswith("<!doctype html>")
    assert "fonts.googleapis.com" not in html


def test_personal_parts_are_used(golden_folder: Path) -> None:
    rendered = render(golden_folder, Personal(greeting="Dear Ada,", unsubscribe_url="https://golden.example.org/u/TOKEN"))
    assert "Dear Ada," in rendered.text and "Dear Ada," in rendered.html
    assert "https://golden.example.org/u/TOKEN" in rendered.text
    assert 'href="https://golden.example.org/u/TOKEN"' in rendered.html


# the least a text template must carry: the unsubscribe link and the postal address (render checks)
FOOTER_TEXT = "BODY\n{{ unsubscribe_url }}\n{{ config.postal_address }}\n"


def test_user_template_overrides_one_file(golden_folder: Path) -> None:
    (golden_folder / "templates").mkdir()
    (golden_folder / "templates" / "email.txt.j2").write_text(FOOTER_TEXT.replace("BODY", "Custom {{ issue.month_name }}"), encoding="utf-8")
    rendered = render(golden_folder)
    assert rendered.text.startswith("Custom July 2021\n")
    assert "The Emotionally Burdened Psychotherapist" in rendered.html  # the HTML template is still the packaged one


def test_template_typo_names_template_and_line(golden_folder: Path) -> None:
    (golden_folder / "templates").mkdir()
    (golden_folder / "templates" / "email.txt.j2").write_text("line one\n{{ issue.mnth }}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        render(golden_folder)
    assert info.value.path is not None and info.value.path.endswith("templates/email.txt.j2")
    assert info.value.line == 2
    assert "mnth" in info.value.message


def test_template_syntax_error_names_line(golden_folder: Path) -> None:
    (golden_folder / "templates").mkdir()
    (golden_folder / "templates" / "email.txt.j2").write_text("ok\n{% if %}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        render(golden_folder)
    assert str(info.value).startswith(str(golden_folder / "templates" / "email.txt.j2") + ":2: template syntax error")


@given(
    text=st.lists(st.sampled_from(["a", "bb", "ccccc", "x" * 30, " ", "  ", "\t", "\n", "\u3000", "\x1c", "-", "é"]), max_size=40).map("".join),
    width=st.integers(min_value=1, max_value=40),
    indent=st.sampled_from(["", "  ", "    ", "- "]),
    first=st.sampled_from([None, "", "* ", "[1] ", "x" * 12]),
)
@settings(max_examples=400, deadline=None)
def test_wrap_is_textwrap_fill(text: str, width: int, indent: str, first: str | None) -> None:
    """The hand-written wrap writes what textwrap.fill writes for prose with its spaces normalised."""
    import textwrap

    expected_first = indent if first is None else first
    try:
        expected = textwrap.fill(" ".join(text.split()), width=width, initial_indent=expected_first, subsequent_indent=indent,
                                 break_long_words=False, break_on_hyphens=False)
    except ValueError:
        with pytest.raises(ValueError):
            wrap(text, width, indent, first)
        return
    assert wrap(text, width, indent, first) == expected


def test_wrap_keeps_urls_whole() -> None:
    url = "https://doi.org/10.1037/" + "x" * 80
    wrapped = wrap(f"see {url} now")
    assert url in wrapped.splitlines()


def test_citation_link_inside_text_becomes_a_link() -> None:
    from newsletter.content.model import Citation
    from newsletter.mail.render import cite_html

    inside = Citation(text="A & B (2021). <T>. J, 1. https://doi.org/10.1/x", doi="10.1/x")
    assert str(cite_html(inside)) == 'A &amp; B (2021). &lt;T&gt;. J, 1. <a href="https://doi.org/10.1/x">https://doi.org/10.1/x</a>'
    bare = Citation(text="A (2013). T, DOI: 10.1080/1050", doi="10.1080/1050")
    assert str(cite_html(bare)) == 'A (2013). T, DOI: <a href="https://doi.org/10.1080/1050">10.1080/1050</a>'
    absent = Citation(text="A (2020). T.", url="https://example.org/a?b=1&c=2")
    assert str(cite_html(absent)) == 'A (2020). T. <a href="https://example.org/a?b=1&amp;c=2">https://example.org/a?b=1&amp;c=2</a>'


@pytest.mark.parametrize(
    ("template", "replace", "missing"),
    [
        ("email.txt.j2", "{{ config.postal_address }}", "the rendered plain-text part has no postal address"),
        ("email.mjml.j2", '<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "the rendered HTML part has no unsubscribe link"),
    ],
)
def test_an_email_without_its_footer_is_refused(golden_folder: Path, template: str, replace: str, missing: str) -> None:
    """Issue 10 item 8: whatever the content or templates, both parts carry the unsubscribe link and postal address."""
    packaged = Path(__file__).resolve().parent.parent / "src" / "newsletter" / "templates" / template
    text = packaged.read_text(encoding="utf-8")
    assert replace in text
    (golden_folder / "templates").mkdir()
    (golden_folder / "templates" / template).write_text(text.replace(replace, ""), encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        render(golden_folder)
    assert str(info.value).startswith(f"templates: {missing}")


def test_an_oversized_field_is_refused_by_check(golden_folder: Path) -> None:
    """Issue 10 item 8: a 10 MB field made premailer/lxml silently cut the HTML, footer and unsubscribe link included."""
    from newsletter.content.load import check_issue

    path = golden_folder / "issues" / "2021-07.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("    summary: ")
    path.write_text(text[:start] + "    summary: " + "word " * 12_000 + "\n" + text[text.index("\n", start) + 1:], encoding="utf-8")
    problems = [str(p) for p in check_issue(path, load_config(golden_folder), golden_folder).errors]
    (problem,) = problems
    assert re.fullmatch(
        r"issues/2021-07\.yaml:\d+:14: error: 'summary' is 6\d,\d{3} characters long; the limit is 50,000 "
        r"\(an email over 102 KB is clipped by Gmail, hiding the footer and the unsubscribe link\)",
        problem,
    ), problem


_FOOTERISH = st.text(alphabet=st.sampled_from("ab.:/ \t\n\r\x0b\x1c\x85\xa0\u2028*+?()[]\\"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(text=_FOOTERISH, needle=_FOOTERISH)
def test_contains_collapsed_is_a_search_of_the_collapsed_text(text: str, needle: str) -> None:
    """check_footer's search (issue 15) answers what collapsing both sides' whitespace and
    searching did, for any whitespace str.split knows and any regex-special character."""
    from newsletter.mail.render import contains_collapsed

    expected = " ".join(needle.split()) in " ".join(text.split())
    assert contains_collapsed(text, needle.split()) == expected
    assert contains_collapsed(f"x {needle} y", needle.split())
