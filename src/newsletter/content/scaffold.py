"""``newsletter init DIR``: a new newsletter folder; ``newsletter new YYYY-MM``: a commented issue file to fill in."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from newsletter.atomicdir import temp_dir_beside
from newsletter.content import placeholders
from newsletter.content.addresses import is_valid_address
from newsletter.content.config import CONFIG_NAME, DEFAULT_RESEARCH_TYPES, DEFAULT_TOPICS, USER_TEMPLATES_DIR
from newsletter.content.load import ISSUES_DIR, check_month, display_path
from newsletter.errors import NewsletterError
from newsletter.fsutil import atomic_write, create_new, fsync_dir

EXAMPLE_LIST = "subscribers.example.csv"

TEMPLATE = """\
# The {month_name} issue.  Check it with `newsletter check {month}`,
# watch it with `newsletter preview {month}`.
month: {month}                 # must match the file name

# subject: ...                  # optional; default "<newsletter name> — {month_name}"
# preheader: ...                # optional; the grey line inbox lists show after the subject

# The "This month..." text.  Leave it out and one is drafted from the titles.
intro: |
  {intro}

articles:                       # one or more
  - title: {title}
    citation:                   # optional; `text` alone is enough
      text: "{citation}"
      # authors: ["Surname, A.", "Other, B."]
      # year: {year}
      # doi: {doi}
    topics: [Therapist Factors]  # from `topics` in newsletter.yaml
    # research_type: Meta-analysis   # from `research_types` in newsletter.yaml
    summary: |
      {summary}
    practice_implications: |
      {implications}
"""


def new_issue(folder: Path, month: str) -> Path:
    """Create ``issues/YYYY-MM.yaml``; refuse to overwrite an existing file."""
    check_month(month)
    from newsletter.content.model import MONTH_NAMES

    if not (folder / CONFIG_NAME).exists():
        raise NewsletterError(
            f"{folder.resolve()} is not a newsletter folder (no {CONFIG_NAME}); not creating {ISSUES_DIR}/ here",
            hint="run this in your newsletter folder, give it with -C DIR, or create one with `newsletter init DIR`",
        )
    path = folder / ISSUES_DIR / f"{month}.yaml"
    text = TEMPLATE.format(
        month=month, year=month[:4], month_name=f"{MONTH_NAMES[int(month[5:]) - 1]} {month[:4]}",
        intro=placeholders.INTRO, title=placeholders.TITLE, doi=placeholders.DOI,
        citation=placeholders.CITATION.format(year=month[:4], doi=placeholders.DOI),
        summary=placeholders.SUMMARY.replace("\n", "\n      "), implications=placeholders.IMPLICATIONS,
    )
    try:
        # refused atomically even if two commands race; a read-only or full issues/ is an error naming it
        create_new(path, text)
    except FileExistsError:
        raise NewsletterError("already exists; not overwriting it", path=display_path(path, folder), hint="edit the file, or delete it first if you really want a fresh one") from None
    return path


# `newsletter init`: the questions, in the order they are asked, with the flag that answers each.
INIT_QUESTIONS: tuple[tuple[str, str, str], ...] = (
    ("name", "--name", "Newsletter name"),
    ("from_name", "--from-name", "Your name, as the sender"),
    ("from_email", "--from-email", "Sender email address"),
    ("postal_address", "--postal-address", "Postal address for the footer (the law requires one)"),
    ("archive_url", "--archive-url", "URL of the public web archive (https://...)"),
)
GITIGNORE_ENTRIES = ("/sends/", "/outbox/", "/build/", "/site/")
# Keys and readers' addresses: to back up, never to commit (a pushed repository would publish them).
GITIGNORE_PRIVATE = ("/dkim/", "/subscribers.sqlite*", "/returned-mail.sqlite*")

CONFIG_TEMPLATE = """\
# Settings of this newsletter.  `newsletter check` validates this file too.
name: {name}
sender:
  name: {from_name}
  email: {from_email}
# reply_to: editor@example.org       # where replies go, if not to the sender
# Required by anti-spam law (CAN-SPAM and others) in the footer of every email.
postal_address: {postal_address}
# The public web archive (`newsletter site` writes it into site/); every email links to
# <archive_url>/YYYY-MM/.
archive_url: {archive_url}
# Every email offers a way to unsubscribe: a mail to this address (or a web page, url:).
unsubscribe:
  email: {from_email}
# The topic vocabulary: articles may only use these names.  Make it your field's.
topics:
{topics}
research_types:
{research_types}
send:
  # maildir writes every message into outbox/ (open it in a mail program to check);
  # switch to smtp to reach real readers, after `newsletter senders --check`.
  sender: maildir
  concurrency: 4
# smtp:                               # or NEWSLETTER_SMTP_HOST, _PORT, _SECURITY, _USERNAME;
#   host: smtp.example.org            # the password only from NEWSLETTER_SMTP_PASSWORD
#   port: 587
#   security: starttls
#   username: you@example.org
"""

TEMPLATES_README = """\
# Your templates

Files placed here override the packaged templates of the same name, one file at a time
(`newsletter` looks here first, then in its own templates):

- `email.mjml.j2`: the HTML email, in MJML (compiled by mjml-python, then CSS-inlined)
- `email.css`: the email's stylesheet; the `@media` block is kept for phones
- `email.txt.j2`: the plain-text email
- `site/`: the web archive's pages

