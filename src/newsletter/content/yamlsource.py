"""Read YAML keeping the line and column of every value, in plain words when it goes wrong.

PyYAML's composed node tree knows where each node starts; we construct the
plain Python data as usual and record ``path -> (line, column)`` beside it, so
validators can point at the exact spot without the model carrying positions.

Hostile or mistaken input is stopped at the node tree, before anything walks
it: an alias (``*name``) is refused, since nine nested aliases expand to
hundreds of millions of values (an "alias bomb"), and nesting deeper than
``MAX_DEPTH`` is refused with its line.  YAML 1.1 turns plain ``No`` into
False and ``010`` into 8; each such plain scalar's text is kept as typed
(``YamlSource.typed``) so text fields read exactly what the author wrote.

PyYAML's syntax errors ("expected <block end>, but found '<scalar>'") are
rewritten as sentences about tabs, indentation and quoting, at the line the
author wrote; ``parse_yaml_recovering`` blanks a bad line and parses again so
one mistake does not hide the file's other problems.

The walk that records positions also builds the data of an ordinary file
(mappings with text keys, lists, scalars): PyYAML's constructor, generic over
recursive structures and tags, took a third of parsing (issue 15).  Numbers,
booleans and other tagged scalars are still constructed by PyYAML, and any
other file entirely so; tests/test_yamlsource.py checks the data against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from newsletter.errors import NewsletterError, Problem, visible
from newsletter.fsutil import utf16_name

Key = tuple[Any, ...]
MAX_DEPTH = 32  # an issue file needs 5 levels (articles, article, citation, authors, name)
MAX_FILE_BYTES = 5 * 1024 * 1024  # a month of articles is ~20 KB; Gmail clips an email at 102 KB
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
QUOTING_HINT = "put the text in double quotes to keep it exactly as written"


@dataclass
class YamlSource:
    """Parsed YAML data plus the 1-based position of every key's value."""

    path: str
    data: Any
    positions: dict[Key, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Key, tuple[int, int]] = field(default_factory=dict)
    # plain scalars YAML 1.1 read as something other than text (No -> False, 010 -> 8): what was typed
    typed: dict[Key, str] = field(default_factory=dict)

    def where(self, *key: Any) -> tuple[int | None, int | None]:
        """Position of the value at ``key``, falling back to its nearest parent."""
        k: Key = tuple(key)
        while True:
            if k in self.positions:
                return self.positions[k]
            if not k:
                return (1, 1)
            k = k[:-1]

    def key_where(self, *key: Any) -> tuple[int | None, int | None]:
        """Position of the key itself (for 'unknown field' messages)."""
        return self.key_positions.get(tuple(key)) or self.where(*key)

    def problem(self, key: Key, message: str, severity: str = "error", *, at_key: bool = False) -> Problem:
        line, col = self.key_where(*key) if at_key else self.where(*key)
        return Problem(self.path, line, col, message, severity)

    def as_text(self, key: Key, value: Any) -> Any:
        """``value`` as the author typed it when YAML read a plain scalar as a boolean, number or date."""
        if isinstance(value, str):  # text (a date included) is already what was typed
            return value
        return self.typed.get(tuple(key), value)


