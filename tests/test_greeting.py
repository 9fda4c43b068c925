"""build and preview show the greeting readers get: the first reader's on a known list, else "Dear [name],"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from newsletter.audience.greeting import sample_greeting
from newsletter.audience.store import SubscriberStore
from newsletter.cli import main
from process_support import restore_ctrl_c
from smtp_fault_server import free_port


def built_text(folder: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["-C", str(folder), "build", "2026-11", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return (folder / "build" / "2026-11" / "email.txt").read_text(encoding="utf-8")


def test_without_a_list_build_shows_where_the_name_goes(folder: Path) -> None:
    text = built_text(folder)
    assert "Dear [name]," in text
    assert "Dear [name]," in (folder / "build" / "2026-11" / "email.html").read_text(encoding="utf-8")


def test_with_a_list_build_shows_its_first_readers_greeting(folder: Path) -> None:
    (folder / "list.csv").write_text("email,name\nnot-an-address,Skipped\nbo@example.org,Bo Ek\nal@example.org,Al\n", encoding="utf-8")
    assert "Dear Bo Ek," in built_text(folder, "--to", str(folder / "list.csv"))
    (folder / "nameless.csv").write_text("email\nbo@example.org\n", encoding="utf-8")
    assert "Dear reader," in built_text(folder, "--to", str(folder / "nameless.csv"))  # as a reader without a name gets it


def test_the_subscriber_store_is_the_known_list(folder: Path) -> None:
    with SubscriberStore.open(folder) as store:
        store.subscribe("zed@example.org", "Pending Person", how="command")  # pending: not a reader yet
        store.subscribe("ma@example.org", "Marta Rønning", how="command", status="confirmed")
    assert sample_greeting(folder) == "Dear Marta Rønning,"
    assert "Dear Marta Rønning," in built_text(folder)


def test_no_store_file_is_created_by_looking(folder: Path) -> None:
    assert sample_greeting(folder) == "Dear [name],"
    assert not (folder / "subscribers.sqlite").exists()


def test_the_running_preview_shows_the_greeting(folder: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") or k == "NEWSLETTER_CACHE_DIR"}  # the cache: the session's (conftest)
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "-C", str(folder), "preview", "2026-11", "--port", str(port),
                             "--to", str(folder / "subscribers.example.csv")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=restore_ctrl_c)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/email.txt", timeout=10) as response:
                    body = response.read().decode("utf-8")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Dear Ada Lovelace," in body  # the first row of subscribers.example.csv
