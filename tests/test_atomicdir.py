"""atomicdir.py: a directory is replaced whole, with renameat2's exchange or the two-rename fallback."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from newsletter import atomicdir
from newsletter.atomicdir import replace_directory, temp_dir_beside


def make(directory: Path, **files: str) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "fallback"])
def test_replace_swaps_in_the_new_tree_and_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:
        monkeypatch.setattr(atomicdir, "_exchange", lambda a, b: False)
    target = tmp_path / "site"
    replace_directory(make(temp_dir_beside(target), first="1"), target)
    assert sorted(os.listdir(target)) == ["first"]
    replace_directory(make(temp_dir_beside(target), second="2"), target)
    assert sorted(os.listdir(target)) == ["second"]
    assert os.listdir(tmp_path) == ["site"]


def test_a_failed_fallback_puts_the_old_tree_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site").mkdir()
    target = make(tmp_path / "site", keep="old")
    monkeypatch.setattr(atomicdir, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def failing_rename(src, dst):  # the second rename (new -> target) fails
        if Path(dst) == target and "old" not in str(src):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    new = make(temp_dir_beside(target), fresh="new")
    monkeypatch.setattr(atomicdir.os, "rename", failing_rename)
    with pytest.raises(atomicdir.NewsletterError, match="cannot replace the folder: No space left on device"):
        replace_directory(new, target)
    monkeypatch.setattr(atomicdir.os, "rename", real_rename)
    assert (target / "keep").read_text() == "old"
    assert os.listdir(tmp_path) == ["site"]


def test_published_files_and_folders_get_the_modes_plain_open_and_mkdir_give(tmp_path: Path) -> None:
    """Not mkstemp/mkdtemp's private 0600/0700: a web server must be able to read site/."""
    import stat

    from newsletter.fsutil import atomic_write

    (tmp_path / "plain.html").write_text("x")
    (tmp_path / "plain-dir").mkdir()
    atomic_write(tmp_path / "page.html", "x")
    made = temp_dir_beside(tmp_path / "site")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert mode(tmp_path / "page.html") == mode(tmp_path / "plain.html")
    assert mode(made) == mode(tmp_path / "plain-dir")


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "fallback"])
def test_a_target_published_meanwhile_by_another_run_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    """Two builds at once: both find no target; the second must swap in its tree, not fail with 'Directory not empty'."""
    if not exchange:
        monkeypatch.setattr(atomicdir, "_exchange", lambda a, b: False)
    target = tmp_path / "2026-11"
    new = make(temp_dir_beside(target), mine="2")
    real_rename = os.rename
    raced = []

    def rename(source: object, destination: object) -> None:
        if Path(destination) == target and not raced:  # the other run publishes its folder first
            raced.append(True)
            real_rename(make(temp_dir_beside(target), theirs="1"), target)
        real_rename(source, destination)

    monkeypatch.setattr(atomicdir.os, "rename", rename)
    replace_directory(new, target)
    assert sorted(os.listdir(target)) == ["mine"]
    assert os.listdir(tmp_path) == ["2026-11"]


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2 is Linux's")
def test_the_exchange_swaps_in_one_call_without_starting_a_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ctypes.util.find_library("c") ran `ldconfig -p` in a child process on every build that replaced an earlier one
    import subprocess

    def no_child(*args, **kwargs):
        raise AssertionError(f"a child process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("from a")
    (b / "f").write_text("from b")
    assert atomicdir._exchange(a, b) is True
    assert (a / "f").read_text() == "from b" and (b / "f").read_text() == "from a"