def _record(root: yaml.Node, src: YamlSource, *, may_alias: bool = True) -> tuple[list[Any], list[tuple[Any, Any, yaml.Node]]] | None:
    """Fill positions (and typed text) for every node; refuse aliases, repeated keys and deep nesting.

    Iterative, so a deep file cannot exhaust Python's stack, and each node is
    visited once, so an alias is seen (as a node met twice) before anything expands it.

    The same walk builds the data when the file is mappings with text keys, lists and
    scalars (every newsletter file): a one-item list holding it, and the scalars that are
    not text or null as (container, slot, node), for ``_finish`` to construct; PyYAML's
    constructor took a third of parsing.  None when it is anything else (merge keys,
    ``!!omap``, a number as a key, ...): ``parse_yaml`` then constructs with PyYAML.

    Without ``may_alias`` (the text has no '*', so no node can appear twice) a text value
    or list item is recorded where its mapping or list is met, not pushed and popped on its
    own: most nodes are text (issue 15).  Nothing else is visited in another order, so a
    file with several problems still gets the same first error.
    """
    seen: set[int] = set()
    holder: list[Any] = [None]
    deferred: list[tuple[Any, Any, yaml.Node]] = []
    fast = True
    positions, key_positions, typed = src.positions, src.key_positions, src.typed
    # looked up once: this loop runs for every node of the file (issue 15)
    scalar_node, mapping_node, sequence_node = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
    str_tag, null_tag, timestamp_tag = _STR_TAG, _NULL_TAG, _TIMESTAMP_TAG
    stack: list[tuple[yaml.Node, Key, tuple[int, int], Any, Any]] = [
        (root, (), (root.start_mark.line + 1, root.start_mark.column + 1), holder, 0)]
    push, pop = stack.append, stack.pop
    while stack:
        node, key, used_at, container, slot = pop()
        mark = node.start_mark
        here = (mark.line + 1, mark.column + 1)
        if id(node) in seen:
            raise NewsletterError(
                f"an alias (*name) repeats the value from line {here[0]}; aliases are not allowed in newsletter files",
                path=src.path, line=used_at[0], column=used_at[1], hint="write the value out in full where it is needed",
            )
        seen.add(id(node))
        if len(key) > MAX_DEPTH:
            raise _too_deep(src.path, *here)
        positions[key] = here
        tag = node.tag
        if isinstance(node, scalar_node):
            if tag == str_tag:
                container[slot] = node.value
            elif tag == timestamp_tag:  # _Constructor keeps dates as typed
                container[slot] = node.value
                if not node.style:
                    typed[key] = node.value
            else:
                container[slot] = None  # null, or in its place until _finish (a mapping keeps its order)
                if tag != null_tag:
                    deferred.append((container, slot, node))
                    if not node.style:
                        typed[key] = node.value
        elif isinstance(node, mapping_node):
            # the fields in the file's order, whichever order their values are filled in
            mapping: dict[str, Any] = dict.fromkeys([k.value for k, _ in node.value if isinstance(k, scalar_node)])
            if tag != _MAP_TAG:
                fast = False
            container[slot] = mapping
            inline = not may_alias and len(key) < MAX_DEPTH
            for k_node, v_node in reversed(node.value):
                if not isinstance(k_node, scalar_node):
                    raise NewsletterError(
                        "a field name must be plain text, not a list or mapping", path=src.path,
                        line=k_node.start_mark.line + 1, column=k_node.start_mark.column + 1, hint="check the brackets and the '?' on this line",
                    )
                name = k_node.value
                key_mark = k_node.start_mark
                at = (key_mark.line + 1, key_mark.column + 1)
                child = key + (name,)
                first_at = key_positions.setdefault(child, at)
                if first_at is not at:
                    # YAML requires unique keys; PyYAML would silently keep the last value and lose the first
                    first, second = sorted((first_at, at))
                    raise NewsletterError(
                        f"'{name}' appears twice here (first on line {first[0]}); the second would silently replace the first",
                        path=src.path, line=second[0], column=second[1], hint="merge the two or rename one",
                    )
                if k_node.tag != str_tag:  # 1:, true:, null: become 1, True, None: where the checks look them up
                    fast = False
                    try:
                        value = _Constructor().construct_object(k_node)
                        key_positions.setdefault(key + (value,), at)
                    except Exception:  # noqa: BLE001 - unconstructable or unhashable: reported when the file is constructed
                        pass
                if inline and v_node.tag == str_tag and isinstance(v_node, scalar_node):
                    value_mark = v_node.start_mark
                    positions[child] = (value_mark.line + 1, value_mark.column + 1)
                    mapping[name] = v_node.value
                else:
                    push((v_node, child, at, mapping, name))
        elif isinstance(node, sequence_node):
            items = node.value
            sequence: list[Any] = [None] * len(items)
            if tag != _SEQ_TAG:
                fast = False
            container[slot] = sequence
            inline = not may_alias and len(key) < MAX_DEPTH
            for i in range(len(items) - 1, -1, -1):
                item = items[i]
                if inline and item.tag == str_tag and isinstance(item, scalar_node):
                    item_mark = item.start_mark
                    positions[key + (i,)] = (item_mark.line + 1, item_mark.column + 1)
                    sequence[i] = item.value
                else:
                    push((item, key + (i,), here, sequence, i))  # an alias item shares its anchor's mark: name the list
    return (holder, deferred) if fast else None


def _finish(holder: list[Any], deferred: list[tuple[Any, Any, yaml.Node]]) -> Any:
    """The data ``_record`` built, its numbers, booleans and other tagged scalars constructed by PyYAML."""
    if deferred:
        constructor = _Constructor()
        for container, slot, node in deferred:  # in the file's order, as PyYAML would meet them
            try:
                container[slot] = constructor.construct_object(node, deep=True)
            except yaml.MarkedYAMLError:
                raise
            except _UNCONSTRUCTABLE as exc:  # an explicit !!int abc, !!bool maybe
                raise _UnreadableValue(exc, node.start_mark.line + 1) from None
    return holder[0]