Copy the packaged file here (`python -c "import newsletter, os; print(os.path.dirname(newsletter.__file__))"`
shows where they are, under `templates/`) and edit the copy.
"""


@dataclass(frozen=True)
class InitResult:
    """What ``init_folder`` made: the folder, the files it created, and files it left alone."""

    folder: Path
    created: list[Path]
    kept: list[Path]


def check_answer(field: str, value: str | None) -> str:
    """One answer to an init question, cleaned; NewsletterError saying what is wrong with it."""
    flag = dict((f, flag) for f, flag, _q in INIT_QUESTIONS)[field]
    text = (value or "").strip()
    if not text:
        raise NewsletterError(f"{flag} must not be empty")
    if field != "postal_address" and ("\n" in text or "\r" in text):
        raise NewsletterError(f"{flag} must be a single line")
    if field == "from_email" and not is_valid_address(text):
        raise NewsletterError(f"'{text}' is not a valid email address ({flag})")
    if field == "archive_url" and not re.match(r"^https?://[^\s/]+\.?\S*$", text):
        raise NewsletterError(f"'{text}' is not a web address ({flag}); write it as https://example.org/archive/")
    return text


def init_folder(target: Path, answers: Mapping[str, str | None]) -> InitResult:
    """Create a newsletter folder at ``target`` from the answers; never overwrite a file.

    A missing answer is an error listing the flags (the CLI asks on a terminal
    before calling this).  A new folder is built beside the target and renamed
    into place, so it appears whole or not at all; in an existing folder each
    file is linked into place only where nothing has that name, and missing
    ``.gitignore`` entries are appended.
    """
    missing = [flag for field, flag, _q in INIT_QUESTIONS if not (answers.get(field) or "").strip()]
    if missing:
        flags = " ".join(f"{flag} ..." for _f, flag, _q in INIT_QUESTIONS)
        raise NewsletterError(
            f"missing answers for {', '.join(missing)}: there is no terminal to ask on",
            hint=f"give every answer as a flag: newsletter init {target} {flags}",
        )
    values = {field: check_answer(field, answers.get(field)) for field, _flag, _q in INIT_QUESTIONS}
    config_path = target / CONFIG_NAME
    if config_path.exists():
        raise NewsletterError(f"{display_path(target)} is already a newsletter folder; not overwriting its {CONFIG_NAME}",
                              path=display_path(config_path), hint="edit it, or init another folder")
    if target.exists() and not target.is_dir():
        raise NewsletterError("exists and is not a folder", path=display_path(target), hint="choose another name")
    files = {
        Path(CONFIG_NAME): _config_text(values),
        Path(ISSUES_DIR) / ".keep": "",
        Path(USER_TEMPLATES_DIR) / "README.md": TEMPLATES_README,
        Path(EXAMPLE_LIST): _example_list(values["from_email"], values["from_name"]),
    }
    staging = temp_dir_beside(target)
    try:
        for relative, text in files.items():
            atomic_write(staging / relative, text)
        if not target.exists():
            atomic_write(staging / ".gitignore", _gitignore_text(GITIGNORE_ENTRIES + GITIGNORE_PRIVATE))
            os.rename(staging, target)
            fsync_dir(target.parent)
            return InitResult(target, [target / r for r in (*files, Path(".gitignore"))], [])
        return _merge_into(staging, target, list(files))
    except OSError as exc:
        raise NewsletterError(f"cannot create the newsletter folder: {exc.strerror}", path=display_path(target)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge_into(staging: Path, target: Path, files: list[Path]) -> InitResult:
    """Link each staged file into an existing folder where nothing has its name (os.link never replaces)."""
    created: list[Path] = []
    kept: list[Path] = []
    for relative in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staging / relative, destination)
            created.append(destination)
        except FileExistsError:
            kept.append(destination)
    gitignore = target / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    present = {line.strip().strip("/") for line in existing.splitlines()}  # "site", "/site" and "site/" all cover /site/
    wanted = [entry for entry in GITIGNORE_ENTRIES + GITIGNORE_PRIVATE if entry.strip("/") not in present]
    if wanted:
        separator = "" if not existing or existing.endswith("\n") else "\n"
        atomic_write(gitignore, existing + separator + _gitignore_text(tuple(wanted)))
        created.append(gitignore)
    return InitResult(target, created, kept)


def _gitignore_text(entries: tuple[str, ...]) -> str:
    """.gitignore lines, the private ones under a comment saying why."""
    public = [e for e in entries if e not in GITIGNORE_PRIVATE]
    private = [e for e in entries if e in GITIGNORE_PRIVATE]
    text = "".join(f"{e}\n" for e in public)
    if private:
        text += "# signing keys and readers' addresses: back them up, never commit them\n" + "".join(f"{e}\n" for e in private)
    return text


def _yaml_value(text: str, indent: str = "  ") -> str:
    """A scalar as YAML writes it (quoted when needed); several lines as a literal block."""
    if "\n" in text:
        lines = [line.strip() for line in text.strip().splitlines()]
        return "|\n" + "".join(f"{indent}{line}\n" for line in lines).rstrip("\n")
    dumped = yaml.safe_dump(text, allow_unicode=True, default_flow_style=True, width=1 << 20)
    return dumped.removesuffix("\n").removesuffix("\n...")


def _config_text(values: Mapping[str, str]) -> str:
    quoted = {field: _yaml_value(value) for field, value in values.items()}
    return CONFIG_TEMPLATE.format(
        **quoted,
        topics="\n".join(f"  - {_yaml_value(t)}" for t in DEFAULT_TOPICS),
        research_types="\n".join(f"  - {_yaml_value(t)}" for t in DEFAULT_RESEARCH_TYPES),
    )


def _example_list(email: str, name: str) -> str:
    """A subscriber list with the author on it, so a first send goes to them alone."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name"])
    writer.writerow([email, name])
    return out.getvalue()
