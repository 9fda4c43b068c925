"""YAML as authors and attackers write it: aliases, deep nesting, YAML 1.1 retyping, errors in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.content.config import check_config
from newsletter.content.load import check_issue
from newsletter.content.yamlsource import parse_yaml
from newsletter.errors import NewsletterError
from newsletter.content.config import load_config

ARTICLE = """\
  - title: {title}
    topics: [Empathy]
    summary: |
      First paragraph of the summary.

      Second paragraph.
    practice_implications: Do this.
"""


def issue_text(*titles: str) -> str:
    return "month: 2021-07\nintro: Hello.\narticles:\n" + "".join(ARTICLE.format(title=t) for t in titles)


def problems_of(folder: Path, text: str) -> list[str]:
    path = folder / "issues" / "2021-07.yaml"
    path.write_text(text, encoding="utf-8")
    return [str(p) for p in check_issue(path, load_config(folder), folder).problems]


def error_of(text: str) -> str:
    with pytest.raises(NewsletterError) as info:
        parse_yaml(text, "f.yaml")
    return str(info.value)


def alias_bomb(levels: int) -> str:
    names = "abcdefghijklmnop"
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"{names[i]}: &{names[i]} [" + ",".join([f"*{names[i - 1]}"] * 9) + "]\n"
    return text


def test_aliases_are_refused_at_the_line_that_uses_them() -> None:
    assert error_of("title: &t Hello\nsubject: *t\n").startswith(
        "f.yaml:2:1: an alias (*name) repeats the value from line 1; aliases are not allowed in newsletter files"
    )
    assert error_of("a: &x {c: 1}\nb:\n  <<: *x\n").startswith("f.yaml:3:3: an alias (*name)")


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    # nine levels: 387 million strings (6.7 GB, past 120 s) before the fix
    assert error_of(alias_bomb(9)).startswith("f.yaml:2:4: an alias (*name) repeats the value from line 1")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: " + "[" * 1000 + "]" * 1000 + "\n", "f.yaml:1:35:"),
        ("a: " + "[" * 1000 + "]" * 999 + "\n", "f.yaml:1:35:"),
        ("".join("  " * i + "- \n" for i in range(1000)), "f.yaml:33:65:"),
        ("".join("  " * i + "-\n" for i in range(500)) + "x: [\n", "f.yaml:33:65:"),
    ],
)
def test_deep_nesting_is_refused_with_its_line(text: str, where: str) -> None:
    assert error_of(text).startswith(f"{where} the YAML nests more than 32 levels deep here; a newsletter file needs a handful")


def test_text_fields_keep_what_the_author_typed(folder: Path) -> None:
    text = issue_text("No").replace("First paragraph of the summary.\n\n      Second paragraph.", "x").replace(
        "    summary: |\n      x\n", "    summary: yes\n"
    ).replace("    topics: [Empathy]\n", "    topics: [Empathy]\n    citation:\n      text: Doe, J. (2020). On.\n      volume: 010\n      pages: 1.10\n")
    path = folder / "issues" / "2021-07.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = check_issue(path, load_config(folder), folder)
    assert [str(p) for p in loaded.errors] == []
    (article,) = loaded.issue.articles
    assert (article.title, article.summary) == ("No", "yes")
    assert (article.citation.volume, article.citation.pages) == ("010", "1.10")


def test_config_text_keeps_what_was_typed(folder: Path) -> None:
    config = folder / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("name: Practice Research Notes\n", "name: Yes\n", 1), encoding="utf-8")
    loaded, problems = check_config(folder, {})
    assert [p for p in problems if p.is_error] == [] and loaded.name == "Yes"


def test_a_tab_is_named_in_plain_words(folder: Path) -> None:
    text = issue_text("One").replace("    topics: [Empathy]", "\ttopics: [Empathy]")
    assert problems_of(folder, text)[0] == (
        "issues/2021-07.yaml:5:1: error: tabs are not allowed for indentation; use spaces "
        "(replace the tab at the start of this line with spaces (most editors have a 'convert tabs to spaces' setting))"
    )


def test_an_under_indented_paragraph_is_reported_where_it_was_written(folder: Path) -> None:
    # issue 14: a paragraph indented too little at line 28 was reported at 32:5
    text = issue_text("One").replace(
        "      Second paragraph.\n",
        "    A second paragraph written\n    one level too far left,\n    over several lines\n    until it ends.\n",
    )
    assert problems_of(folder, text) == [
        "issues/2021-07.yaml:9:5: error: this line is indented less than the text above it, so it is not part of that text, "
        "and it is not a 'field: value' line either (indent it as far as the text above (a blank line between paragraphs is fine), "
        "or add the missing ':' after the field name)"
    ]


def test_block_end_becomes_a_sentence_about_indentation() -> None:
    text = "articles:\n  - title: x\n   summary: y\n"
    assert error_of(text) == (
        "f.yaml:3:4: wrong indentation: this line starts at column 4, but the list items it belongs with start at column 3 (line 2)"
        "\n  hint: line it up with them at column 3, or, if it continues the text above, indent it as far as that text"
    )
    text = "articles:\n  - title: x\n    summary: >\n      One.\n     Two.\n"
    assert error_of(text).startswith(
        "f.yaml:5:6: wrong indentation: this line starts at column 6, but the fields it belongs with start at column 5 (line 2)"
    )


def test_a_colon_in_text_says_to_quote() -> None:
    assert error_of("intro: Note: this\n").startswith("f.yaml:1:12: a ': ' here would start a new field in the middle of a value")


def test_a_yaml_error_does_not_hide_the_other_problems(folder: Path) -> None:
    text = issue_text("One", "Two").replace("    topics: [Empathy]", "\ttopics: [Empathy]", 1)
    text = text.replace("  - title: Two\n    topics: [Empathy]", "  - title: Two\n    topics: [Empaty]\n    colour: blue")
    assert problems_of(folder, text) == [
        "issues/2021-07.yaml:5:1: error: tabs are not allowed for indentation; use spaces "
        "(replace the tab at the start of this line with spaces (most editors have a 'convert tabs to spaces' setting))",
        "issues/2021-07.yaml:12:14: error: unknown topic 'Empaty'; did you mean 'Empathy'?",
        "issues/2021-07.yaml:13:5: error: unknown field 'colour' in article 2; allowed: title, citation, topics, research_type, summary, practice_implications",
    ]


def test_a_utf16_issue_file_says_save_as_utf8(folder: Path) -> None:
    path = folder / "issues" / "2021-07.yaml"
    path.write_bytes(issue_text("One").encode("utf-16"))
    (message,) = [str(p) for p in check_issue(path, load_config(folder), folder).problems]
    assert message.startswith("issues/2021-07.yaml:1: error: the file is UTF-16 text: save it as UTF-8")


def test_an_invisible_character_is_named_at_its_line() -> None:
    """Found by tests/test_fuzz.py: a NUL made PyYAML's reader raise before any line was known (a traceback)."""
    assert error_of("month: 2021-07\nintro: a\x00b\n") == (
        "f.yaml:2:9: an invisible character (\\x00) that YAML does not allow"
        "\n  hint: delete it; it is invisible in most editors (a stray NUL or form feed from a copy and paste)"
    )


