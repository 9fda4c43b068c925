"""Render an issue to the HTML email (Jinja2 -> MJML -> HTML -> premailer) and to plain text.

Templates come from the newsletter folder's ``templates/`` first and the
packaged defaults second (a Jinja ``ChoiceLoader``), so a user overrides one
file at a time.  ``StrictUndefined`` turns a typo in a template into an error
that names the template and line.  Compiled templates are kept in the user's
cache (``newsletter.mail.usercache``, ``_TemplateCache``): compiling them took a
tenth of a ``newsletter build``, and it is the same work in every process.
So is what ``check_merge_fields`` finds in each template's syntax tree, kept
there by the digest of the template's source.
"""

from __future__ import annotations

import functools
import hashlib
import html as html_module
import json
import marshal
import os
import re
import sys
import textwrap
import traceback
import types
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import jinja2
import jinja2.meta
from markupsafe import Markup, escape
import mjml

from newsletter import __version__
from newsletter.mail import usercache
from newsletter.errors import TemplateError
from newsletter.content.config import USER_TEMPLATES_DIR
from newsletter.content.model import Config, Issue

HTML_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
TEXT_WIDTH = 72
GMAIL_CLIP_BYTES = 102 * 1024
PREVIEW_GREETING = "Dear [name],"  # build and preview without a known list: where each reader's name goes


@dataclass(frozen=True)
class Personal:
    """The parts of an email that differ per recipient."""

    greeting: str | None = None
    unsubscribe_url: str | None = None
    subscriber: "MergeFields | None" = None


class UnknownMergeField(Exception):
    """A template used ``subscriber.<column>`` for a column the subscriber list does not have."""

    def __init__(self, column: str, columns: tuple[str, ...]) -> None:
        super().__init__(column)
        self.column, self.columns = column, columns


class MergeFields:
    """The ``subscriber`` of the templates: one recipient's columns of the subscriber list.

    ``subscriber.city`` (or ``subscriber["first name"]``) is that column's value.
    Without a list (build, preview, test copies) every column reads as
    ``[column]``, so the author sees where the value will go.  A column the list
    lacks is an error naming the template line, raised before anything is sent.
    Every name goes to ``__getitem__``, so a column may be called anything.
    """

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self._values = values  # None: no list, show placeholders

    def __getitem__(self, column: str) -> str:
        values = object.__getattribute__(self, "_values")
        if values is None:
            return f"[{column}]"
        try:
            return values[column]
        except KeyError:
            raise UnknownMergeField(column, tuple(values)) from None

    def __getattribute__(self, column: str) -> Any:
        if column.startswith("__"):
            return object.__getattribute__(self, column)
        return self[column]


# Templates already checked for merge-field misuse (held weakly: Jinja replaces a template that changed).
_CHECKED: "weakref.WeakKeyDictionary[jinja2.Template, tuple[list[tuple[int, str]], list[str]]]" = weakref.WeakKeyDictionary()


def check_merge_fields(env: jinja2.Environment, entry_templates: tuple[str | jinja2.Template, ...]) -> None:
    """Refuse ``subscriber`` used other than as a bare ``{{ subscriber.column }}``.

    Values are filled in per recipient after rendering, so a filter, a test or
    an ``{% if %}`` on a merge field would see the placeholder, not the value:
    wrong for every reader, and silently.  Checked on the template's syntax tree,
    following includes, in every mode, so the author learns it while previewing.
    An entry may be given as the template just rendered (not fetched, and checked, again).
    """
    todo, seen = list(entry_templates), set()
    while todo:
        entry = todo.pop()
        name = entry if isinstance(entry, str) else entry.name
        if name in seen:
            continue
        seen.add(name)
        template = env.get_template(name) if isinstance(entry, str) else entry
        found = _CHECKED.get(template)
        if found is None:
            found = _CHECKED[template] = _syntax_facts(env, name)
        misuses, included = found
        if misuses:
            line, expression = misuses[0]
            raise TemplateError(
                f"{expression} is filled in per recipient after rendering, so it can only be written on its own, "
                "as {{ subscriber.column }}: a filter, test, condition or expression would see a placeholder",
                path=template.filename or name, line=line,
                hint="write the value as it is; put any wording that depends on it in the subscriber list itself",
            )
        todo.extend(included)


