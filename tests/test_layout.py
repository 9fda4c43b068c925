"""The package's folders import only downward, and no module imports itself back through others.

Every module under src/newsletter is parsed with `ast` (imports inside functions included, since a
lazy import is still a dependency) and each `newsletter.*` import is placed in its folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "newsletter"

# Which folders each folder may import.  "base" is the shared top level (errors, fsutil,
# atomicdir); senders is the public plug-in package, usable by audience (confirmation emails)
# and delivery; cli sits on top of everything.
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "content": {"base", "content"},
    "mail": {"base", "content", "mail"},
    "senders": {"base", "content", "senders"},
    "audience": {"base", "content", "mail", "senders", "audience"},
    "publish": {"base", "content", "mail", "publish"},
    "delivery": {"base", "content", "mail", "senders", "audience", "publish", "delivery"},
    "cli": {"base", "content", "mail", "senders", "audience", "publish", "delivery", "cli"},
}
FOLDERS = {"content", "mail", "audience", "publish", "delivery", "senders"}
TOP_LEVEL_ON_TOP = {"cli", "__main__"}


def module_name(path: Path) -> str:
    """Dotted module name of a file under the package ('newsletter.mail.render')."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The folder a dotted module belongs to, for the rules above."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"  # `newsletter` itself (__version__)
    if parts[1] in FOLDERS:
        return parts[1]
    if parts[1] in TOP_LEVEL_ON_TOP:
        return "cli"
    return "base"


def imported_modules(path: Path, own: str, known: set[str]) -> set[str]:
    """The newsletter modules that the file at `path` imports, resolved to known module names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from newsletter.mail import render` imports the module newsletter.mail.render.
            names = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("newsletter") and name != own:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, name, known) for name, path in files.items()}


def test_the_package_has_the_stage_folders() -> None:
    for folder in ("content", "mail", "audience", "delivery", "publish", "senders"):
        assert (PACKAGE / folder / "__init__.py").is_file(), folder
    flat = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__", "__main__", "atomicdir", "cli", "errors", "fsutil"]


def test_imports_only_go_downward() -> None:
    upward = []
    for module, targets in import_graph().items():
        for target in targets:
            target_layer = layer_of(target)
            if target_layer not in ALLOWED[layer_of(module)]:
                upward.append(f"{module} imports {target} ({layer_of(module)} -> {target_layer})")
    assert upward == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "newsletter":  # the package's __init__ (version only) is no cycle
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_there_is_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The checker reads lazy and relative imports: a mail module importing delivery fails."""
    source = tmp_path / "render.py"
    source.write_text("def f():\n    from ..delivery import send\n", encoding="utf-8")
    known = {"newsletter.delivery", "newsletter.delivery.send", "newsletter.mail", "newsletter.mail.render"}
    targets = imported_modules(source, "newsletter.mail.render", known)
    assert targets == {"newsletter.delivery.send", "newsletter.delivery"}
    assert "delivery" not in ALLOWED[layer_of("newsletter.mail.render")]