def test_a_yaml_error_in_the_config_does_not_hide_its_other_problems(folder: Path) -> None:
    path = folder / "newsletter.yaml"
    text = path.read_text(encoding="utf-8").replace("reply_to: editor@example.org\n", "reply_to: editor@example\n\tname2: x\n", 1)
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("reply_to: editor@example") + 1
    _, problems = check_config(folder, {})
    assert [str(p) for p in problems] == [
        f"newsletter.yaml:{line}:11: error: 'editor@example' is not a valid email address",
        f"newsletter.yaml:{line + 1}:1: error: tabs are not allowed for indentation; use spaces",
    ]


_SCALARS = st.one_of(
    st.text(max_size=12), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
    st.sampled_from(["No", "yes", "~", "010", "0x1F", "1_000", "2026-10-01", "2026-10-01 12:00:00", "1e3", ".inf", "=", "<<", "12:30"]),
)
_DATA = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["No", "010", "~", "2026-10-01"])), inner, max_size=4),
), max_leaves=20)
_TAGGED = st.sampled_from([
    "a: !!int '12'\nb: !!float 1\nc: !!bool 'yes'\n", "a: !!binary aGk=\n", "!!set {a, b}\n", "!!omap [a: 1, b: 2]\n",
    "a: &x {b: 1}\nc:\n  <<: {d: 2}\n", "? [a]\n: 1\n", "1: one\n2: two\n", "a: !custom x\n", "a: !!int abc\n", "- !!str 1\n- !!null ''\n",
    "{yes: 1, ~: 2}\n", "= : value\n",
])