# What PyYAML's constructors raise for a tagged text that is not of that type: !!int abc a
# ValueError, !!bool maybe a bare KeyError (its table of booleans has no 'maybe').
_UNCONSTRUCTABLE = (yaml.YAMLError, ValueError, TypeError, OverflowError, LookupError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"{exc.args[0]!r} is not a value this tag allows"
    return str(exc)


class _UnreadableValue(Exception):
    """A tagged value PyYAML could not construct, with the line it is on."""

    def __init__(self, exc: BaseException, line: int) -> None:
        super().__init__(_reason(exc))
        self.line = line


# libyaml's parser is several times faster; its error messages differ from
# PyYAML's, so a file it rejects is parsed again in Python for the message.
_C_LOADER: type | None = getattr(yaml, "CSafeLoader", None)

# SafeLoader's implicit resolvers by a scalar's first character ('' for the empty scalar), the
# resolvers for any first character appended: what PyYAML's ``resolve`` concatenates per scalar.
_SAFE_RESOLVERS = yaml.SafeLoader.yaml_implicit_resolvers
_IMPLICIT_BY_FIRST: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    first: tuple(resolvers) + tuple(_SAFE_RESOLVERS.get(None, ())) for first, resolvers in _SAFE_RESOLVERS.items() if first is not None
}
_IMPLICIT_ANY_FIRST: tuple[tuple[str, re.Pattern[str]], ...] = tuple(_SAFE_RESOLVERS.get(None, ()))


def resolve_tag(kind: type, value: str, implicit: tuple[bool, bool]) -> str:
    """The tag SafeLoader's ``resolve`` gives a node without an explicit tag, from tables built once.

    PyYAML's ``resolve`` rebuilds the list of candidate resolvers for every scalar and checks
    for path resolvers SafeLoader never has; libyaml's composer calls it for every node (a
    tenth of loading an issue, issue 15).  tests/test_yamlsource.py compares the two.
    """
    if kind is yaml.ScalarNode:
        if implicit[0]:
            for tag, pattern in _IMPLICIT_BY_FIRST.get(value[:1], _IMPLICIT_ANY_FIRST):
                if pattern.match(value):
                    return tag
        return _STR_TAG
    return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG


if _C_LOADER is not None:
    class _FastCLoader(_C_LOADER):  # type: ignore[misc, valid-type]
        """libyaml's loader with ``resolve_tag``, and without SafeLoader's per-node path-resolver bookkeeping (it has none)."""

        resolve = staticmethod(resolve_tag)

        def descend_resolver(self, current_node: yaml.Node | None, current_index: Any) -> None:
            return None

        def ascend_resolver(self) -> None:
            return None

    _FAST_LOADER: type | None = _FastCLoader
else:
    _FAST_LOADER = None


def parse_yaml(text: str, path: str) -> YamlSource:
    """Parse YAML text; a syntax error, an alias or deep nesting becomes a NewsletterError at its line."""
    node = _compose(text, path)
    src = YamlSource(path=path, data=None)
    if node is None:
        return src
    built = _record(node, src, may_alias="*" in text)  # before constructing: an alias bomb must not be expanded
    try:
        src.data = _Constructor().construct_document(node) if built is None else _finish(*built)
    except yaml.MarkedYAMLError as exc:  # an unknown !!tag, bad !!binary
        raise _syntax_error(exc, path, text) from None
    except _UnreadableValue as exc:
        raise NewsletterError(f"a value cannot be read: {exc}", path=path, line=exc.line, hint=QUOTING_HINT) from None
    except _UNCONSTRUCTABLE as exc:  # an explicit !!int abc in an unusual file
        raise NewsletterError(f"a value cannot be read: {_reason(exc)}", path=path, hint=QUOTING_HINT) from None
    return src


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor that leaves dates as the text typed: nothing here wants a date object, and 2026-02-30 would crash."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)