_stored_facts: dict[str, Any] | None = None
_stamp: str | None = None


def _cache_stamp() -> str:
    """What the names of this module's files in the user's cache carry: the Python, Jinja and
    package versions and this module's source (which sets up the Jinja environment)."""
    global _stamp
    if _stamp is None:
        _stamp = usercache.fingerprint(sys.version, jinja2.__version__, __version__, usercache.source_digest(__file__))
    return _stamp


def _syntax_facts(env: jinja2.Environment, name: str) -> tuple[list[tuple[int, str]], list[str]]:
    """What ``check_merge_fields`` needs of one template: its merge-field misuses and the templates
    it includes.  Parsing the templates again cost a twentieth of a ``newsletter build``, so the
    answer is kept in the user's cache under the digest of the template's name and source."""
    global _stored_facts
    source, _filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    file_name = f"merge-fields-{_cache_stamp()}.json"
    if _stored_facts is None:
        payload = usercache.read(file_name)
        try:
            _stored_facts = json.loads(payload) if payload is not None else {}
        except ValueError:
            _stored_facts = {}
        if not isinstance(_stored_facts, dict):
            _stored_facts = {}
    key = hashlib.sha256(f"{name}\0{source}".encode("utf-8", "surrogateescape")).hexdigest()
    stored = _stored_facts.get(key)
    try:
        misuses, included = stored  # type: ignore[misc]
        if all(type(line) is int and isinstance(text, str) for line, text in misuses) and all(isinstance(t, str) for t in included):
            return [(line, text) for line, text in misuses], list(included)
    except (TypeError, ValueError):
        pass
    tree = env.parse(source, name)
    found = (list(_merge_field_misuses(tree)), [t for t in jinja2.meta.find_referenced_templates(tree) if t])
    if len(_stored_facts) >= 256:  # templates edited over a long preview session
        _stored_facts.clear()
    _stored_facts[key] = found
    usercache.write(file_name, json.dumps(_stored_facts).encode("utf-8"))
    return found


def _merge_field_misuses(node: jinja2.nodes.Node, parent: Any = None, grandparent: Any = None) -> Iterator[tuple[int, str]]:
    nodes = jinja2.nodes
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.Name) and child.name == "subscriber":
            bare = (
                isinstance(node, nodes.Getattr)
                or (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const))
            ) and isinstance(parent, nodes.Output)
            if not bare:
                column = getattr(node, "attr", None) or getattr(getattr(node, "arg", None), "value", None)
                yield child.lineno, f"subscriber.{column}" if column else "subscriber"
        else:
            yield from _merge_field_misuses(child, node, parent)


@dataclass(frozen=True)
class RenderedEmail:
    """An issue rendered for email: subject, preheader, HTML and plain text."""

    month: str
    subject: str
    preheader: str | None
    html: str
    text: str

    @functools.cached_property
    def html_utf8(self) -> bytes:
        """The HTML encoded, once: encoding a 25 KB page took a fiftieth of a build."""
        return self.html.encode("utf-8")

    @property
    def html_bytes(self) -> int:
        """The HTML's size in UTF-8."""
        return len(self.html_utf8)

    @property
    def clipped_by_gmail(self) -> bool:
        """Whether the HTML is over the size at which Gmail clips a message (``GMAIL_CLIP_BYTES``).

        Encoded only when it may be: no character takes more than 4 bytes in UTF-8.
        """
        return len(self.html) * 4 > GMAIL_CLIP_BYTES and self.html_bytes > GMAIL_CLIP_BYTES