@settings(max_examples=300, deadline=None)
@given(data=_DATA, flow=st.booleans(), tagged=st.one_of(st.none(), _TAGGED))
def test_parsed_data_is_what_pyyaml_constructs(data: object, flow: bool, tagged: str | None) -> None:
    """parse_yaml builds the data in its own walk of the node tree (issue 15): the same values,
    of the same types, as PyYAML's constructor, or the same error."""
    import yaml

    from newsletter.content.yamlsource import _Constructor

    text = tagged if tagged is not None else yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)

    def typed(value: object) -> object:
        if isinstance(value, dict):
            return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
        if isinstance(value, list):
            return ("list", [typed(v) for v in value])
        return (type(value).__name__, repr(value))

    try:
        expected: object = typed(_Constructor().construct_document(yaml.CSafeLoader(text).get_single_node()))
    except Exception as exc:  # the same failure, as parse_yaml words it
        expected = type(exc)
    try:
        got: object = typed(parse_yaml(text, "f.yaml").data)
    except NewsletterError:
        got = "error"
    if isinstance(expected, type):
        assert got == "error" or "&x" in text  # aliases are refused before construction
    else:
        assert got == expected


def test_an_unreadable_tagged_value_is_named_at_its_line() -> None:
    """An explicit tag whose text cannot be that type (``!!int abc``) is refused at its own line."""

    with pytest.raises(NewsletterError) as caught:
        parse_yaml("title: x\nmonth: 2026-01\ncount: !!int abc\n", "issues/2026-01.yaml")
    assert str(caught.value).splitlines()[0] == "issues/2026-01.yaml:3: a value cannot be read: invalid literal for int() with base 10: 'abc'"


@pytest.mark.parametrize("text", ["title: x\nflag: !!bool maybe\n", "!!bool maybe\n", "a: [!!bool maybe]\n", "? !!bool maybe\n: 1\n"])
def test_a_bool_tag_on_a_word_that_is_no_boolean_is_refused_not_a_traceback(text: str) -> None:
    """``!!bool maybe``: PyYAML's constructor raises a bare KeyError (its table of booleans has no
    'maybe'), which escaped parse_yaml as a traceback from ``newsletter check``."""

    with pytest.raises(NewsletterError) as caught:
        parse_yaml(text, "issues/2026-01.yaml")
    assert "a value cannot be read" in str(caught.value)


@pytest.mark.parametrize(("name", "value"), [("1", 1), ("null", None), ("true", True), ("3.5", 3.5)])
def test_a_key_yaml_reads_as_no_text_is_placed_at_its_own_line(name: str, value: object) -> None:
    """``1: x`` on line 2 of an issue: `newsletter check` reported the unknown field at line 1,
    column 1 (the key's position was recorded under the text '1'; the checks look up the key
    PyYAML made, 1)."""

    src = parse_yaml(f"month: 2026-12\n{name}: x\n", "issues/2026-12.yaml")
    assert value in src.data
    assert src.key_where(value) == (2, 1)


# Scalars near the YAML 1.1 rules: numbers, dates, booleans, nulls, and text that starts like them.
_SCALAR_TEXT = st.one_of(
    st.text(alphabet="0123456789+-._:eExXobBaAfF ~TtRrUuNnLlYySsOoZ\t/", max_size=12),
    st.text(max_size=8),
    st.sampled_from(["", "~", "null", "Null", "NULL", "yes", "No", "ON", "off", "true", "False", "0x1F", "0o17", "010", "0b101",
                     "1_000", "190:20:30", "1e3", "1.5e+3", ".inf", "-.Inf", ".NaN", "2026-10-01", "2026-1-1 1:02:03.5 +1",
                     "<<", "=", "2026-10", "4", "10.1037/pst0000172", "Meta-analysis"]),
)


