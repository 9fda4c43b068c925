"""Issue 10 item 6, the send side: a full disk, a full Maildir outbox and a read-only sends/ folder,
on real small file systems (tmpfs, mounted by the test: this needs root, as in CI here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from process_support import restore_ctrl_c
from send_support import people, write_list

MONTH = "2026-11"


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def mounts():
    """Mount points to unmount after the test (innermost first)."""
    mounted: list[Path] = []
    yield mounted
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def small_folder(tmp_path: Path, folder: Path, mounts: list[Path], size: str) -> Path:
    """The example newsletter folder on a file system of ``size``."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, size)
    mounts.append(disk)
    target = disk / "letter"
    shutil.copytree(folder, target)
    return target


def fill(path: Path) -> None:
    """Use up every free byte of the file system holding ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def send(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEWSLETTER_SECRET": "test secret"}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "send", MONTH, "--to", str(folder / "list.csv"), "--sender", "maildir", "--yes",
         "--folder", str(folder), *extra], env=env, capture_output=True, text=True, timeout=120, preexec_fn=restore_ctrl_c,
    )


def status(folder: Path) -> str:
    return subprocess.run([sys.executable, "-m", "newsletter", "status", MONTH, "--folder", str(folder)], capture_output=True, text=True).stdout


def test_staging_on_a_full_disk_names_the_folder(tmp_path: Path, folder: Path, mounts: list[Path]) -> None:
    letter = small_folder(tmp_path, folder, mounts, "1m")
    write_list(letter / "list.csv", people(50))
    fill(letter / "filler")
    run = send(letter)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "error: sends: cannot write the send record: database or disk is full" in run.stderr
    assert "hint: free some disk space and check that sends/ is writable" in run.stderr
    assert not (letter / "sends" / f"{MONTH}.sqlite").exists() and not list((letter / "sends").glob(".staging-*"))


def test_a_read_only_sends_folder_names_the_path(tmp_path: Path, folder: Path, mounts: list[Path]) -> None:
    write_list(folder / "list.csv", people(5))
    sends = folder / "sends"
    mount_tmpfs(sends, "1m")
    mounts.append(sends)
    subprocess.run(["mount", "-o", "remount,ro", str(sends)], check=True)  # root ignores chmod: a read-only mount it is
    run = send(folder)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"{sends / (MONTH + '.lock')}: cannot lock the send record: Read-only file system" in run.stderr
    assert not (folder / "outbox").exists()


def test_a_full_outbox_leaves_the_unwritten_readers_pending_never_uncertain(tmp_path: Path, folder: Path, mounts: list[Path]) -> None:
    """The outbox on its own small file system fills up mid-send with 4 connections."""
    write_list(folder / "list.csv", people(60))
    outbox = folder / "outbox"
    mount_tmpfs(outbox, "200k")
    mounts.append(outbox)
    run = send(folder, "--concurrency", "4")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"error: {outbox}: cannot store a message in the outbox: No space left on device" in run.stderr
    stored = len(os.listdir(outbox / "new"))
    assert 0 < stored < 60
    shown = status(folder)
    assert f"sent:          {stored}\n" in shown and f"not yet tried: {60 - stored}\n" in shown and "uncertain:     0\n" in shown
    subprocess.run(["umount", "-l", str(outbox)], check=True)  # the author makes room
    mounts.remove(outbox)
    rerun = send(folder)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    delivered = [line for name in os.listdir(outbox / "new") for line in (outbox / "new" / name).read_text().splitlines() if line.startswith("Delivered-To: ")]
    assert len(delivered) == 60 - stored and len(set(delivered)) == 60 - stored


@pytest.mark.parametrize("size", ["350k", "500k"])
def test_a_disk_that_fills_up_mid_send_stops_clearly_and_the_rerun_sends_each_reader_once(tmp_path: Path, folder: Path, mounts: list[Path], size: str) -> None:
    """Outbox and send record on one small disk: the messages fill it, so the record cannot be
    written either.  This gave a traceback and left rows in flight (uncertain on the next run)."""
    letter = small_folder(tmp_path, folder, mounts, size)
    write_list(letter / "list.csv", people(60))
    run = send(letter, "--concurrency", "4")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert ("cannot store a message in the outbox: No space left on device" in run.stderr
            or f"{letter / 'sends' / (MONTH + '.sqlite')}: cannot write the send record: database or disk is full" in run.stderr), run.stderr
    subprocess.run(["mount", "-o", "remount,size=8m", str(tmp_path / "disk")], check=True)  # the author makes room
    rerun = send(letter, "--concurrency", "4")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "send record: 60 sent, 0 failed, 0 deferred, 0 not yet tried, 0 uncertain (of 60)" in rerun.stdout
    outbox = letter / "outbox" / "new"
    delivered = [line for name in os.listdir(outbox) for line in (outbox / name).read_text().splitlines() if line.startswith("Delivered-To: ")]
    assert sorted(delivered) == sorted(f"Delivered-To: {address}" for address, _ in people(60))