def default_subject(issue: Issue, config: Config) -> str:
    """'<newsletter name> — <Month YYYY>' unless the issue sets a subject."""
    return issue.subject or f"{config.name} — {issue.month_name}"


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap prose at ``width`` columns without breaking words or URLs.

    What ``textwrap.fill`` writes with ``break_long_words`` and ``break_on_hyphens`` off, for
    text whose whitespace is single spaces (made so here): greedy lines, a word longer than a
    line alone on its own.  Written out because textwrap's general chunking took a tenth of a
    build, as one regular expression per line length because a loop over the words took a
    twentieth (tests/test_render.py checks it against textwrap with hypothesis).
    """
    first_indent = indent if first is None else first
    text = str(text)
    joined = text if _single_spaced(text) else " ".join(text.split())
    room, first_room = width - len(indent), width - len(first_indent)
    if room < 1 or first_room < 1:  # textwrap's corner cases (and errors)
        return _textwrap_fill(joined, width, indent, first_indent)
    if len(joined) <= first_room:  # one line, or none: most titles and greetings
        return first_indent + joined if joined else ""
    if room == first_room:  # one pattern cuts every line
        return first_indent + ("\n" + indent).join(_line_pattern(room).findall(joined))
    first_line = _line_pattern(first_room).match(joined)
    assert first_line is not None  # joined is longer than a line, so it has a word
    lines = [first_indent + first_line.group(1)]
    lines.extend(indent + line for line in _line_pattern(room).findall(joined, first_line.end()))
    return "\n".join(lines)


def _single_spaced(text: str) -> bool:
    """Whether ``" ".join(text.split())`` is ``text`` itself, as for the model's paragraphs.

    Told without splitting a paragraph into a list of words: the space is the only whitespace
    character ``str.isprintable`` accepts (tests/test_render_fast.py checks every character).
    """
    return text.isprintable() and "  " not in text and not text.startswith(" ") and not text.endswith(" ")


_line_patterns: dict[int, re.Pattern[str]] = {}


def _line_pattern(room: int) -> re.Pattern[str]:
    """One line of at most ``room`` characters of single-spaced words, greedy, ending at a word's
    end; else one word longer than that (``\\S`` is ``str.split``'s non-space), and the space after."""
    pattern = _line_patterns.get(room)
    if pattern is None:
        if len(_line_patterns) >= 64:
            _line_patterns.clear()
        pattern = _line_patterns[room] = re.compile(r"(\S.{0,%d}(?= |$)|\S+) ?" % (room - 1))
    return pattern


def _textwrap_fill(text: str, width: int, indent: str, first_indent: str) -> str:
    return textwrap.fill(text, width=width, initial_indent=first_indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


class _References:
    """Numbers links in order of first use, for the plain-text 'Links' list."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}  # url -> its number; dicts keep the order of first use

    def ref(self, url: str | None) -> str:
        if not url:
            return ""
        number = self.numbers.setdefault(url, len(self.numbers) + 1)
        return f"[{number}]"

    def listing(self) -> str:
        return "\n".join(f"[{number}] {url}" for url, number in self.numbers.items())


_module_digests: dict[str, str] = {}


def _callables_stamp(env: jinja2.Environment) -> str:
    """What Jinja's compiled code takes from the environment's filters and tests: how each is called
    (``pass_context`` and the like, decided when compiling) and what it does (a filter of constants
    is run when compiling, its result kept in the code).  So each one's name, where it is defined
    and the digest of that module's source; Jinja's own are covered by its version in
    ``_cache_stamp``.  Filters are also registered outside this module (``site.py``'s ``paras``)."""
    snapshot = (tuple(env.filters.items()), tuple(env.tests.items()))
    stamp = _callables_stamps.get(snapshot)
    if stamp is None:
        if len(_callables_stamps) >= 16:
            _callables_stamps.clear()
        stamp = _callables_stamps[snapshot] = _callables_fingerprint(env)
    return stamp


_callables_stamps: dict[tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]], str] = {}


def _callables_fingerprint(env: jinja2.Environment) -> str:
    parts = []
    for kind, table in (("filter", env.filters), ("test", env.tests)):
        for name, func in sorted(table.items()):
            module = getattr(func, "__module__", None) or ""
            digest = _module_digests.get(module)
            if digest is None:
                source = getattr(sys.modules.get(module), "__file__", None)
                is_jinja = module == "jinja2" or module.startswith("jinja2.")
                digest = _module_digests[module] = "" if is_jinja or not source else usercache.source_digest(source)
            parts.append((kind, name, module, getattr(func, "__qualname__", repr(func)),
                          repr(getattr(func, "jinja_pass_arg", None)), digest))
    return usercache.fingerprint(*parts)


class _TemplateCache(jinja2.BytecodeCache):
    """Jinja's compiled templates, kept in the user's cache between processes.

    Jinja's ``FileSystemBytecodeCache`` is not used: it unpickles a checksum from
    each file and lets a corrupt file raise.  Here a file holds the template
    source's checksum and the marshalled code, behind usercache's digest; the
    file name carries ``_cache_stamp()`` (the environment the code was compiled
    for), ``_callables_stamp`` (the filters and tests it was compiled against)
    and Jinja's key for the template's name and file.  A
    template whose source changed gets a checksum mismatch, so it is compiled
    again; anything unreadable is compiled as if there were no cache.
    """

    def _name(self, bucket: jinja2.bccache.Bucket) -> str:
        return f"jinja-{_cache_stamp()}-{_callables_stamp(bucket.environment)}-{bucket.key}"

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        payload = usercache.read(self._name(bucket))
        if payload is None:
            return
        checksum, newline, data = payload.partition(b"\n")
        if not newline or checksum != bucket.checksum.encode():
            return
        try:
            code = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return
        if isinstance(code, types.CodeType):
            bucket.code = code

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        usercache.write(self._name(bucket), bucket.checksum.encode() + b"\n" + marshal.dumps(bucket.code))


def make_environment(folder: Path) -> jinja2.Environment:
    """A Jinja environment: user templates over packaged ones, strict, autoescaping HTML."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(str(folder / USER_TEMPLATES_DIR)),
            jinja2.PackageLoader("newsletter", "templates"),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        keep_trailing_newline=True,
        auto_reload=True,
        bytecode_cache=_TemplateCache(),
    )
    env.filters["wrap"] = wrap
    env.filters["cite"] = cite_html
    return env


def cite_html(citation: Any) -> Markup:
    """A citation's text, escaped, with its DOI/URL made a link (added after the text if absent).

    Written with ``escape`` into one string: ``Markup.format`` and adding Markups escaped the same
    pieces through Python's string formatter, a quarter of the time of rendering the HTML template.
    """
    text, link = citation.text, citation.link
    if not link:
        return escape(text)
    for shown in (link, citation.url, f"doi.org/{citation.doi}" if citation.doi else None, citation.doi):
        if shown and shown in text:
            before, _, after = text.partition(shown)
            return Markup(f'{escape(before)}<a href="{escape(link)}">{escape(shown)}</a>{escape(after)}')
    escaped_link = escape(link)
    return Markup(f'{escape(text)} <a href="{escaped_link}">{escaped_link}</a>')


def _autoescape(name: str | None) -> bool:
    return name is None or not name.endswith((".txt.j2", ".txt", ".css"))


def template_files(folder: Path) -> list[Path]:
    """Every template file that can affect rendering (for the preview's change watcher)."""
    user = folder / USER_TEMPLATES_DIR
    packaged = Path(__file__).resolve().parent.parent / "templates"
    return [p for d in (user, packaged) if d.is_dir() for p in sorted(d.iterdir()) if p.is_file()]


_ENVIRONMENTS: dict[tuple[str, str, tuple[str, ...]], jinja2.Environment] = {}


def _shared_environment(folder: Path) -> jinja2.Environment:
    """One environment per folder and set of user templates, so compiled templates are reused.

    Compiling the templates costs more than rendering them.  auto_reload
    notices an edited template; a template added to or removed from the
    folder's templates/ changes the key, and so gets a fresh environment.
    The folder is known by its absolute path (no system calls), not its
    resolved one (one per part of the path, for each Renderer): a folder
    reached through a symlink gets its own environment, and that is all.
    """
    try:
        names = tuple(sorted(os.listdir(os.path.join(folder, USER_TEMPLATES_DIR))))
    except (FileNotFoundError, NotADirectoryError):  # no templates/ of the user's
        names = ()
    key = (os.path.abspath(folder), os.fspath(folder), names)  # a relative folder's loader depends on the working folder
    env = _ENVIRONMENTS.get(key)
    if env is None:
        env = _ENVIRONMENTS[key] = make_environment(folder)
    return env


class Renderer:
    """Renders issues of one newsletter folder; reuse it across issues and recipients."""

    def __init__(self, folder: Path, config: Config) -> None:
        self.folder = folder
        self.config = config
        self.env = _shared_environment(folder)

    def render(self, issue: Issue, personal: Personal | None = None) -> RenderedEmail:
        """Render both versions of the email for one issue."""
        personal = personal or Personal()
        subject = default_subject(issue, self.config)
        context = {
            "issue": issue,
            "config": self.config,
            "subject": subject,
            "preheader": issue.preheader,
            "greeting": personal.greeting,
            "subscriber": personal.subscriber or MergeFields(),
            "unsubscribe_url": personal.unsubscribe_url or self.default_unsubscribe_url(),
            "unsubscribe_email": self.config.unsubscribe_email,
            "view_url": self.config.issue_url(issue.month),
        }
        rendered: list[jinja2.Template] = []
        mjml_source = self._render_template(HTML_TEMPLATE, context, rendered)
        refs = _References()
        text = self._render_template(
            TEXT_TEMPLATE,
            {**context, "ref": refs.ref, "references": refs.listing, "has_references": lambda: bool(refs.numbers)},
            rendered,
        )
        check_merge_fields(self.env, tuple(rendered))
        html = self._inline(self._compile_mjml(mjml_source))
        text = _tidy_text(text)
        check_footer(html, text, context["unsubscribe_url"], self.config.postal_address)
        return RenderedEmail(issue.month, subject, issue.preheader, html, text)

    def default_unsubscribe_url(self) -> str:
        """The list-wide unsubscribe link used when no personal link is given."""
        if self.config.unsubscribe_url:
            return self.config.unsubscribe_url
        return f"mailto:{self.config.unsubscribe_email}?subject=unsubscribe"

    def _render_template(self, name: str, context: dict[str, Any], rendered: list[jinja2.Template] | None = None) -> str:
        """The template ``name`` rendered, appended to ``rendered`` if given; Jinja's errors as TemplateError."""
        try:
            template = self.env.get_template(name)
            if rendered is not None:
                rendered.append(template)
            return template.render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}",
                path=exc.filename or exc.name or name,
                line=exc.lineno,
                hint="fix the template, or delete your copy in templates/ to use the default",
            ) from None
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name} not found", path=str(self.folder / USER_TEMPLATES_DIR), hint="a template your templates include is missing") from None
        except jinja2.UndefinedError as exc:
            path, line = _template_frame(exc, name)
            raise TemplateError(f"template error: {exc.message}", path=path, line=line, hint="check the variable's spelling; templates can use issue, config, subject, preheader, greeting, subscriber, unsubscribe_url, view_url") from None
        except UnknownMergeField as exc:
            path, line = _template_frame(exc, name)
            raise TemplateError(
                f"the subscriber list has no column '{exc.column}'",
                path=path, line=line,
                hint=f"its columns are: {', '.join(exc.columns)}; add the column to the list or fix the name in the template",
            ) from None
        except TemplateError:
            raise
        except Exception as exc:  # a filter or expression failing inside a user template
            path, line = _template_frame(exc, name)
            raise TemplateError(f"template error: {type(exc).__name__}: {exc}", path=path, line=line) from None

    def _compile_mjml(self, source: str) -> str:
        try:
            return mjml.mjml2html(source)
        except Exception as exc:  # mjml-python raises plain exceptions with MRML's message
            raise TemplateError(f"MJML could not compile the email: {exc}", path=HTML_TEMPLATE, hint="check the MJML tags in your templates/email.mjml.j2") from None

    def _inline(self, html: str) -> str:
        from newsletter.mail.inline import inline_css  # premailer and cssutils: only when an email is rendered

        out = inline_css(html)
        # lxml drops the doctype mjml wrote; without it browsers use quirks mode.
        if not out.lstrip()[:9].lower().startswith("<!doctype"):  # not .lower() of the whole page
            out = "<!doctype html>\n" + out
        return out


