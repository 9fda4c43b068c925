"""Inline the email's CSS into style attributes: premailer, with what it does on every call cached.

premailer is the inliner; ``inline_css`` runs the same steps in the same order
with the options ``PREMAILER_OPTIONS`` fixes, and differs only in what it
remembers between calls, so its output is byte-identical (tests/test_render.py
compares it with plain premailer).  Hand-written for speed (issue 15):

- premailer keeps parsed stylesheets, compiled selectors and parsed inline
  styles in one shared cache of 128 entries, smaller than one issue's distinct
  inline styles (mjml writes one per element), so it re-parsed most of them
  with cssutils on every call, validating each property against cssutils'
  profiles, whose regular expressions are compiled on first use (about half of
  a fresh process's first build).  Here each has its own cache, and the
  parsing does not validate: cssutils' validation only logs, it changes no value.
- it re-serialised every rule of each ``<style>`` block with cssutils on every
  call (3.5 of its 5 ms for one issue); the rules depend only on the CSS text
  and its position, the same in every issue.
- it ran one cssselect XPath query per rule over the whole document, each testing
  every element's class with normalize-space and concat (half of its remaining
  time).  Selectors made of tags, #ids, .classes and descendant combinators
  (all the templates' stylesheets use) are matched here in one walk of the
  tree, all rules at once (``_Rules``): what an element matches depends only on
  its tag, class, id and what its ancestors matched, worked out once per
  stylesheet for each such combination met; any other selector still goes to
  cssselect.  And the merged style of an element, with the width/bgcolor/align
  attributes premailer derives from it, is a function of strings (the
  element's own style and the rules it matched) kept per distinct input, like
  the parsed styles above.  tests/test_render.py and tests/test_inline.py
  check both against premailer on random documents.
- lxml's calls are most of what is left, so the walk makes few: bytes for
  attribute names and ASCII values (a str is encoded and checked on every
  call), no ``getparent()`` per element, no ``set`` that changes nothing, and
  the page serialised straight to str (premailer encodes to UTF-8, then decodes).
- what it derives from text alone (each ``<style>`` block's rules and
  left-over CSS, each selector's XPath, each declaration list's pairs, each
  merged style) is also kept in the user's cache (``newsletter.mail.usercache``,
  one JSON file named after the versions of premailer, cssutils, cssselect,
  lxml, the package and this module's source), because a fresh process spent
  a third of a ``newsletter build`` on it, the same work every time; it is
  read once, written back when something new was derived, and ignored when
  unreadable.  premailer and cssutils are imported only to derive something
  not found there (a fifth of a build with a warm cache was their import), so
  the few steps of premailer's ``transform`` that run on every call are
  written out here, its constants and defaults copied (``_FILTER_PSEUDOSELECTORS``,
  ``_ATTRIBUTE_NAME``; tests/test_render.py checks them against premailer's).
- importing premailer imports ``requests`` (and cssutils ``urllib.request``
  and ``importlib.metadata``), used only to fetch remote stylesheets, which
  ``allow_network=False`` never does: they are imported lazily, on first use.
"""

from __future__ import annotations

import importlib
import json
import operator
import re
import sys
import types
import warnings
from collections import OrderedDict
from typing import Any, Callable


