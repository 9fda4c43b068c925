"""`newsletter init` and `newsletter new`: what a new author gets, and that nothing is ever overwritten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.content.config import check_config
from newsletter.content.scaffold import GITIGNORE_ENTRIES, init_folder
from newsletter.errors import NewsletterError
from terminal_support import run_on_terminal

ANSWERS = {
    "name": "Notes: Practice & Research",
    "from_name": "Åsa Rønning",
    "from_email": "asa@example.org",
    "postal_address": "12 Example Street\nOttawa ON K1A 0A1",
    "archive_url": "https://notes.example.org/archive/",
}
FLAGS = ["--name", ANSWERS["name"], "--from-name", ANSWERS["from_name"], "--from-email", ANSWERS["from_email"],
         "--postal-address", ANSWERS["postal_address"], "--archive-url", ANSWERS["archive_url"]]


def newsletter(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """The real command in a child process, stdin a pipe (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=cwd, input=input or "", capture_output=True, text=True, timeout=60)


def test_init_with_flags_makes_a_folder_that_checks_clean(tmp_path: Path) -> None:
    proc = newsletter(tmp_path, "init", "notes", *FLAGS)
    assert proc.returncode == 0, proc.stderr
    notes = tmp_path / "notes"
    assert sorted(p.relative_to(notes).as_posix() for p in notes.rglob("*")) == [
        ".gitignore", "issues", "issues/.keep", "newsletter.yaml", "subscribers.example.csv", "templates", "templates/README.md",
    ]
    config, problems = check_config(notes, env={})
    assert problems == [] and config is not None
    assert (config.name, config.sender_name, config.sender_email) == (ANSWERS["name"], ANSWERS["from_name"], ANSWERS["from_email"])
    assert config.postal_address == "12 Example Street\nOttawa ON K1A 0A1"
    assert config.archive_url == ANSWERS["archive_url"] and config.sender == "maildir"
    ignored = [line for line in (notes / ".gitignore").read_text().splitlines() if not line.startswith("#")]
    assert ignored == [*GITIGNORE_ENTRIES, "/dkim/", "/subscribers.sqlite*", "/returned-mail.sqlite*"]
    subprocess.run(["git", "init", "-q", str(notes)], check=True)
    paths = ["sends/2027-01.sqlite", "outbox/new/1", "build/2027-01/email.html", "site/index.html", "dkim/mail.pem",
             "subscribers.sqlite", "subscribers.sqlite-wal", "returned-mail.sqlite", "newsletter.yaml", "archive/2027-01/issue.yaml"]
    check = subprocess.run(["git", "-C", str(notes), "check-ignore", "--no-index", *paths], capture_output=True, text=True)
    assert check.stdout.split() == paths[:-2]  # what git would leave out; the settings and the archive are committed
    assert (notes / "subscribers.example.csv").read_text(encoding="utf-8") == "email,name\nasa@example.org,Åsa Rønning\n"
    assert "created notes/newsletter.yaml" in proc.stdout
    check = newsletter(notes, "check")
    assert check.returncode == 0 and "0 error(s)" in check.stdout


def test_init_off_a_terminal_with_answers_missing_lists_the_flags(tmp_path: Path) -> None:
    proc = newsletter(tmp_path, "init", "notes", "--name", "Notes")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: missing answers for --from-name, --from-email, --postal-address, --archive-url: there is no terminal to ask on",
        "  hint: give every answer as a flag: newsletter init notes --name ... --from-name ... --from-email ... --postal-address ... --archive-url ...",
    ]
    assert not (tmp_path / "notes").exists()


def test_init_asks_on_a_terminal_and_asks_again_after_a_bad_answer(tmp_path: Path) -> None:
    code, shown = run_on_terminal(["init", "notes"], tmp_path, [
        (b"Newsletter name: ", b"Practice Notes"),
        (b"Your name, as the sender [Practice Notes]: ", b"Ada Lovelace"),
        (b"Sender email address: ", b"not-an-address"),
        (b"Sender email address: ", b"ada@example.org"),
        (b"Postal address for the footer (the law requires one): ", b"1 Example Road, Leeds"),
        (b"URL of the public web archive (https://...): ", b"https://ada.example.org/"),
    ])
    assert code == 0, shown
    assert b"'not-an-address' is not a valid email address (--from-email)" in shown
    config, problems = check_config(tmp_path / "notes", env={})
    assert problems == [] and config is not None
    assert (config.name, config.sender_name, config.sender_email, config.postal_address, config.archive_url) == (
        "Practice Notes", "Ada Lovelace", "ada@example.org", "1 Example Road, Leeds", "https://ada.example.org/")


def test_init_never_overwrites(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / ".gitignore").write_text("*.pyc\n/site\n")
    (notes / "subscribers.example.csv").write_text("mine\n")
    result = init_folder(notes, ANSWERS)
    assert (notes / "subscribers.example.csv").read_text() == "mine\n"
    assert notes / "subscribers.example.csv" in result.kept
    assert (notes / ".gitignore").read_text() == (  # /site was there already
        "*.pyc\n/site\n/sends/\n/outbox/\n/build/\n# signing keys and readers' addresses: back them up, never commit them\n"
        "/dkim/\n/subscribers.sqlite*\n/returned-mail.sqlite*\n")
    before = (notes / "newsletter.yaml").read_text(encoding="utf-8")
    with pytest.raises(NewsletterError, match="already a newsletter folder; not overwriting its newsletter.yaml"):
        init_folder(notes, {**ANSWERS, "name": "Other"})
    assert (notes / "newsletter.yaml").read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["notes"]  # no staging folder left behind


@pytest.mark.parametrize("field, value, message", [
    ("from_email", "ada@", "'ada@' is not a valid email address (--from-email)"),
    ("archive_url", "notes.example.org", "'notes.example.org' is not a web address (--archive-url)"),
    ("name", "Two\nlines", "--name must be a single line"),
])
def test_init_refuses_bad_answers_and_writes_nothing(tmp_path: Path, field: str, value: str, message: str) -> None:
    with pytest.raises(NewsletterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        init_folder(tmp_path / "notes", {**ANSWERS, field: value})
    assert not (tmp_path / "notes").exists()


def test_new_outside_a_newsletter_folder_points_at_init(tmp_path: Path) -> None:
    proc = newsletter(tmp_path, "new", "2027-01")
    assert proc.returncode == 1
    assert f"error: {tmp_path.resolve()} is not a newsletter folder (no newsletter.yaml); not creating issues/ here" in proc.stderr
    assert "`newsletter init DIR`" in proc.stderr
    assert not (tmp_path / "issues").exists()


def test_init_then_new_with_minus_c(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["init", str(tmp_path / "notes"), *FLAGS]).exit_code == 0
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "notes"), "new", "2027-01"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "notes" / "issues" / "2027-01.yaml").is_file()