def _compose(text: str, path: str) -> yaml.Node | None:
    if _FAST_LOADER is not None:
        try:
            fast = _FAST_LOADER(text)
        except UnicodeEncodeError:  # a lone surrogate cannot be handed to libyaml: refused below
            fast = None
        if fast is not None:
            try:
                # libyaml refuses every character _FORBIDDEN_CHAR matches, so a file it reads needs no
                # search for them (a regex over the whole text, 6% of loading, issue 15)
                return fast.get_single_node()
            except yaml.YAMLError as exc:
                if "nesting depth" in str(exc):  # libyaml stops at 1,000 levels, where PyYAML would recurse and crash
                    _refuse_forbidden_char(text, path)
                    raise _too_deep(path, *_too_deep_at(text)) from None
            finally:
                fast.dispose()
    _refuse_forbidden_char(text, path)
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, path, text) from None
    except yaml.YAMLError as exc:
        raise NewsletterError(f"YAML error: {exc}", path=path) from None
    except RecursionError:  # PyYAML's composer recurses per level; libyaml found a syntax error further on
        line, column = _too_deep_at(text)
        raise _too_deep(path, line, column) from None
    finally:
        loader.dispose()


def _refuse_forbidden_char(text: str, path: str) -> None:
    """A YamlSyntaxError at the first character YAML does not allow in a file, if there is one."""
    bad = _FORBIDDEN_CHAR.search(text)
    if bad:  # PyYAML refuses these in its reader, before it knows any line
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise YamlSyntaxError(
            f"an invisible character ({visible(bad.group())}) that YAML does not allow", path=path, line=line, column=column,
            hint="delete it; it is invisible in most editors (a stray NUL or form feed from a copy and paste)",
        )


# What PyYAML's reader refuses (yaml.reader.Reader.NON_PRINTABLE): C0 controls but tab and newlines, DEL,
# C1 controls but NEL, surrogates, U+FFFE/U+FFFF.
_FORBIDDEN_CHAR = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _too_deep(path: str, line: int | None, column: int | None) -> NewsletterError:
    return NewsletterError(
        f"the YAML nests more than {MAX_DEPTH} levels deep here; a newsletter file needs a handful",
        path=path, line=line, column=column, hint="check the indentation and the brackets from this line on",
    )


def _too_deep_at(text: str) -> tuple[int | None, int | None]:
    """Where nesting first passes MAX_DEPTH, from PyYAML's parser events (a state machine: no recursion)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        if exc.problem_mark is not None:
            return exc.problem_mark.line + 1, exc.problem_mark.column + 1
    except yaml.YAMLError:
        pass
    return None, None


class YamlSyntaxError(NewsletterError):
    """A syntax error; ``lines`` is the span (first, last) the mistake covers, for recovery."""

    lines: tuple[int, int] | None = None


def _syntax_error(exc: yaml.MarkedYAMLError, path: str, text: str) -> NewsletterError:
    """PyYAML's complaint as a sentence, at the line the author wrote, with the span of lines it covers."""
    error = _syntax_message(exc, path, text)
    mark, ctx = exc.problem_mark, exc.context_mark
    if mark is not None:
        # an unclosed bracket or quote, or a line that is no key, runs from where it began to where it was noticed
        spans = ctx is not None and ("flow" in (exc.context or "") or "simple key" in (exc.context or "") or "quoted" in (exc.context or ""))
        first = ctx.line + 1 if spans and ctx is not None and ctx.line <= mark.line else mark.line + 1
        error.lines = (first, mark.line + 1)
    return error


