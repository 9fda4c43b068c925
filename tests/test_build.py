"""`build` writes its three files as a set, and read-only or full folders give an error naming the path."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def newsletter(cwd: Path, *args: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        # the kernel's per-process file size limit: a write past it fails with EFBIG, like a full disk
        # (CPython ignores SIGXFSZ, so the write returns an error instead of killing the process)
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=cwd, capture_output=True, text=True, timeout=120, preexec_fn=limit)


@pytest.fixture
def read_only():
    """Make a folder unwritable even for root (chattr +i), undone after the test."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                pytest.fail("chattr +i is needed to make a folder read-only for root (e2fsprogs, on ext4)")
        else:
            path.chmod(0o555)
        made.append(path)

    yield make
    for path in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o755)


def test_an_interrupted_build_leaves_the_previous_set_whole(folder: Path) -> None:
    first = newsletter(folder, "build", "2026-11")
    assert first.returncode == 0, first.stderr
    out = folder / "build" / "2026-11"
    (out / "notes.txt").write_text("mine\n")
    before = {name: (out / name).read_bytes() for name in ("email.html", "email.txt", "message.eml")}
    assert len(before["email.html"]) < 30_000 < len(before["message.eml"])
    issue = folder / "issues" / "2026-11.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("Helps Clients at Risk", "Helps Clients at Risk, Revised"), encoding="utf-8")

    # the HTML and text fit under 30,000 bytes, message.eml does not: before, the build left new HTML beside an old message.eml
    failed = newsletter(folder, "build", "2026-11", file_size_limit=30_000)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr + failed.stdout
    assert f"build/2026-11: cannot write message.eml: File too large; the previous build is unchanged" in failed.stderr + failed.stdout
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not [p for p in (folder / "build").iterdir() if p.name.startswith(".")]  # no staging folder left

    again = newsletter(folder, "build", "2026-11")
    assert again.returncode == 0, again.stderr
    assert all(b"Revised" in (out / name).read_bytes() for name in ("email.html", "email.txt", "message.eml"))
    assert (out / "notes.txt").read_text() == "mine\n"  # a file of the user's in the folder is kept


def test_read_only_issues_folder_names_the_path(folder: Path, read_only) -> None:
    read_only(folder / "issues")
    proc = newsletter(folder, "new", "2026-12")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    reason = "Operation not permitted" if os.geteuid() == 0 else "Permission denied"
    assert proc.stderr == f"error: issues: cannot write here: {reason}\n  hint: check that the folder is writable\n"
    assert not (folder / "issues" / "2026-12.yaml").exists()


def test_read_only_build_folder_names_the_path(folder: Path, read_only) -> None:
    (folder / "build").mkdir()
    read_only(folder / "build")
    proc = newsletter(folder, "build", "2026-11")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "build: cannot create a folder here:" in proc.stderr
