"""The ``newsletter`` command line: click parses options and calls one core function.

Errors from the core (``NewsletterError``) become click errors here and only
here, so the user sees a located message and never a traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, Callable

import click

from newsletter import __version__

if TYPE_CHECKING:
    from pathlib import Path


class _Path:
    """click's ``path_type`` that makes a ``pathlib.Path``, importing pathlib only when an option
    is given: the CLI's own import stays small, so ``newsletter --help`` starts fast (issue 15).
    ``__new__`` returns the Path itself; click only calls the type."""

    def __new__(cls, value: str) -> "Path":  # type: ignore[misc]
        from pathlib import Path

        return Path(value)


# `newsletter --help` lists the commands in the order an author meets them; a command
# not named here (a new one) is listed after these, alphabetically, rather than hidden.
COMMAND_ORDER = (
    "init", "new", "check", "preview", "build", "send", "status", "list", "site", "archive",
    "subscribers", "serve", "inbox", "senders", "dkim", "doctor", "suppress", "import",
)


class WorkflowGroup(click.Group):
    """A click group that lists its commands in workflow order, each summary in full."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + sorted(name for name in self.commands if name not in COMMAND_ORDER)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            # the first paragraph of the docstring, whole: click would cut it at the terminal width
            summary = command.short_help or " ".join((command.help or "").split("\n\n")[0].split())
            rows.append((name, summary))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _folder_default(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """A subcommand's --folder, else the one given before the subcommand (`newsletter -C DIR list`), else the current folder."""
    if value is not None:
        return value
    root = ctx.find_root().params.get("folder")
    return root if root is not None else _Path(".")


def folder_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--folder/-C: the newsletter folder (default: the one before the subcommand, else the current directory)."""
    return click.option(
        "--folder", "-C", type=click.Path(file_okay=False, path_type=_Path), default=None, callback=_folder_default,
        help="The newsletter folder (holding newsletter.yaml and issues/) [default: .].",
    )(func)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn NewsletterError into a clean message and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from newsletter.errors import NewsletterError, ValidationError

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


@click.group(cls=WorkflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--folder", "-C", type=click.Path(file_okay=False, path_type=_Path), default=None, metavar="DIR",
              help="Run in the newsletter folder DIR, as `git -C` does [default: .].")
@click.version_option(__version__, prog_name="newsletter")
def main(folder: Path | None) -> None:
    """Write a monthly research newsletter as one YAML file per month: check, build, preview, send, archive."""


TO_GREETING_HELP = "A subscriber list (CSV): show the greeting its first reader gets [default: the subscriber store's first confirmed reader, else 'Dear [name],']."


@main.command("init")
@click.argument("directory", type=click.Path(path_type=_Path))
@click.option("--name", help="The newsletter's name.")
@click.option("--from-name", help="Your name, as the sender.")
@click.option("--from-email", help="The sender email address.")
@click.option("--postal-address", help="The postal address for the footer (required by law).")
@click.option("--archive-url", help="The URL of the public web archive.")
@user_errors
def init_command(directory: Path, **answers: str | None) -> None:
    """Create a new newsletter folder: newsletter.yaml, issues/, templates/, an example list."""
    from newsletter.content.scaffold import INIT_QUESTIONS, check_answer, init_folder

    if sys.stdin.isatty():  # off a terminal the core names the missing flags
        for field, _flag, question in INIT_QUESTIONS:
            if not answers.get(field):
                default = answers.get("name") if field == "from_name" else None
                answers[field] = click.prompt(question, default=default, value_proc=functools.partial(_checked_answer, check_answer, field))
    result = init_folder(directory, answers)
    for path in result.created:
        click.echo(f"created {path}")
    for path in result.kept:
        click.echo(f"kept {path} (already there)")
    click.echo(f"next: cd {directory} && newsletter new YYYY-MM")


def _checked_answer(check: Callable[[str, str], str], field: str, value: str) -> str:
    """A prompt's answer checked by the core; a UsageError makes click ask again."""
    from newsletter.errors import NewsletterError

    try:
        return check(field, value)
    except NewsletterError as exc:
        raise click.UsageError(exc.message) from None


@main.command("check")
@click.argument("paths", nargs=-1)
@folder_option
@user_errors
def check_command(paths: tuple[str, ...], folder: Path) -> None:
    """Validate newsletter.yaml and issue files (default: all), reporting every problem."""
    from newsletter.mail.check import check

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
    from newsletter.content.scaffold import new_issue

    path = new_issue(folder, month)
    click.echo(f"created {path}; edit it, then run `newsletter preview {month}`")


@main.command("build")
@click.argument("issue")
@click.option("--out", type=click.Path(file_okay=False, path_type=_Path), default=None, help="Output folder [default: build/].")
@click.option("--to", "to", type=click.Path(dir_okay=False, path_type=_Path), default=None, help=TO_GREETING_HELP)
@folder_option
@user_errors
def build_command(issue: str, out: Path | None, to: Path | None, folder: Path) -> None:
    """Write DIR/YYYY-MM/email.html, email.txt and message.eml for ISSUE (YYYY-MM or a path)."""
    from newsletter.audience.greeting import sample_greeting
    from newsletter.mail.build import build

    result = build(folder, issue, out, greeting=sample_greeting(folder, to))
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    click.echo(f"built {result.directory}/ (email.html {result.rendered.html_bytes / 1024:.1f} KB, email.txt, message.eml)")
    from newsletter.publish.archive import archived_warning

    warning = archived_warning(folder, result.rendered.month)
    if warning:
        click.echo(warning, err=True)


@main.command("preview")
@click.argument("issue")
@click.option("--port", type=int, default=8025, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in your web browser.")
@click.option("--to", "to", type=click.Path(dir_okay=False, path_type=_Path), default=None, help=TO_GREETING_HELP)
@folder_option
@user_errors
def preview_command(issue: str, port: int, open_browser: bool, to: Path | None, folder: Path) -> None:
    """Serve a live preview of ISSUE on 127.0.0.1 that reloads when you save."""
    from newsletter.audience.greeting import sample_greeting
    from newsletter.mail.preview import serve

    serve(folder, issue, port=port, open_browser=open_browser, announce=click.echo, greeting=sample_greeting(folder, to))


@main.command("archive")
@click.argument("issues", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Replace an archived issue that has changed, keeping the previous version beside it.")
@folder_option
@user_errors
def archive_command(issues: tuple[str, ...], force: bool, folder: Path) -> None:
    """Freeze ISSUES (sent some other way) into archive/YYYY-MM/; archived issues are read-only."""
    from newsletter.publish.archive import archive_issues

    _echo_archived(archive_issues(folder, list(issues), force=force))


def _echo_archived(done: list[tuple[str, Any]]) -> None:
    """One line per issue; exit 1 if any could not be archived (the others still were)."""
    from newsletter.errors import NewsletterError, ValidationError

    for _issue, outcome in done:
        if isinstance(outcome, ValidationError):
            for problem in outcome.problems:
                click.echo(str(problem), err=True)
        elif isinstance(outcome, NewsletterError):
            click.echo(f"error: {outcome}", err=True)
        else:
            click.echo(outcome.message)
    failed = sum(1 for _issue, outcome in done if isinstance(outcome, NewsletterError))
    if failed:
        if len(done) > 1:
            click.echo(f"{failed} of {len(done)} issue(s) not archived; fix them and run the same command again", err=True)
        sys.exit(1)


@main.command("site")
@click.option("--out", type=click.Path(file_okay=False, path_type=_Path), default=None, help="Output folder [default: site/], replaced as a whole.")
@click.option("--include-drafts", is_flag=True, help="Also show unsent issues from issues/, marked as drafts.")
@folder_option
@user_errors
def site_command(out: Path | None, include_drafts: bool, folder: Path) -> None:
    """Write the static web archive (by month, topic and research type, with Atom feeds) from archive/."""
    from newsletter.publish.site import build_site

    result = build_site(folder, out, include_drafts=include_drafts)
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    drafts = f" and {result.drafts} draft(s)" if include_drafts else ""
    click.echo(f"wrote {result.directory}/: {result.issues} archived issue(s){drafts}, {result.articles} article(s), {result.pages} page(s); open {result.directory}/index.html")


@main.command("senders")
@click.argument("name", required=False)
@click.option("--check", "check", is_flag=True, help="Connect to the sender (NAME, default: the configured one): STARTTLS and log in, sending nothing.")
@folder_option
@user_errors
def senders_command(name: str | None, check: bool, folder: Path) -> None:
    """List the installed senders; --check logs in to the configured one, sending nothing."""
    if check:
        from newsletter.senders import check_sender

        chosen, lines = check_sender(folder, name)
        click.echo(f"{chosen}: {lines[0]}")
        for line in lines[1:]:
            click.echo(line, err=True)
        return
    if name:
        from newsletter.errors import NewsletterError

        raise NewsletterError(f"'newsletter senders {name}' needs --check", hint=f"newsletter senders --check {name}")
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
@click.argument("pages", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=_Path))
@click.option("--into", type=click.Path(file_okay=False, path_type=_Path), default=None, help="Where to write YYYY-MM.yaml [default: issues/ in the folder].")
@click.option("--force", is_flag=True, help="Replace issue files that exist and differ.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@click.option("--archive", "archive", is_flag=True, help="Also archive the imported months as sent before this tool, so `newsletter site` publishes them.")
@folder_option
@user_errors
def import_command(pages: tuple[Path, ...], into: Path | None, force: bool, dry_run: bool, archive: bool, folder: Path) -> None:
    """Turn archive pages saved from the old website (plain text) into issue files, merging months across pages."""
    from newsletter.content.importer import import_pages
    from newsletter.content.load import ISSUES_DIR

    report = import_pages(list(pages), into or folder / ISSUES_DIR, force=force, dry_run=dry_run, folder=folder)
    for line, is_error in report.messages():
        click.echo(line, err=is_error)
    if archive and not dry_run:
        from newsletter.publish.archive import archive_issues

        _echo_archived(archive_issues(folder, [str(o.path) for o in report.outcomes if o.action != "refused"], force=force))
    if not report.ok:
        sys.exit(1)


@main.command("list")
@folder_option
@user_errors
def list_command(folder: Path) -> None:
    """Show every issue (issues/ and archive/) with its state: draft, checked, sending, sent, archived."""
    from newsletter.delivery.status import list_issues

    statuses = list_issues(folder)
    if not statuses:
        click.echo("no issues yet; create one with `newsletter new YYYY-MM`")
    for status in statuses:
        click.echo(f"{status.month}  {status.state:<8}  {status.detail}")


@main.command("send")
@click.argument("issue")
@click.option("--to", "to", type=click.Path(dir_okay=False, path_type=_Path), default=None, help="A subscriber list (CSV with an email column) [default: the confirmed subscribers of subscribers.sqlite].")
@click.option("--sender", "sender", default=None, help="Sender plug-in (see `newsletter senders`) [default: from newsletter.yaml].")
@click.option("--dry-run", is_flag=True, help="Do everything but hand messages over; report what would be sent.")
@click.option("--test", "test", multiple=True, metavar="ADDRESS", help="Send one copy, subject prefixed [TEST], to ADDRESS (repeatable); no send record.")
@click.option("--rate", type=float, default=None, help="At most N messages per second, over every one-second window.")
@click.option("--concurrency", type=int, default=None, help="Connections working in parallel [default: from newsletter.yaml, else 1].")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Send an issue that was already sent completely, to everyone again.")
@click.option("--resend-uncertain", is_flag=True, help="Also send to recipients whose delivery is uncertain after a crash.")
@click.option("--no-site", is_flag=True, help="Do not rebuild site/ (the web archive) after the send.")
@click.option("--retry-delay", type=float, default=None, hidden=True, help="Seconds before the first retry (doubles each time).")
@click.option("--progress-every", type=float, default=None, hidden=True, help="Seconds between progress lines off a terminal [default: 10].")
@folder_option
@user_errors
def send_command(issue: str, to: Path | None, sender: str | None, dry_run: bool, test: tuple[str, ...], rate: float | None,
                 concurrency: int | None, yes: bool, force: bool, resend_uncertain: bool, no_site: bool, retry_delay: float | None, progress_every: float | None, folder: Path) -> None:
    """Send ISSUE to every confirmed subscriber (or everyone in --to CSV) once; run it again to resume after any interruption."""
    from newsletter.delivery.progress import ProgressSnapshot, ProgressThrottle
    from newsletter.delivery.send import RETRY_DELAY, SendOptions, execute, prepare

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    options = SendOptions(issue=issue, to=to, sender=sender, dry_run=dry_run, test=test, rate=rate, concurrency=concurrency,
                          force=force, resend_uncertain=resend_uncertain, no_site=no_site,
                          retry_delay=RETRY_DELAY if retry_delay is None else retry_delay)
    prompt = (lambda: click.prompt("NEWSLETTER_SECRET (signs unsubscribe links)", hide_input=True, default="", show_default=False)) if interactive else None
    plan = prepare(folder, options, secret_prompt=prompt)
    shown = [] if test and yes else plan.summary()  # with --yes too: the log shows who was skipped and why
    for line in shown:
        click.echo(line)
    if not yes and not dry_run and not test:  # a dry run or a test copy to yourself needs no confirmation
        if not interactive:
            from newsletter.errors import NewsletterError

            plan.discard()
            raise NewsletterError("refusing to send without confirmation: no terminal to ask on", hint="check the summary above, then run the same command with --yes")
        if not click.confirm(f"Send {plan.to_send} message(s) now?", default=False):
            plan.discard()
            click.echo("nothing sent")
            return
    _stop_on_sigterm()
    if test or dry_run or not plan.to_send:
        report = execute(plan)
    elif sys.stdout.isatty():
        with click.progressbar(length=plan.to_send, label="sending", show_pos=True, show_eta=True,
                               item_show_func=lambda snap: f"{snap.rate:.0f} msg/s" if snap else None) as bar:

            def redraw(snap: ProgressSnapshot) -> None:  # at most 10 times a second (ProgressThrottle)
                bar.update(snap.done - bar.pos, snap)

            report = execute(plan, progress=ProgressThrottle(plan.to_send, redraw, terminal=True))
    else:  # cron, a log: a line every 10 s or 5 %, whichever is rarer
        report = execute(plan, progress=ProgressThrottle(plan.to_send, lambda snap: click.echo(snap.line()), terminal=False,
                                                         interval=progress_every))
    for line in report.lines():
        if line not in shown:  # notes already in the summary
            click.echo(line)
    if report.interrupted:
        sys.exit(130)
    if not report.ok:
        sys.exit(1)


def _stop_on_sigterm() -> None:
    """Make `kill PID` (SIGTERM, how systemd and container runtimes stop a job) stop a send the way
    Ctrl-C does: each worker finishes the message it is on, and a rerun resumes."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@main.command("status")
@click.argument("issue")
@folder_option
@user_errors
def status_command(issue: str, folder: Path) -> None:
    """Print the send record of ISSUE: sent, failed (with the reply), deferred, not yet tried, uncertain."""
    from newsletter.delivery.send import NotSentYet, status

    try:
        counts, rows, meta = status(folder, issue)
    except NotSentYet as exc:  # an answer, not a failure
        click.echo(str(exc))
        return
    total = sum(counts.values())
    click.echo(f"{meta.get('month', issue)}: {meta.get('subject', '')}")
    click.echo(f"recipients:    {total}")
    click.echo(f"sent:          {counts['sent']}")
    click.echo(f"failed:        {counts['failed']}")
    click.echo(f"deferred:      {counts['deferred']}")
    click.echo(f"not yet tried: {counts['pending']}")
    click.echo(f"uncertain:     {counts['uncertain']}")
    if counts["sending"]:
        click.echo(f"in flight:     {counts['sending']} (a send is running, or crashed: the next run marks them uncertain)")
    from newsletter.audience.inbox import bounces_by_issue

    came_back = bounces_by_issue(folder, meta.get("month", issue))
    if came_back:
        click.echo("came back:     " + ", ".join(f"{came_back.get(kind, 0)} {label}" for kind, label in (
            ("hard", "hard bounces"), ("soft", "soft bounces"), ("complaint", "complaints"), ("auto-reply", "auto-replies"))))
    for row in rows:
        click.echo(f"{row.state:9} {row.address}  (attempts {row.attempts}, {row.updated_at}): {row.last_reply or ''}")


@main.command("inbox")
@click.option("--imap", "imap", metavar="URL", default=None, help="imaps://user@host[:port]/FOLDER (password: NEWSLETTER_IMAP_PASSWORD or a prompt).")
@click.option("--maildir", type=click.Path(file_okay=False, path_type=_Path), default=None, help="A local Maildir (the folder holding cur/ new/ tmp/).")
@click.option("--mbox", type=click.Path(dir_okay=False, path_type=_Path), default=None, help="A local mbox file (read only).")
@click.option("--dry-run", is_flag=True, help="Show what would be done; change nothing, move nothing.")
@folder_option
@user_errors
def inbox_command(imap: str | None, maildir: Path | None, mbox: Path | None, dry_run: bool, folder: Path) -> None:
    """Act on mail that came back: bounces, complaints, mailto unsubscribes; auto-replies are ignored, other mail left alone."""
    from newsletter.audience.inbox import read_inbox

    interactive = sys.stdin.isatty()
    prompt = (lambda text: click.prompt(text, hide_input=True, default="", show_default=False)) if interactive else None
    report = read_inbox(folder, imap=imap, maildir=maildir, mbox=mbox, dry_run=dry_run, password_prompt=prompt)
    for line in report.lines:
        click.echo(line)
    click.echo(report.summary())


@main.group("subscribers")
def subscribers_group() -> None:
    """The subscriber store (subscribers.sqlite): import, add, remove, list, show, forget, export."""


_STATUS_CHOICE = click.Choice(["pending", "confirmed", "unsubscribed", "bounced", "complained"])


def _notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(note, err=True)


@subscribers_group.command("import")
@click.argument("csv_file", metavar="CSV", type=click.Path(dir_okay=False, path_type=_Path))
@click.option("--status", type=click.Choice(["confirmed", "pending"]), default="confirmed", show_default=True,
              help="Status of the new subscribers (confirmed: an existing list has already opted in).")
@folder_option
@user_errors
def subscribers_import_command(csv_file: Path, status: str, folder: Path) -> None:
    """Import a subscriber CSV; nobody who unsubscribed, bounced, complained or was forgotten comes back."""
    from newsletter.audience.manage import import_csv

    for line in import_csv(folder, csv_file, status=status).lines():
        click.echo(line)


@subscribers_group.command("add")
@click.argument("email")
@click.option("--name", default=None, help="The subscriber's name.")
@folder_option
@user_errors
def subscribers_add_command(email: str, name: str | None, folder: Path) -> None:
    """Add EMAIL as a confirmed subscriber (you vouch for their consent)."""
    from newsletter.audience.manage import add

    message, notes = add(folder, email, name)
    _notes(notes)
    click.echo(message)


@subscribers_group.command("remove")
@click.argument("email")
@folder_option
@user_errors
def subscribers_remove_command(email: str, folder: Path) -> None:
    """Unsubscribe EMAIL: nothing is sent to it again, from the store or a CSV."""
    from newsletter.audience.manage import remove

    message, notes = remove(folder, email)
    _notes(notes)
    click.echo(message)


@subscribers_group.command("list")
@click.option("--status", type=_STATUS_CHOICE, default=None, help="Only subscribers with this status.")
@folder_option
@user_errors
def subscribers_list_command(status: str | None, folder: Path) -> None:
    """Counts per status, then one line per subscriber: email, status, since, name."""
    from newsletter.audience.manage import listing

    counts, rows = listing(folder, status)
    click.echo("  ".join(f"{name}: {n}" for name, n in counts.items()))
    for row in rows:
        click.echo(f"{row.email}  {row.status}  {row.status_at or row.created_at}  {row.name or ''}".rstrip())


@subscribers_group.command("show")
@click.argument("email")
@folder_option
@user_errors
def subscribers_show_command(email: str, folder: Path) -> None:
    """Everything stored about EMAIL, as JSON (for a GDPR access request)."""
    from newsletter.audience.manage import show

    click.echo(show(folder, email))


@subscribers_group.command("forget")
@click.argument("email")
@folder_option
@user_errors
def subscribers_forget_command(email: str, folder: Path) -> None:
    """Erase EMAIL's data and history (GDPR erasure), keeping a salted hash so no import re-adds them."""
    from newsletter.audience.manage import forget

    click.echo(forget(folder, email))


@subscribers_group.command("export")
@click.option("--status", type=_STATUS_CHOICE, default=None, help="Only subscribers with this status.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=_Path), default=None, help="Write to FILE instead of standard output.")
@folder_option
@user_errors
def subscribers_export_command(status: str | None, out: Path | None, folder: Path) -> None:
    """The store as CSV: email,name,status,subscribed_at,confirmed_at,unsubscribed_at,consent_how,consent_source, merge fields."""
    from newsletter.audience.manage import export, write_export

    if out is None:
        click.echo(export(folder, status), nl=False)
    else:
        click.echo(f"wrote {write_export(folder, out, status)} subscriber(s) to {out}", err=True)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (put a TLS reverse proxy in front; see the README).")
@click.option("--port", type=int, default=8080, show_default=True, help="Port (0 picks a free one).")
@folder_option
@user_errors
def serve_command(host: str, port: int, folder: Path) -> None:
    """Run the public endpoint: sign-up with double opt-in, one-click unsubscribe, and the archive site."""
    from newsletter.audience.server import serve

    serve(folder, host=host, port=port, announce=lambda line: click.echo(line, err=line == "stopped"))


@main.command("suppress")
@click.argument("addresses", nargs=-1, required=True)
@folder_option
@user_errors
def suppress_command(addresses: tuple[str, ...], folder: Path) -> None:
    """Add ADDRESSES to suppressed.txt: they are never sent to again."""
    from newsletter.audience.subscribers import suppress

    added, already = suppress(folder, list(addresses))
    for address in added:
        click.echo(f"suppressed {address}")
    for address in already:
        click.echo(f"{address} was already suppressed")


@main.group("dkim")
def dkim_group() -> None:
    """DKIM signing keys (see the README's Deliverability section)."""


@dkim_group.command("keygen")
@click.option("--selector", default="s1", show_default=True, help="The DKIM selector: the DNS name is <selector>._domainkey.<domain>.")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=_Path), default=None, help="Where to write the key [default: dkim/<selector>.pem in the folder].")
@folder_option
@user_errors
def dkim_keygen_command(selector: str, key_file: Path | None, folder: Path) -> None:
    """Write a new 2048-bit RSA key (mode 0600) and print the DNS TXT record to publish."""
    from newsletter.mail.dkim import keygen, zone_line

    made = keygen(folder, selector, key_file)
    try:
        shown = made.key_path.resolve().relative_to(folder.resolve())
    except ValueError:
        shown = made.key_path
    click.echo(f"wrote {made.key_path} (private: mode 0600; keep it out of version control and backups others can read)")
    click.echo(f"\npublish this TXT record at {made.record_name}:\n\n{zone_line(made.selector, made.domain, made.record)}\n")
    click.echo(f"value: {made.record}\n")
    click.echo(f"then add to newsletter.yaml:\n\ndkim:\n  selector: {made.selector}\n  key_file: {shown}\n")
    click.echo("and check it with: newsletter doctor")


@main.command("doctor")
@click.option("--dns", "dns_server", default=None, metavar="ADDRESS[:PORT]", help="Ask this DNS server [default: NEWSLETTER_DNS_SERVER, else the system's].")
@folder_option
@user_errors
def doctor_command(dns_server: str | None, folder: Path) -> None:
    """Check the sending domain's DNS (SPF, DKIM, DMARC, bounce MX, PTR) and the SMTP server's STARTTLS."""
    from newsletter.delivery.doctor import doctor

    checks = doctor(folder, dns_server=dns_server)
    for check in checks:
        click.echo(check.line())
    if not all(check.ok for check in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