@settings(max_examples=500, deadline=None)
@given(value=_SCALAR_TEXT, plain=st.booleans(), quoted=st.booleans(), kind=st.sampled_from(["scalar", "sequence", "mapping"]))
def test_the_fast_tag_resolver_agrees_with_pyyaml(value: str, plain: bool, quoted: bool, kind: str) -> None:
    """``resolve_tag`` (tables built once) gives the tag PyYAML's SafeLoader ``resolve`` gives (issue 15)."""
    import yaml

    from newsletter.content.yamlsource import resolve_tag

    node_kind = {"scalar": yaml.ScalarNode, "sequence": yaml.SequenceNode, "mapping": yaml.MappingNode}[kind]
    expected = yaml.SafeLoader("").resolve(node_kind, value, (plain, quoted))
    assert resolve_tag(node_kind, value, (plain, quoted)) == expected


@settings(max_examples=400, deadline=None)
@given(value=_SCALAR_TEXT)
def test_a_file_read_with_the_fast_resolver_is_typed_as_pyyaml_types_it(value: str) -> None:
    """The same scalar in a file: the value parse_yaml builds is PyYAML's, of the same type."""
    import yaml

    text = f"a: {value}\nb: [{value}]\n"
    try:
        expected: object = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    if "a" not in (expected or {}) or isinstance(expected["a"], (dict, list)) or yaml.SafeLoader("").resolve(yaml.ScalarNode, value.strip(), (True, False)).endswith("timestamp"):
        return  # YAML read more than a scalar there, or a date (kept as typed text here, on purpose)
    got = parse_yaml(text, "f.yaml").data
    assert (type(got["a"]), repr(got["a"])) == (type(expected["a"]), repr(expected["a"]))


_ANY_CHARACTER = st.characters(min_codepoint=0, max_codepoint=0x10FFFF)
_YAML_PIECES = st.sampled_from(["a: ", "- ", "\n", "  ", "x", "[", "]", "{", "}", ", ", "'", '"', "#", "|\n", "\t", "é", "≈", "\r\n"])


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(st.one_of(_YAML_PIECES, _ANY_CHARACTER.map(str)), max_size=30))
def test_an_invisible_character_is_refused_exactly_where_the_full_search_finds_one(pieces: list[str]) -> None:
    """Only a file libyaml refuses is searched for characters YAML does not allow (libyaml refuses
    them too, issue 15): the error still comes for every such character, at its line and column,
    and for no other file."""
    from newsletter.content.yamlsource import _FORBIDDEN_CHAR

    text = "".join(pieces)
    bad = _FORBIDDEN_CHAR.search(text)
    try:
        parse_yaml(text, "f.yaml")
        message = ""
    except NewsletterError as exc:
        message = str(exc)
    if bad is None:
        assert "an invisible character" not in message
    else:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        assert message.startswith(f"f.yaml:{line}:{column}: an invisible character")


@settings(max_examples=300, deadline=None)
@given(data=_DATA, flow=st.booleans(), nest=st.integers(min_value=0, max_value=34))
def test_recording_text_in_place_gives_what_the_node_by_node_walk_gives(data: object, flow: bool, nest: int) -> None:
    """In a file without aliases the position walk records text values and list items where their
    mapping or list is met (issue 15): the same data (in the same order), positions, typed text and
    values left for PyYAML, or the same error, as visiting every node on its own."""
    import yaml

    from newsletter.content.yamlsource import YamlSource, _compose, _record

    for _ in range(nest):  # up to past MAX_DEPTH: the too-deep error must come from the same node
        data = {"a": data, "b": ["x", 1]} if nest % 2 else [data, "y"]
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    node = _compose(text, "f.yaml")
    if node is None or "&" in text:  # an anchor: safe_dump met an object twice (never here), so aliases
        return

    def walk(may_alias: bool) -> object:
        src = YamlSource("f.yaml", None)
        try:
            built = _record(node, src, may_alias=may_alias)
        except NewsletterError as exc:
            return str(exc)
        shown = None if built is None else (repr(built[0]), [(repr(c), s, n.start_mark.index) for c, s, n in built[1]])
        return shown, src.positions, src.key_positions, src.typed

    assert walk(False) == walk(True)
