"""The ``newsletter`` command line: click parses options and calls one core function.

Errors from the core (``NewsletterError``) become click errors here and only
here, so the user sees a located message and never a traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from newsletter import __version__
from newsletter.errors import NewsletterError, ValidationError


def folder_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--folder: the newsletter folder (default: the current directory)."""
    return click.option(
        "--folder", "-C", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
        show_default=True, help="The newsletter folder (holding newsletter.yaml and issues/).",
    )(func)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn NewsletterError into a clean message and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            errors = sum(1 for p in exc.problems if p.is_error)
            click.echo(f"{errors} error(s); fix them and try again.", err=True)
            sys.exit(1)
        except NewsletterError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group()
@click.version_option(__version__, prog_name="newsletter")
def main() -> None:
    """Write a monthly research newsletter as one YAML file per month: check, build, preview, send, archive."""


@main.command("check")
@click.argument("paths", nargs=-1)
@folder_option
@user_errors
def check_command(paths: tuple[str, ...], folder: Path) -> None:
    """Validate newsletter.yaml and issue files (default: all), reporting every problem."""
    from newsletter.check import check

    report = check(folder, list(paths) or None)
    for problem in report.problems:
        click.echo(str(problem))
    summary = f"checked {len(report.checked)} file(s): {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    if report.ok:
        click.echo(summary)
    else:
        click.echo(summary, err=True)
        sys.exit(1)


@main.command("new")
@click.argument("month")
@folder_option
@user_errors
def new_command(month: str, folder: Path) -> None:
    """Create issues/YYYY-MM.yaml from a commented template (never overwrites)."""
    from newsletter.scaffold import new_issue

    path = new_issue(folder, month)
    click.echo(f"created {path}; edit it, then run `newsletter preview {month}`")


@main.command("build")
@click.argument("issue")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder [default: build/].")
@folder_option
@user_errors
def build_command(issue: str, out: Path | None, folder: Path) -> None:
    """Write DIR/YYYY-MM/email.html, email.txt and message.eml for ISSUE (YYYY-MM or a path)."""
    from newsletter.build import build

    result = build(folder, issue, out)
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    click.echo(f"built {result.directory}/ (email.html {result.rendered.html_bytes / 1024:.1f} KB, email.txt, message.eml)")
    from newsletter.archive import archived_warning

    warning = archived_warning(folder, result.rendered.month)
    if warning:
        click.echo(warning, err=True)


@main.command("preview")
@click.argument("issue")
@click.option("--port", type=int, default=8025, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in your web browser.")
@folder_option
@user_errors
def preview_command(issue: str, port: int, open_browser: bool, folder: Path) -> None:
    """Serve a live preview of ISSUE on 127.0.0.1 that reloads when you save."""
    from newsletter.preview import serve

    serve(folder, issue, port=port, open_browser=open_browser, announce=click.echo)


@main.command("archive")
@click.argument("issue")
@click.option("--force", is_flag=True, help="Replace an archived issue that has changed, keeping the previous version beside it.")
@folder_option
@user_errors
def archive_command(issue: str, force: bool, folder: Path) -> None:
    """Freeze ISSUE (sent some other way) into archive/YYYY-MM/; archived issues are read-only."""
    from newsletter.archive import archive_issue

    click.echo(archive_issue(folder, issue, report=None, force=force).message)


@main.command("site")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder [default: site/], replaced as a whole.")
@click.option("--include-drafts", is_flag=True, help="Also show unsent issues from issues/, marked as drafts.")
@folder_option
@user_errors
def site_command(out: Path | None, include_drafts: bool, folder: Path) -> None:
    """Write the static web archive (by month, topic and research type, with Atom feeds) from archive/."""
    from newsletter.site import build_site

    result = build_site(folder, out, include_drafts=include_drafts)
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    drafts = f" and {result.drafts} draft(s)" if include_drafts else ""
    click.echo(f"wrote {result.directory}/: {result.issues} archived issue(s){drafts}, {result.articles} article(s), {result.pages} page(s); open {result.directory}/index.html")


@main.command("senders")
@folder_option
@user_errors
def senders_command(folder: Path) -> None:
    """List the installed senders (plug-ins in the newsletter.senders entry-point group)."""
    from newsletter.senders import describe_senders

    infos = describe_senders()
    width = max((len(info.name) for info in infos), default=0)
    for info in infos:
        origin = f"{info.module} (from {info.distribution})" if info.distribution else info.module
        click.echo(f"{info.name.ljust(width)}  {info.description}\n{' ' * width}  {origin}")
    if not infos:
        click.echo("no senders installed; reinstall newsletter", err=True)
        sys.exit(1)


@main.command("import")
@click.argument("pages", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--into", type=click.Path(file_okay=False, path_type=Path), default=None, help="Where to write YYYY-MM.yaml [default: issues/ in the folder].")
@click.option("--force", is_flag=True, help="Replace issue files that exist and differ.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@folder_option
@user_errors
def import_command(pages: tuple[Path, ...], into: Path | None, force: bool, dry_run: bool, folder: Path) -> None:
    """Turn archive pages saved from the old website (plain text) into issue files, merging months across pages."""
    from newsletter.importer import import_pages
    from newsletter.load import ISSUES_DIR

    report = import_pages(list(pages), into or folder / ISSUES_DIR, force=force, dry_run=dry_run)
    for line, is_error in report.messages():
        click.echo(line, err=is_error)
    if not report.ok:
        sys.exit(1)


@main.command("list")
@folder_option
@user_errors
def list_command(folder: Path) -> None:
    """Show every issue (issues/ and archive/) with its state: draft, checked, sending, sent, archived."""
    from newsletter.status import list_issues

    statuses = list_issues(folder)
    if not statuses:
        click.echo("no issues yet; create one with `newsletter new YYYY-MM`")
    for status in statuses:
        click.echo(f"{status.month}  {status.state:<8}  {status.detail}")


if __name__ == "__main__":
    main()
