"""``newsletter build``: write email.html, email.txt and message.eml for one issue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from newsletter.content.config import load_config
from newsletter.fsutil import atomic_write
from newsletter.content.load import LoadedIssue, load_issue, resolve_issue_path
from newsletter.mail.message import build_message, message_bytes
from newsletter.content.model import Config
from newsletter.mail.render import GMAIL_CLIP_BYTES, PREVIEW_GREETING, Personal, RenderedEmail, Renderer
from newsletter.errors import ValidationError, Problem

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
    if rendered.html_bytes > GMAIL_CLIP_BYTES:
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
    html_path, text_path, eml_path = target / "email.html", target / "email.txt", target / "message.eml"
    atomic_write(html_path, rendered.html)
    atomic_write(text_path, rendered.text)
    atomic_write(eml_path, eml)
    return BuildResult(target, html_path, text_path, eml_path, rendered, loaded.warnings)
