"""``display_path``'s shortcut (no resolving when nothing between the folder and the file is a link)
against resolving everything, on random trees of folders, files and symbolic links."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.fsutil import _display_path_by_resolving, display_path

_NAMES = ["a", "b", "issues", "x.yaml"]
# A tree: each entry makes one name under one earlier folder, a folder, a file, or a link to a
# relative or absolute target (perhaps dangling, perhaps a loop).
_ENTRY = st.tuples(
    st.integers(min_value=0, max_value=5), st.sampled_from(_NAMES), st.sampled_from(["dir", "file", "link"]),
    st.sampled_from(["a", "../a", "..", ".", "b/x.yaml", "issues", "missing", "ABS", "x.yaml", "a/issues"]),
)
_PATH = st.lists(st.sampled_from(_NAMES + ["..", "."]), min_size=0, max_size=4)


def _outcome(function, path: Path, folder: Path | None) -> str:
    try:
        return function(path, folder)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return type(exc).__name__


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=10), folder_parts=_PATH, inside=_PATH, relative=st.booleans())
def test_display_path_is_what_resolving_both_paths_gives(entries: list, folder_parts: list[str], inside: list[str], relative: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        folders = [root]
        for parent_index, name, kind, target in entries:
            parent = folders[parent_index % len(folders)]
            made = parent / name
            if os.path.lexists(made):
                continue
            if kind == "dir":
                made.mkdir()
                folders.append(made)
            elif kind == "file":
                made.write_text("x")
            else:
                made.symlink_to(str(root / "a") if target == "ABS" else target)
        folder = root.joinpath(*folder_parts)
        path = folder.joinpath(*inside)
        cwd = os.getcwd()
        try:
            if relative:  # the folder as `--folder sub/dir` from the newsletter's parent
                os.chdir(tmp)
                folder, path = folder.relative_to(tmp), path.relative_to(tmp)
            assert _outcome(display_path, path, folder) == _outcome(_display_path_by_resolving, path, folder)
        finally:
            os.chdir(cwd)


def test_a_file_in_the_folder_is_shown_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "issues").mkdir()
    (tmp_path / "issues" / "2026-10.yaml").write_text("x")
    (tmp_path / "linked.yaml").symlink_to(tmp_path / "issues" / "2026-10.yaml")
    assert display_path(tmp_path / "issues" / "2026-10.yaml", tmp_path) == "issues/2026-10.yaml"
    assert display_path(tmp_path / "linked.yaml", tmp_path) == "issues/2026-10.yaml"  # where the link leads
