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
  (all the templates' stylesheets use) are matched here from one index of the
  tree built per call; any other selector still goes to cssselect.  And the
  merged style of an element, with the width/bgcolor/align attributes premailer
  derives from it, is a function of strings (the element's own style and the
  rules it matched) kept per distinct input, like the parsed styles above.
  tests/test_render.py checks both against premailer on random documents.
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
# what the templates' stylesheets use.  Matched here from one walk of the tree instead of one
# XPath query per rule, each testing every element's class with normalize-space and concat
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


class _Index:
    """One document's elements by class and id (and, when asked, by tag), in document order,
    for ``_plan``'s selectors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self._by_tag: dict[str, list[Any]] = {}
        self._by_id: dict[str, list[Any]] = {}
        self.by_class: dict[str, list[Any]] = {}
        self.classes: dict[Any, frozenset[str]] = {}
        by_class, by_id, classes = self.by_class, self._by_id, self.classes
        for element in page.iter(etree.Element):
            value = element.get("class")
            if value:
                names = classes[element] = _class_names(value)
                for name in names:
                    found = by_class.get(name)
                    if found is None:
                        by_class[name] = [element]
                    else:
                        found.append(element)
            ident = element.get("id")
            if ident is not None:
                found = by_id.get(ident)
                if found is None:
                    by_id[ident] = [element]
                else:
                    found.append(element)

    def by_tag(self, tag: str) -> list[Any]:
        found = self._by_tag.get(tag)
        if found is None:
            found = self._by_tag[tag] = list(self.page.iter(tag))
        return found

    def by_id(self, ident: str) -> list[Any]:
        return self._by_id.get(ident, [])

    def _matches(self, element: Any, compound: tuple[str | None, tuple[str, ...], frozenset[str]]) -> bool:
        tag, ids, classes = compound
        if tag is not None and element.tag != tag:
            return False
        if ids and any(element.get("id") != ident for ident in ids):
            return False
        return not classes or classes <= self.classes.get(element, frozenset())

    def _matching(self, compound: tuple[str | None, tuple[str, ...], frozenset[str]]) -> list[Any]:
        """The elements one compound selector matches, in document order."""
        tag, ids, classes = compound
        if ids:
            candidates = self.by_id(ids[0])
        elif classes:
            candidates = min((self.by_class.get(name, ()) for name in classes), key=len)
        elif tag is not None:
            return self.by_tag(tag)
        else:
            return []
        matches = self._matches
        return [element for element in candidates if matches(element, compound)]

    def select(self, selector: str) -> list[Any]:
        """The elements ``selector`` matches, in document order (what ``CSSSelector`` returns)."""
        plan = _plan(selector)
        if plan is None:
            return _select(selector)(self.page)
        # left to right: the elements inside a match of every compound so far
        within: set[Any] | None = None
        for compound in reversed(plan[1:]):
            inside: set[Any] = set()
            for element in self._matching(compound):
                if (within is None or element in within) and element not in inside:
                    inside.update(element.iterdescendants(etree.Element))
            if not inside:
                return []
            within = inside
        found = self._matching(plan[0])
        return found if within is None else [element for element in found if element in within]


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


_prepared_rules: dict[tuple[int, ...], tuple[list, list[tuple[str, str, str]]]] = {}


def _prepared(sheets: list[list]) -> list[tuple[str, str, str]]:
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
    _prepared_rules[key] = (sheets, prepared)
    return prepared


def _transform(html: str, pretty_print: bool = True) -> str:
    """premailer's ``transform`` with ``PREMAILER_OPTIONS``: the HTML with its ``<style>`` rules
    moved into style attributes."""
    stripped = html.strip()
    tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
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

    found = _Index(page)
    elements: dict[int, tuple[Any, list[tuple[str, str]]]] = {}
    for selector, style, class_ in _prepared(sheets):
        for item in found.select(selector):
            entry = elements.get(id(item))
            if entry is None:
                entry = elements[id(item)] = (item, [])
            entry[1].append((style, class_))
    for item, matched in elements.values():
        # premailer's defaults: remove_unset_properties, no disable_basic_attributes
        final_style, attributes = _merged(item.get("style", ""), tuple(matched), True)
        if final_style:
            item.set("style", final_style)
        for name, value in attributes:  # premailer's _style_to_basic_html_attributes(force=True)
            item.set(name, value)

    # premailer's default align_floating_images: Outlook understands align=, not CSS floats
    for item in page.iter("img"):
        style = item.get("style")
        side = _float_of(style) if style is not None else None
        if side in ("right", "left"):
            item.attrib["align"] = side
    return etree.tostring(root, method="html", pretty_print=pretty_print, encoding="utf-8").decode("utf-8")


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
