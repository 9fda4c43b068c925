"""Inline the email's CSS into style attributes: premailer, with what it does on every call cached.

premailer is the inliner; ``CachingPremailer`` runs the same steps in the same
order with the options ``PREMAILER_OPTIONS`` fixes, and differs only in what it
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
- importing premailer imports ``requests`` (and cssutils ``urllib.request``
  and ``importlib.metadata``), used only to fetch remote stylesheets, which
  ``allow_network=False`` never does: they are imported lazily, on first use.

Options other than ``PREMAILER_OPTIONS``' (network, extra CSS, link rewriting,
...) fall back to premailer's own ``transform``.
"""

from __future__ import annotations

import importlib
import logging
import operator
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


for _name in ("requests", "urllib.request", "importlib.metadata"):
    _import_lazily(_name)

import cssutils  # noqa: E402  (after the lazy imports above)
import premailer  # noqa: E402
from lxml import etree  # noqa: E402
from lxml.cssselect import CSSSelector  # noqa: E402

# strip_important=False keeps the @media rules working: premailer's default
# would remove the !important that lets them beat the inlined styles.
PREMAILER_OPTIONS: dict[str, Any] = {
    "keep_style_tags": False,
    "strip_important": False,
    "disable_validation": True,
    "allow_network": False,
    "allow_loading_external_files": False,
    "cssutils_logging_level": logging.CRITICAL,
    "disable_link_rewrites": True,
}
_STYLE_CACHE_SIZE = 64
_CACHE_SIZE = 4096  # distinct selectors / inline styles kept; cleared when full


def _bounded(cache: dict, key: Any, make: Callable[[], Any]) -> Any:
    found = cache.get(key)
    if found is None:
        if len(cache) >= _CACHE_SIZE:  # a long preview session editing the templates
            cache.clear()
        found = cache[key] = make()
    return found


_selectors: dict[str, CSSSelector] = {}
_pairs: dict[str, list[tuple[str, str]]] = {}
_floats: dict[str, str] = {}


def _select(selector: str) -> CSSSelector:
    """A compiled selector (cssselect translates it to XPath: the costly part)."""
    return _bounded(_selectors, selector, lambda: CSSSelector(selector))


def _format_value(prop: Any) -> str:
    value = prop.propertyValue.cssText.strip()
    return value + " !important" if prop.priority == "important" else value


def csstext_to_pairs(csstext: str) -> list[tuple[str, str]]:
    """premailer's ``merge_style.csstext_to_pairs``: the (name, value) pairs of a declaration list."""

    def parse() -> list[tuple[str, str]]:
        with _CSSUTILS_LOCK:
            return [(prop.name.strip(), _format_value(prop)) for prop in cssutils.parseStyle(csstext, validate=False)]

    return _bounded(_pairs, csstext, parse)


def _float_of(style: str) -> str:
    def parse() -> str:
        with _CSSUTILS_LOCK:
            return cssutils.parseStyle(style, validate=False).float

    return _bounded(_floats, style, parse)


# premailer serialises cssutils use with a lock (its issue #65); share it.
_CSSUTILS_LOCK = premailer.merge_style.csstext_to_pairs._lock


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