class _Deferred(types.ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet: the first attribute asked of it
    imports the real module, which then replaces it.  (``importlib.util.LazyLoader`` does not
    do here: an ``import`` statement reads the module's ``__spec__``, which loads it.)"""

    def __getattr__(self, attribute: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attribute)


def _import_lazily(name: str) -> None:
    """Defer importing ``name`` until something uses it; a module already imported is left alone."""
    if name in sys.modules:
        return
    module = sys.modules[name] = _Deferred(name)
    parent, _, child = name.rpartition(".")
    if parent:  # what `import a.b` leaves behind, so `a.b` works after `import a`
        setattr(importlib.import_module(parent), child, module)


from lxml import etree  # noqa: E402

from newsletter import __version__  # noqa: E402
from newsletter.mail import usercache  # noqa: E402

# strip_important=False keeps the @media rules working: premailer's default
# would remove the !important that lets them beat the inlined styles.
PREMAILER_OPTIONS: dict[str, Any] = {
    "keep_style_tags": False,
    "strip_important": False,
    "disable_validation": True,
    "allow_network": False,
    "allow_loading_external_files": False,
    "cssutils_logging_level": 50,  # logging.CRITICAL: logging itself is imported only with cssutils
    "disable_link_rewrites": True,
}
# premailer's, for the steps written out here (checked against premailer by tests/test_render.py)
_FILTER_PSEUDOSELECTORS = [":last-child", ":first-child", ":nth-child"]
_ATTRIBUTE_NAME = "data-premailer"
_STYLE_CACHE_SIZE = 64
_CACHE_SIZE = 4096  # distinct selectors / inline styles kept; cleared when full


def _bounded(cache: dict, key: Any, make: Callable[[], Any], size: int = _CACHE_SIZE) -> Any:
    found = cache.get(key)
    if found is None:
        if len(cache) >= size:  # a long preview session editing the templates
            cache.clear()
        found = cache[key] = make()
    return found


_premailer: Any = None


def _premailer_module() -> Any:
    """premailer (and with it cssutils), imported on the first thing the caches do not know."""
    global _premailer
    if _premailer is None:
        for name in ("requests", "urllib.request", "importlib.metadata"):
            _import_lazily(name)
        import logging

        import premailer

        # cssutils logs (to stderr) every property it does not know; none of that is the reader's business
        logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
        _premailer = premailer
    return _premailer


_steps: Any = None


def _premailer_steps() -> Any:
    """A premailer with ``PREMAILER_OPTIONS``, whose steps derive what the caches lack."""
    global _steps
    if _steps is None:
        _steps = _premailer_module().Premailer("", **PREMAILER_OPTIONS)
    return _steps


def _parse_style(text: str) -> Any:
    """cssutils' parse of a declaration list, without validation; under premailer's lock
    (its issue #65: cssutils is not thread-safe)."""
    premailer = _premailer_module()
    import cssutils

    with premailer.merge_style.csstext_to_pairs._lock:
        return cssutils.parseStyle(text, validate=False)


_selectors: dict[str, etree.XPath] = {}
# Derived from text alone, so also kept in the user's cache (``_load_derived``, ``_save_derived``):
_xpaths: dict[str, str] = {}
_pairs: dict[str, list[tuple[str, str]]] = {}
_floats: dict[str, str] = {}
_style_blocks: dict[str, tuple[list[tuple[tuple[int, ...], str, str]], str | None]] = {}
_merges: dict[tuple[str, tuple[tuple[str, str], ...], bool], tuple[str, list[tuple[str, str]]]] = {}
_loaded = False
_new = False  # something derived since the cache was read


def _derive(cache: dict, key: Any, make: Callable[[], Any], size: int = _CACHE_SIZE) -> Any:
    """``_bounded``, noting when something new was derived (so the user's cache is written)."""
    global _new
    found = cache.get(key)
    if found is None:
        found = _bounded(cache, key, make, size)
        _new = True
    return found


def _select(selector: str) -> etree.XPath:
    """A compiled selector (cssselect translates it to XPath: the costly part, kept)."""

    def compile_() -> etree.XPath:
        path = _derive(_xpaths, selector, lambda: _css_to_xpath(selector))
        if "__lxml_internal_css:" in path:  # :contains(): a function lxml.cssselect registers
            import lxml.cssselect  # noqa: F401
        return etree.XPath(path)

    return _bounded(_selectors, selector, compile_)


def _css_to_xpath(selector: str) -> str:
    from lxml.cssselect import CSSSelector

    return CSSSelector(selector).path


def _format_value(prop: Any) -> str:
    value = prop.propertyValue.cssText.strip()
    return value + " !important" if prop.priority == "important" else value


def csstext_to_pairs(csstext: str) -> list[tuple[str, str]]:
    """premailer's ``merge_style.csstext_to_pairs``: the (name, value) pairs of a declaration list."""

    def parse() -> list[tuple[str, str]]:
        return [(prop.name.strip(), _format_value(prop)) for prop in _parse_style(csstext)]

    return _derive(_pairs, csstext, parse)


def _float_of(style: str) -> str:
    def parse() -> str:
        return _parse_style(style).float

    return _derive(_floats, style, parse)


def merge_styles(inline_style: str, new_styles: list, classes: list, remove_unset_properties: bool = False) -> str:
    """premailer's ``merge_style.merge_styles``, with the cached, non-validating parse above."""
    styles: OrderedDict[str, OrderedDict[str, str]] = OrderedDict([("", OrderedDict())])
    for pc in set(classes):  # premailer's order, kept exactly
        styles[pc] = OrderedDict()
    for i, style in enumerate(new_styles):
        for k, v in style:
            styles[classes[i]][k] = v
    if inline_style:  # the element's own style always wins
        for k, v in csstext_to_pairs(inline_style):
            styles[""][k] = v
    normal_styles = []
    pseudo_styles = []
    for pseudoclass, kv in styles.items():
        if remove_unset_properties:
            kv = OrderedDict((k, v) for (k, v) in kv.items() if not v.lower() == "unset")
        if not kv:
            continue
        if pseudoclass:
            pseudo_styles.append("%s{%s}" % (pseudoclass, "; ".join("%s:%s" % (k, v) for k, v in kv.items())))
        else:
            normal_styles.append("; ".join("%s:%s" % (k, v) for k, v in kv.items()))
    if pseudo_styles:
        all_styles = (["{%s}" % "".join(normal_styles)] + pseudo_styles) if normal_styles else pseudo_styles
    else:
        all_styles = normal_styles
    return " ".join(all_styles).strip()


# A selector made only of tags, #ids and .classes joined by spaces (descendant combinators):
# what the templates' stylesheets use.  Matched here in one walk of the tree (``_Rules``) instead
# of one XPath query per rule, each testing every element's class with normalize-space and concat
# (0.45 of the inliner's 1 ms for one issue).  Anything else goes to cssselect's XPath.
_COMPOUND = re.compile(r"([A-Za-z][A-Za-z0-9-]*)?((?:[.#]-?[_A-Za-z][_A-Za-z0-9-]*)*)")
_PART = re.compile(r"([.#])(-?[_A-Za-z][_A-Za-z0-9-]*)")
_SELECTOR_SPACE = re.compile(r"[ \t\n\r\f]+")
_XPATH_SPACE = re.compile(r"[ \t\n\r]+")  # XPath's normalize-space, which cssselect's class test uses

# (tag or None, id values, class names), rightmost compound first
_Plan = tuple[tuple[str | None, tuple[str, ...], frozenset[str]], ...]
_plans: dict[str, _Plan | None] = {}


def _plan(selector: str) -> _Plan | None:
    """The selector as compounds to match right to left, or None when it is not that simple."""

    def make() -> _Plan | None:
        compounds = []
        for text in _SELECTOR_SPACE.split(selector.strip(" \t\n\r\f")):
            match = _COMPOUND.fullmatch(text)
            if not text or match is None:
                return None
            parts = _PART.findall(match.group(2))
            compounds.append((match.group(1), tuple(v for k, v in parts if k == "#"), frozenset(v for k, v in parts if k == ".")))
        return tuple(reversed(compounds))

    found = _plans.get(selector, False)
    if found is False:
        if len(_plans) >= _CACHE_SIZE:
            _plans.clear()
        found = _plans[selector] = make()
    return found  # type: ignore[return-value]


_class_sets: dict[str, frozenset[str]] = {}


def _class_names(value: str) -> frozenset[str]:
    """The names in a class attribute, split where XPath's normalize-space splits (kept per value)."""
    known = _class_sets.get(value)
    if known is not None:
        return known

    def split() -> frozenset[str]:
        if value.isascii() and value.isprintable():  # no tabs or newlines, nor str.split's other spaces
            return frozenset(value.split(" "))
        return frozenset(_XPATH_SPACE.split(value))

    return _bounded(_class_sets, value, split)


_Compound = tuple[str | None, tuple[str, ...], frozenset[str]]
_NO_CLASSES: frozenset[str] = frozenset()
_State = frozenset[tuple[int, int]]  # the (plan's number, compound's position) an element's ancestors reached
_NO_STATE: _State = frozenset()


def _compound_matches(compound: _Compound, tag: str, ident: str | None, classes: frozenset[str]) -> bool:
    """Whether an element with this tag, id and class names matches one compound selector
    (cssselect's tests: the tag's exact name, ``@id = 'x'`` for each #x, each .name a class)."""
    wanted_tag, ids, names = compound
    if wanted_tag is not None and tag != wanted_tag:
        return False
    if ids and any(ident != wanted for wanted in ids):
        return False
    return not names or names <= classes


# What to set on an element (attribute, value), in premailer's order, per value of its style attribute
_Actions = dict[str | None, list[tuple[bytes, bytes | str]]]


class _Rules:
    """The rules of one set of ``<style>`` blocks as premailer applies them, and their matching
    in one walk of the tree.

    A rule made of ``_plan``'s compounds matches an element when the element matches the last
    compound and its ancestors match the others, in order.  So what an element matches depends
    only on its tag, class attribute and id, and on which leading parts of the rules its
    ancestors have matched (its parent's *state*).  Each (state, tag, class, id) met is worked
    out once, from the selectors alone, into the rules the element matches and the state its
    children start from; most elements of an email repeat a few of them.  Rules of other
    selectors are still cssselect's XPath queries, their matches merged in rule order.
    """

    def __init__(self, prepared: list[tuple[str, str, str]]) -> None:
        self.prepared = prepared  # (selector, declarations, pseudo-class), most specific last
        self._plans: list[tuple[int, tuple[_Compound, ...]]] = []  # (rule's index, compounds left to right)
        self._others: list[tuple[int, str]] = []  # (rule's index, selector) for cssselect
        for index, (selector, _, _) in enumerate(prepared):
            plan = _plan(selector)
            if plan is None:
                self._others.append((index, selector))
            else:
                self._plans.append((index, tuple(reversed(plan))))
        self._reads_ids = any(ids for _, compounds in self._plans for _, ids, _ in compounds)
        self._reads_classes = any(names for _, compounds in self._plans for _, _, names in compounds)
        # a state: the (plan's number, compound's position) reached by an element or its ancestors,
        # the frozenset itself (one object per state met: ``_states``).  Not a number given per
        # state met: walks in other threads share these tables, and a number taken as len(list)
        # before the append could be another thread's state by then (found by review).
        self._states: dict[_State, _State] = {_NO_STATE: _NO_STATE}
        self._steps: dict[tuple[_State, str, str | None, str | None], tuple[_State, tuple[int, ...], _Actions | None]] = {}
        self._actions: dict[tuple[tuple[int, ...], bool], _Actions] = {}

    def _step(self, key: tuple[_State, str, str | None, str | None], steps: dict,
              states: dict[_State, _State]) -> tuple[_State, tuple[int, ...], _Actions | None]:
        """For an element whose parent's state, tag, class attribute and id are ``key``: the state
        its children start from, the rules it matches (in order) and what they set (kept in the
        walk's tables)."""
        reached, tag, class_value, ident = key
        classes = _class_names(class_value) if class_value else _NO_CLASSES
        matched = []
        children_reach = set(reached)
        for number, (index, compounds) in enumerate(self._plans):
            last = len(compounds) - 1
            for position, compound in enumerate(compounds):
                if (position == 0 or (number, position - 1) in reached) and _compound_matches(compound, tag, ident, classes):
                    if position == last:
                        matched.append(index)
                    else:
                        children_reach.add((number, position))
        children_state = frozenset(children_reach)
        child = states.setdefault(children_state, children_state)  # one object per state (atomic)
        rules = tuple(matched)
        step = steps[key] = (child, rules, self._actions_of(rules, tag == "img"))
        return step

    def _actions_of(self, rules: tuple[int, ...], is_img: bool) -> _Actions | None:
        """The (shared) table of what these rules set, per style attribute; None when nothing can be set."""
        if not rules and not is_img:
            return None
        return _bounded(self._actions, (rules, is_img), dict)

    def _work_out(self, rules: tuple[int, ...], is_img: bool, style: str | None) -> list[tuple[bytes, bytes | str]]:
        """premailer's changes to an element with these rules and this style attribute: the merged
        style and the attributes derived from it, then an image's align from its float."""
        changes: list[tuple[str, str]] = []
        final_style = ""
        if rules:
            final_style, attributes = _merged(style or "", tuple(self.prepared[i][1:] for i in rules), True)
            if final_style and final_style != style:  # setting the same value changes nothing
                changes.append(("style", final_style))
            changes.extend(attributes)
        if is_img:
            # premailer's default align_floating_images: Outlook understands align=, not CSS floats
            style_now = final_style or style
            side = _float_of(style_now) if style_now is not None else None
            if side in ("right", "left"):
                changes.append(("align", side))
        # as bytes where lxml takes them as they are (ASCII): it encodes and checks a str on every call
        return [(name.encode("ascii"), value.encode("ascii") if value.isascii() else value) for name, value in changes]

    def apply(self, page: Any) -> None:
        """Inline the rules into the elements of ``page`` (premailer's matching, merging and
        image alignment)."""
        if len(self._steps) >= _CACHE_SIZE:  # new tables: a walk under way (another thread's) keeps its own
            self._steps, self._states = {}, {_NO_STATE: _NO_STATE}
        steps, states = self._steps, self._states
        others: dict[Any, list[int]] = {}
        for index, selector in self._others:
            for element in _select(selector)(page):
                others.setdefault(element, []).append(index)
        step_for, actions_of, work_out = self._step, self._actions_of, self._work_out
        reads_ids, reads_classes = self._reads_ids, self._reads_classes
        # The parent's state, for the next element in document order; and where the innermost
        # subtree whose state differs from its parent's ends (the first element after it), with
        # the enclosing ones' on a stack: no getparent() per element (a new proxy each time).
        state = _NO_STATE
        subtree_end = None
        enclosing: list[tuple[Any, _State]] = []
        for element in page.iter(etree.Element):
            while element is subtree_end:
                subtree_end, state = enclosing.pop()
            tag = element.tag
            # bytes names: lxml encodes a str name on every call
            key = (state, tag, element.get(b"class") if reads_classes else None, element.get(b"id") if reads_ids else None)
            step = steps.get(key)
            if step is None:
                step = step_for(key, steps, states)
            child, rules, actions = step
            if child is not state:  # (an equal state from other tables: a subtree more, the same matches)
                enclosing.append((subtree_end, state))
                subtree_end, state = _following(element), child
            if others:
                more = others.get(element)
                if more is not None:
                    rules = tuple(sorted(rules + tuple(more)))
                    actions = actions_of(rules, tag == "img")
            if actions is not None:
                style = element.get(b"style")
                changes = actions.get(style)
                if changes is None:
                    changes = _bounded(actions, style, lambda: work_out(rules, tag == "img", style))
                for name, value in changes:
                    element.set(name, value)


def _following(element: Any) -> Any:
    """The first element after ``element`` and its descendants in document order (the next one
    ``iter`` yields outside it), or None."""
    node = element
    while node is not None:
        sibling = node.getnext()
        while sibling is not None:
            if isinstance(sibling.tag, str):  # not a comment or processing instruction
                return sibling
            sibling = sibling.getnext()
        node = node.getparent()
    return None


def _merged(inline_style: str, matched: tuple[tuple[str, str], ...], remove_unset: bool) -> tuple[str, list[tuple[str, str]]]:
    """An element's style attribute after the rules it matches ((style, pseudo-class) in order), and
    the HTML attributes (width, bgcolor, ...) premailer derives from it: strings in, strings out,
    the same for every element of the templates that has this inline style and these rules."""
    key = (inline_style, matched, remove_unset)
    known = _merges.get(key)
    if known is not None:
        return known

    def merge() -> tuple[str, list[tuple[str, str]]]:
        final_style = merge_styles(inline_style, [csstext_to_pairs(style) for style, _ in matched], [c for _, c in matched],
                                   remove_unset_properties=remove_unset)
        probe = etree.Element("probe")
        _premailer_steps()._style_to_basic_html_attributes(probe, final_style, force=True)
        return final_style, list(probe.attrib.items())

    return _derive(_merges, key, merge)


def _style_block(css_body: str, index: int) -> tuple[list, str | None]:
    """What the inliner needs of one ``<style>`` block: its rules, and the CSS left in the block
    (media queries, pseudo-classes), None when nothing is left and the block goes."""

    def derive() -> tuple[list, str | None]:
        steps = _premailer_steps()
        rules, leftover = steps._parse_style_rules(css_body, index)
        return list(rules), steps._css_rules_to_string(leftover) if leftover else None

    return _derive(_style_blocks, f"{index}\n{css_body}", derive, _STYLE_CACHE_SIZE)


_prepared_rules: dict[tuple[int, ...], tuple[list, _Rules]] = {}


def _prepared(sheets: list[list]) -> _Rules:
    """The rules of these ``<style>`` blocks' parsed rule lists (the cached ones, kept alive here)
    as premailer applies them: sorted by specificity, each as (selector to match, declarations,
    pseudo-class or "")."""
    key = tuple(map(id, sheets))
    known = _prepared_rules.get(key)
    if known is not None and all(a is b for a, b in zip(known[0], sheets)):
        return known[1]
    rules = [rule for these in sheets for rule in these]
    rules.sort(key=operator.itemgetter(0))  # (specificity, selector, style): most specific last
    prepared = []
    for _, selector, style in rules:
        new_selector, class_ = selector, ""
        if ":" in selector:
            new_selector, class_ = selector.split(":", 1)
            class_ = ":" + class_
        if class_ in _FILTER_PSEUDOSELECTORS or class_.startswith(":nth-child"):
            class_ = ""
        else:
            selector = new_selector
        prepared.append((selector, style, class_))
    if len(_prepared_rules) >= _STYLE_CACHE_SIZE:
        _prepared_rules.clear()
    found = _Rules(prepared)
    _prepared_rules[key] = (sheets, found)
    return found


# One parser for every call: a new one sets up libxml2's parser context on its first document
# (lxml locks a parser while it parses, so threads share it safely).  No table of the ids:
# nothing here looks elements up by id (cssselect's #x is @id = 'x'), and it is not serialised.
_HTML_PARSER = etree.HTMLParser(collect_ids=False)


def _transform(html: str, pretty_print: bool = True) -> str:
    """premailer's ``transform`` with ``PREMAILER_OPTIONS``: the HTML with its ``<style>`` rules
    moved into style attributes."""
    stripped = html.strip()
    tree = etree.fromstring(stripped, _HTML_PARSER).getroottree()
    page = tree.getroot()
    root = tree if stripped.startswith(tree.docinfo.doctype) else page  # lxml adds a doctype
    if next(page.iter("head"), None) is None:
        _select("body")(tree)[0].getparent().insert(0, etree.Element("head"))

    sheets: list = []
    for index, element in enumerate([e for e in page.iter("style") if _applies(e)]):
        these_rules, leftover_css = _style_block(element.text, index)
        sheets.append(these_rules)
        if leftover_css is not None:
            element.text = leftover_css
        else:
            element.getparent().remove(element)

    _prepared(sheets).apply(page)
    # straight to str: the same text as premailer's UTF-8 bytes decoded (tests/test_render.py), one copy less
    return etree.tostring(root, method="html", pretty_print=pretty_print, encoding="unicode")


def _applies(element: Any) -> bool:
    """Whether a ``<style>`` element is inlined (premailer's media and data-premailer checks)."""
    media = element.attrib.get("media")
    if media and media not in ("all", "screen"):
        return False
    data_attribute = element.attrib.get(_ATTRIBUTE_NAME)
    if data_attribute:
        if data_attribute == "ignore":
            del element.attrib[_ATTRIBUTE_NAME]
            return False
        warnings.warn("Unrecognized %s attribute (%r)" % (_ATTRIBUTE_NAME, data_attribute))
    return True


_name: str | None = None


def _cache_name() -> str:
    """The user's cache file for what this version of the inliner derives."""
    global _name
    if _name is None:
        _name = "css-" + usercache.fingerprint(
            __version__, usercache.source_digest(__file__), etree.LXML_VERSION,
            *(usercache.installed(name) for name in ("premailer", "cssutils", "cssselect", "lxml")),
        ) + ".json"
    return _name


def _load_derived() -> None:
    """Fill the caches above from the user's cache, once; a file that is unreadable or not of the
    expected shape is ignored whole (then the next save replaces it)."""
    global _loaded, _new
    _loaded = True
    payload = usercache.read(_cache_name())
    if payload is None:
        return
    try:
        data = json.loads(payload)
        xpaths, floats = dict(data["xpaths"]), dict(data["floats"])
        pairs = {k: [(name, value) for name, value in v] for k, v in data["pairs"].items()}
        blocks = {k: ([(tuple(spec), selector, bulk) for spec, selector, bulk in rules], leftover)
                  for k, (rules, leftover) in data["styles"].items()}
        merges = {(style, tuple((text, class_) for text, class_ in matched), unset): (final, [(n, v) for n, v in attributes])
                  for style, matched, unset, final, attributes in data["merges"]}
        texts = [*xpaths.values(), *floats.values(), *(x for v in pairs.values() for pair in v for x in pair)]
        for rules, leftover in blocks.values():
            texts.extend(x for _, selector, bulk in rules for x in (selector, bulk))
            texts.append("" if leftover is None else leftover)
        for (style, matched, unset), (final, attributes) in merges.items():
            texts.extend((style, final, *(x for pair in matched for x in pair), *(x for pair in attributes for x in pair)))
        if not (all(isinstance(x, str) for x in texts)
                and all(type(n) is int for rules, _ in blocks.values() for rule in rules for n in rule[0])
                and all(type(unset) is bool for _, _, unset in merges)):
            return
    except (ValueError, TypeError, KeyError, AttributeError):
        return
    _xpaths.update(xpaths)
    _pairs.update(pairs)
    _floats.update(floats)
    _style_blocks.update(blocks)
    _merges.update(merges)
    _new = False


def _save_derived() -> None:
    """Write what is known to the user's cache (after something new was derived)."""
    global _new
    _new = False
    data = {  # copies first: another thread (the preview server's) may be adding
        "xpaths": dict(_xpaths), "pairs": dict(_pairs), "floats": dict(_floats), "styles": dict(_style_blocks),
        "merges": [[style, matched, unset, final, attributes] for (style, matched, unset), (final, attributes) in list(_merges.items())],
    }
    usercache.write(_cache_name(), json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def inline_css(html: str) -> str:
    """The HTML with its CSS inlined by premailer (``PREMAILER_OPTIONS``)."""
    if not _loaded:
        _load_derived()
    out = _transform(html)
    if _new:
        _save_derived()
    return out