def check_footer(html: str, text: str, unsubscribe_url: str, postal_address: str) -> None:
    """Refuse an email whose HTML or text part lacks the unsubscribe link or the postal address.

    Checked on the finished output, whatever the content and templates: oversized
    text once made premailer/lxml cut the HTML silently, footer included, and a
    copied template can drop it.  Compared with entities decoded and spaces
    collapsed, since the HTML joins the address lines with commas and may escape them.
    """
    wanted = {
        "unsubscribe link": [tuple(unsubscribe_url.split())],
        "postal address": [tuple(line.split()) for line in postal_address.splitlines() if line.strip()],
    }
    for part, page in (("HTML", FooterSearch(html, is_html=True)), ("plain-text", FooterSearch(text, is_html=False))):
        missing = [what for what, needles in wanted.items() if not all(page.contains(words) for words in needles)]
        if missing:
            raise TemplateError(
                f"the rendered {part} part has no {' and no '.join(missing)}; every email must carry both (anti-spam law, and readers' way out)",
                path=USER_TEMPLATES_DIR,
                hint="keep the footer of the packaged template in your copy, or delete the copy to use the default; nothing was built or sent",
            )


FOOTER_TAIL_CHARS = 4096
"""How much of an HTML page's end ``FooterSearch`` decodes first: the footer ends the packaged templates."""