class CachingPremailer(premailer.Premailer):
    """premailer, remembering what it made of each ``<style>`` block, selector and inline style."""

    _rules: dict[tuple[str, int], tuple[list, list]] = {}
    _leftover_css: dict[int, tuple[list, str]] = {}

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list, list]:
        key = (css_body, ruleset_index)
        found = self._rules.get(key)
        if found is None:
            if len(self._rules) >= _STYLE_CACHE_SIZE:  # e.g. a long preview session editing the CSS
                self._rules.clear()
                self._leftover_css.clear()
            found = self._rules[key] = super()._parse_style_rules(css_body, ruleset_index)
        return found

    def _css_rules_to_string(self, rules: list) -> str:
        # keyed by identity: these lists are the cached ones above, kept alive here with their text
        found = self._leftover_css.get(id(rules))
        if found is None or found[0] is not rules:
            found = self._leftover_css[id(rules)] = (rules, super()._css_rules_to_string(rules))
        return found[1]

    def _fast_path(self, html: Any, kwargs: dict) -> bool:
        """Whether these options are the ones the steps below implement (else premailer's own)."""
        return (
            html is None and isinstance(self.html, str) and not kwargs and self.method == "html"
            and not (self.preserve_handlebar_syntax or self.keep_style_tags or self.strip_important or self.disable_leftover_css
                     or self.allow_network or self.external_styles or self.css_text or self.remove_classes
                     or self.capitalize_float_margin or (self.base_url and not self.disable_link_rewrites))
        )

    def transform(self, html: Any = None, pretty_print: bool = True, **kwargs: Any) -> Any:
        """premailer's ``transform``: the HTML with its ``<style>`` rules moved into style attributes."""
        if not self._fast_path(html, kwargs):
            return super().transform(html, pretty_print, **kwargs)
        stripped = self.html.strip()
        tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
        page = tree.getroot()
        root = tree if stripped.startswith(tree.docinfo.doctype) else page  # lxml adds a doctype
        if not _select("head")(tree):
            _select("body")(tree)[0].getparent().insert(0, etree.Element("head"))

        rules: list = []
        for index, element in enumerate(e for e in _select("style")(page) if self._applies(e)):
            these_rules, leftover = self._parse_style_rules(element.text, index)
            rules.extend(these_rules)
            if leftover:
                element.text = self._css_rules_to_string(leftover)
            else:
                element.getparent().remove(element)
        rules.sort(key=operator.itemgetter(0))  # (specificity, selector, style): most specific last

        elements: dict[int, dict[str, Any]] = {}
        for _, selector, style in rules:
            new_selector, class_ = selector, ""
            if ":" in selector:
                new_selector, class_ = selector.split(":", 1)
                class_ = ":" + class_
            if class_ in premailer.premailer.FILTER_PSEUDOSELECTORS or class_.startswith(":nth-child"):
                class_ = ""
            else:
                selector = new_selector
            items = _select(selector)(page)
            if len(items):
                processed = csstext_to_pairs(style)
                for item in items:
                    entry = elements.get(id(item))
                    if entry is None:
                        entry = elements[id(item)] = {"item": item, "classes": [], "style": []}
                    entry["style"].append(processed)
                    entry["classes"].append(class_)
        for entry in elements.values():
            item = entry["item"]
            final_style = merge_styles(item.attrib.get("style", ""), entry["style"], entry["classes"],
                                       remove_unset_properties=self.remove_unset_properties)
            if final_style:
                item.attrib["style"] = final_style
            self._style_to_basic_html_attributes(item, final_style, force=True)

        if self.align_floating_images:  # Outlook understands align=, not CSS floats
            for item in page.xpath("//img[@style]"):
                side = _float_of(item.attrib["style"])
                if side in ("right", "left"):
                    item.attrib["align"] = side
        return etree.tostring(root, method="html", pretty_print=pretty_print, encoding="utf-8").decode("utf-8")

    def _applies(self, element: Any) -> bool:
        """Whether a ``<style>`` element is inlined (premailer's media and data-premailer checks)."""
        media = element.attrib.get("media")
        if media and media not in ("all", "screen"):
            return False
        data_attribute = element.attrib.get(self.attribute_name)
        if data_attribute:
            if data_attribute == "ignore":
                del element.attrib[self.attribute_name]
                return False
            warnings.warn("Unrecognized %s attribute (%r)" % (self.attribute_name, data_attribute))
        return True


def inline_css(html: str) -> str:
    """The HTML with its CSS inlined by premailer (``PREMAILER_OPTIONS``)."""
    return CachingPremailer(html, **PREMAILER_OPTIONS).transform()