def _syntax_message(exc: yaml.MarkedYAMLError, path: str, text: str) -> YamlSyntaxError:
    problem = exc.problem or ""
    context = exc.context or ""
    mark, ctx = exc.problem_mark, exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    hint = "check indentation and quoting on this line and the one above; quote text containing ': ' or starting with a special character"
    if "'\\t'" in problem or "\t" in problem:
        tab_line = _line_text(text, line)
        return YamlSyntaxError(
            "tabs are not allowed for indentation; use spaces",
            path=path, line=line, column=(tab_line.index("\t") + 1) if "\t" in tab_line else column,
            hint="replace the tab at the start of this line with spaces (most editors have a 'convert tabs to spaces' setting)",
        )
    if "could not find expected ':'" in problem and ctx is not None:
        # the parser reads on to the next line before giving up; the mistake is where the 'key' began
        return YamlSyntaxError(
            "this line is indented less than the text above it, so it is not part of that text, "
            "and it is not a 'field: value' line either",
            path=path, line=ctx.line + 1, column=ctx.column + 1,
            hint="indent it as far as the text above (a blank line between paragraphs is fine), or add the missing ':' after the field name",
        )
    found = re.search(r"expected <block end>, but found '?([^']*)'?", problem)
    if found and ctx is not None and mark is not None:
        what = "list items" if "collection" in context or "sequence" in context else "fields"
        return YamlSyntaxError(
            f"wrong indentation: this line starts at column {mark.column + 1}, but the {what} it belongs with "
            f"start at column {ctx.column + 1} (line {ctx.line + 1})",
            path=path, line=line, column=column,
            hint=f"line it up with them at column {ctx.column + 1}, or, if it continues the text above, indent it as far as that text",
        )
    if ctx is not None and ("flow sequence" in context or "flow mapping" in context):
        opener = "[" if "sequence" in context else "{"
        closer = "]" if opener == "[" else "}"
        return YamlSyntaxError(
            f"the '{opener}' here is not closed by a '{closer}' before line {line}",
            path=path, line=ctx.line + 1, column=ctx.column + 1,
            hint=f"add the missing '{closer}', or put the value in double quotes if the '{opener}' is part of the text",
        )
    if ctx is not None and "quoted scalar" in context:
        return YamlSyntaxError(
            "the quote that starts here is never closed",
            path=path, line=ctx.line + 1, column=ctx.column + 1,
            hint="add the closing quote; inside double quotes write \\\" for a quote character",
        )
    if "mapping values are not allowed" in problem:
        return YamlSyntaxError(
            "a ': ' here would start a new field in the middle of a value",
            path=path, line=line, column=column,
            hint="put the whole text in double quotes if it contains ': ', or check this line's indentation against the line above",
        )
    what = f"{context}, {problem}" if context else (problem or str(exc))
    return YamlSyntaxError(f"YAML syntax error: {what}", path=path, line=line, column=column, hint=hint)


def _line_text(text: str, line: int | None) -> str:
    lines = text.splitlines()
    return lines[line - 1] if line and 0 < line <= len(lines) else ""


MAX_RECOVERIES = 10


def parse_yaml_recovering(text: str, path: str) -> tuple[YamlSource | None, list[NewsletterError]]:
    """Parse, and on a syntax error blank the bad line and try again, collecting each error.

    Returns what could be read (None if nothing) and the errors in line order.
    An error on the line right after one already blanked is usually the same
    mistake (a paragraph indented too little), so it is blanked without a
    second message.  Aliases and deep nesting are not recovered from.
    """
    errors: list[NewsletterError] = []
    blanked: set[int] = set()
    lines: list[str] | None = None  # split only once a line has to be blanked
    for _ in range(MAX_RECOVERIES + 1):
        try:
            src = parse_yaml(text if lines is None else "\n".join(lines), path)
        except NewsletterError as exc:
            if lines is None:
                lines = text.split("\n")
            span = getattr(exc, "lines", None) or ((exc.line, exc.line) if exc.line is not None else None)
            if span is None or span[1] > len(lines) or all(n in blanked for n in range(span[0], span[1] + 1)):
                return None, _first_of_each(errors + [exc])
            if span[0] - 1 not in blanked:
                errors.append(exc)
            for n in range(span[0], span[1] + 1):
                blanked.add(n)
                lines[n - 1] = ""
            continue
        return src, errors
    return None, errors


def _first_of_each(errors: list[NewsletterError]) -> list[NewsletterError]:
    kept: list[NewsletterError] = []
    for error in errors:
        if not any((e.line, e.message) == (error.line, error.message) for e in kept):
            kept.append(error)
    return kept


def read_text(path: Path, display: str | None = None) -> str:
    """A YAML file's text, with errors that name the file (missing, unreadable, not UTF-8, too big)."""
    name = display or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NewsletterError("file not found", path=name, hint="check the path, or create it with `newsletter new YYYY-MM`") from None
    except OSError as exc:
        raise NewsletterError(f"cannot read: {exc.strerror}", path=name) from None
    if len(data) > MAX_FILE_BYTES:
        raise NewsletterError(
            f"the file is {len(data) / 1024 / 1024:.1f} MB; a newsletter file over {MAX_FILE_BYTES // 1024 // 1024} MB cannot be right",
            path=name, hint="check that this is the right file",
        )
    if utf16_name(data):
        raise NewsletterError("the file is UTF-16 text: save it as UTF-8", path=name, line=1, hint="choose UTF-8 in your editor's 'Save as' encoding")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise NewsletterError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=name, line=line, hint="save the file as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_yaml(path: Path, display: str | None = None) -> YamlSource:
    """Read and parse a YAML file, with errors that name the file."""
    name = display or str(path)
    return parse_yaml(read_text(path, name), name)