class FooterSearch:
    """Searches of one finished page, as a reader sees its text, for the footer's words.

    What ``contains_collapsed(html.unescape(page), words)`` answers (or without unescaping,
    for the plain text), looking where the footer is first: decoding the entities of a whole
    25 KB HTML page and searching it from the start took more than the rest of the check,
    while the footer sits in its last kilobyte.  So the search starts at the page's end, and
    of an HTML page only the tail is decoded unless the words are not in it.  A match in the
    tail is a match in the page, so the answer is the whole page's either way: the tail
    starts at a ``<``, and no character reference ``html.unescape`` decodes contains one, so
    the tail's decoded text is exactly the end of the page's decoded text
    (tests/test_render_fast.py checks both against the plain search with hypothesis).
    """

    def __init__(self, page: str, *, is_html: bool, tail_chars: int = FOOTER_TAIL_CHARS) -> None:
        self._page = page
        self._whole: str | None = None if is_html else page  # decoded when first needed
        self._tail: str | None = None
        if is_html:
            start = page.rfind("<", 0, max(len(page) - tail_chars, 0))
            if start > 0:
                self._tail = html_module.unescape(page[start:])

    def contains(self, words: tuple[str, ...]) -> bool:
        """Whether the words, separated by any whitespace, are in the page's text."""
        if self._tail is not None and _found_from_end(self._tail, words):
            return True
        if self._whole is None:
            self._whole = html_module.unescape(self._page)
        return _found_from_end(self._whole, words)


