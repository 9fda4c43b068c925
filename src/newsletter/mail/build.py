"""``newsletter build``: write email.html, email.txt and message.eml for one issue.

The three files are written as a set: into a fresh folder beside
``build/YYYY-MM`` that then replaces it in one rename (atomicdir), so a reader
of the folder, or a build stopped by a full disk or a kill, sees all three old
files or all three new ones, never a new HTML beside an old message.eml.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from newsletter.atomicdir import fsync_tree, replace_directory, temp_dir_beside
from newsletter.content.config import load_config
from newsletter.content.load import LoadedIssue, load_issue, resolve_issue_path
from newsletter.mail.message import build_message, message_bytes
from newsletter.content.model import Config
from newsletter.mail.render import PREVIEW_GREETING, Personal, RenderedEmail, Renderer
from newsletter.errors import NewsletterError, ValidationError, Problem

DEFAULT_BUILD_DIR = "build"


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote, and the warnings it met."""

    directory: Path
    html_path: Path
    text_path: Path
    eml_path: Path
    rendered: RenderedEmail
    warnings: list[Problem]


def render_issue(folder: Path, issue_arg: str, config: Config | None = None, renderer: Renderer | None = None,
                 *, placeholders: str = "error", greeting: str | None = None) -> tuple[LoadedIssue, RenderedEmail, bytes]:
    """Load, validate and render one issue to HTML, text and .eml bytes (nothing written).

    ``greeting``: the "Dear ...," line, as in a reader's copy; None leaves it out (the archive's
    non-personalised copy).
    """
    config = config or load_config(folder)
    loaded = load_issue(resolve_issue_path(folder, issue_arg), config, folder, placeholders=placeholders)
    assert loaded.issue is not None
    renderer = renderer or Renderer(folder, config)
    rendered = renderer.render(loaded.issue, Personal(greeting=greeting) if greeting else None)
    if rendered.clipped_by_gmail:
        raise ValidationError(
            loaded.problems
            + [Problem(loaded.display, 1, 1, f"the HTML email is {rendered.html_bytes / 1024:.0f} KB; Gmail clips messages over 102 KB. Shorten the summaries or split the issue")]
        )
    eml = message_bytes(build_message(rendered, config))
    return loaded, rendered, eml


def build(folder: Path, issue_arg: str, out_dir: Path | None = None, *, greeting: str = PREVIEW_GREETING) -> BuildResult:
    """Build one issue into ``out_dir/YYYY-MM/``; every file is written atomically.

    Scaffold text left in the issue is only a warning here: a build is a look while writing.
    The email shows ``greeting`` where each reader's greeting goes (see audience.greeting).
    """
    loaded, rendered, eml = render_issue(folder, issue_arg, placeholders="warning", greeting=greeting)
    target = (out_dir or folder / DEFAULT_BUILD_DIR) / rendered.month
    files = {"email.html": rendered.html_utf8, "email.txt": rendered.text.encode("utf-8"), "message.eml": eml}
    write_set(target, files)
    return BuildResult(target, target / "email.html", target / "email.txt", target / "message.eml", rendered, loaded.warnings)


def write_set(target: Path, files: dict[str, bytes]) -> None:
    """Replace ``files`` in the folder ``target`` all at once; other files already there are kept."""
    staging = temp_dir_beside(target)
    written = "the files"
    try:
        if target.is_dir():
            for entry in os.scandir(target):
                if entry.name not in files and entry.is_file(follow_symlinks=False):
                    shutil.copy2(entry.path, staging / entry.name)
        for name, data in files.items():
            written = name
            (staging / name).write_bytes(data)
        fsync_tree(staging)  # one pass of fsyncs for the set, before it replaces the old one
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise NewsletterError(
            f"cannot write {written}: {exc.strerror}; the previous build is unchanged", path=str(target),
            hint="free some disk space or check that the folder is writable, then build again",
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_directory(staging, target)
