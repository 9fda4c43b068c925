"""Read YAML keeping the line and column of every value.

PyYAML's composed node tree knows where each node starts; we construct the
plain Python data as usual and record ``path -> (line, column)`` beside it, so
validators can point at the exact spot without the model carrying positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from newsletter.errors import NewsletterError, Problem

Key = tuple[Any, ...]


@dataclass
class YamlSource:
    """Parsed YAML data plus the 1-based position of every key's value."""

    path: str
    data: Any
    positions: dict[Key, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Key, tuple[int, int]] = field(default_factory=dict)

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


def _record(node: yaml.Node, key: Key, src: YamlSource) -> None:
    src.positions[key] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k_node, v_node in node.value:
            name = k_node.value
            here = (k_node.start_mark.line + 1, k_node.start_mark.column + 1)
            if key + (name,) in src.key_positions:
                # YAML requires unique keys; PyYAML would silently keep the last value and lose the first
                raise NewsletterError(
                    f"'{name}' appears twice here (first on line {src.key_positions[key + (name,)][0]}); the second would silently replace the first",
                    path=src.path, line=here[0], column=here[1], hint="merge the two or rename one",
                )
            src.key_positions[key + (name,)] = here
            _record(v_node, key + (name,), src)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record(item, key + (i,), src)


# libyaml's parser is several times faster; its error messages differ from
# PyYAML's, so a file it rejects is parsed again in Python for the message.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def parse_yaml(text: str, path: str) -> YamlSource:
    """Parse YAML text; a syntax error becomes a NewsletterError at its mark."""
    if _FAST_LOADER is not None:
        fast = _FAST_LOADER(text)
        try:
            node = fast.get_single_node()
            data = fast.construct_document(node) if node is not None else None
        except yaml.YAMLError:
            pass
        else:
            src = YamlSource(path=path, data=data)
            if node is not None:
                _record(node, (), src)
            return src
        finally:
            fast.dispose()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}, {what}"
        raise NewsletterError(
            f"YAML syntax error: {what}",
            path=path,
            line=line,
            column=col,
            hint="check indentation and quoting on this line and the one above; quote text containing ': ' or starting with a special character",
        ) from None
    except yaml.YAMLError as exc:
        raise NewsletterError(f"YAML error: {exc}", path=path) from None
    finally:
        loader.dispose()
    src = YamlSource(path=path, data=data)
    if node is not None:
        _record(node, (), src)
    return src


def read_yaml(path: Path, display: str | None = None) -> YamlSource:
    """Read and parse a YAML file, with errors that name the file."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NewsletterError("file not found", path=name, hint="check the path, or create it with `newsletter new YYYY-MM`") from None
    except UnicodeDecodeError as exc:
        raise NewsletterError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=name, hint="save the file as UTF-8") from None
    except OSError as exc:
        raise NewsletterError(f"cannot read: {exc.strerror}", path=name) from None
    return parse_yaml(text, name)