def _found_from_end(text: str, words: tuple[str, ...]) -> bool:
    """``contains_collapsed(text, words)``, trying the places the first word is at from the last one.

    The pattern can only match where its first word starts, so trying each such place
    (overlapping ones too) is the same search, in the opposite order.
    """
    if not words:
        return True
    pattern, first = collapsed_pattern(words), words[0]
    at = text.rfind(first)
    while at >= 0:
        if pattern.match(text, at):
            return True
        at = text.rfind(first, 0, at + len(first) - 1)
    return False


def contains_collapsed(text: str, words: list[str] | tuple[str, ...]) -> bool:
    """Whether ``" ".join(words)`` is in ``" ".join(text.split())``, without building the latter."""
    return collapsed_pattern(tuple(words)).search(text) is not None


@functools.lru_cache(maxsize=64)
def collapsed_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """A regular expression finding ``words`` in a text whatever whitespace separates them.

    Any run of whitespace between the words (``\\s`` is ``str.split``'s whitespace): collapsing
    a whole page's whitespace cost more than the search.  No words: matches anywhere.
    Kept compiled: the same few (the config's footer) are looked for in every email.
    """
    return re.compile(r"\s+".join(map(re.escape, words)))


def render_template(env: jinja2.Environment, name: str, context: dict[str, Any], *, copies: str) -> str:
    """Render one template of a page (not the email), Jinja's errors turned into a TemplateError
    naming the template file and line; ``copies`` is where the user's overrides live (for the hint)."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", path=exc.filename or name, line=exc.lineno, hint=f"fix the template, or delete your copy in {copies} to use the default") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} not found", path=name, hint=f"a template your {copies} templates include is missing") from None
    except jinja2.UndefinedError as exc:
        path, line = _template_frame(exc, name)
        raise TemplateError(f"template error: {exc.message}", path=path, line=line, hint=f"check the variable's spelling in your {copies} copy, or delete it to use the default") from None


def _template_frame(exc: BaseException, fallback: str) -> tuple[str, int | None]:
    """The template file and line where a render error happened (Jinja rewrites tracebacks so)."""
    found: tuple[str, int | None] = (fallback, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith((".j2", ".css", ".html", ".txt")):
            found = (frame.filename, frame.lineno)
    return found


def _tidy_text(text: str) -> str:
    """Collapse runs of blank lines the template's control blocks leave behind."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


WrapFilter = Callable[..., str]
