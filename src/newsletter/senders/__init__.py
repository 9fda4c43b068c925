"""Pluggable senders, found through the ``newsletter.senders`` entry-point group.

The built-ins (``maildir``, ``smtp``) are registered the same way as third
party senders, in pyproject.toml, the way MkDocs registers its own plugins.
A built-in's name always means the built-in (a plug-in cannot take it over), so
``load_sender`` imports a built-in directly: reading every installed package's
entry points (importlib.metadata and zipfile imported, ~40 metadata files read)
was a tenth of the fixed cost of a ``newsletter send`` through smtp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from newsletter.errors import NewsletterError
from newsletter.content.config import load_config
from newsletter.content.model import Config
from newsletter.senders.base import Sender

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "newsletter.senders"
# The built-in senders' entry points, as pyproject.toml registers them (a test keeps the two equal).
BUILTIN_SENDERS = {
    "maildir": "newsletter.senders.maildir:MaildirSender",
    "smtp": "newsletter.senders.smtp:SMTPSender",
}


def available_senders() -> dict[str, EntryPoint]:
    """Installed senders by name; a built-in's name is always the built-in."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, value in BUILTIN_SENDERS.items():
        if name not in found or found[name].value != value:
            found[name] = _builtin_entry_point(name)
    return found


def _builtin_entry_point(name: str) -> EntryPoint:
    """The entry point of a built-in sender, as its own distribution registers it (also when a
    plug-in registers the same name, or newsletter runs from a source tree with no metadata)."""
    from importlib.metadata import EntryPoint, PackageNotFoundError, distribution

    try:
        for ep in distribution("newsletter").entry_points:
            if ep.group == ENTRY_POINT_GROUP and ep.name == name:
                return ep
    except PackageNotFoundError:
        pass
    return EntryPoint(name, BUILTIN_SENDERS[name], ENTRY_POINT_GROUP)


@dataclass(frozen=True)
class SenderInfo:
    """One installed sender, for `newsletter senders`."""

    name: str
    description: str
    module: str  # the entry point's target, e.g. 'newsletter.senders.smtp:SMTPSender'
    distribution: str | None  # the installed package that registers it
    loadable: bool = True


def describe_senders() -> list[SenderInfo]:
    """Every installed sender by name, with its description; a broken plug-in is listed, not fatal."""
    infos = []
    for name, ep in sorted(available_senders().items()):
        dist = ep.dist.name if ep.dist is not None else None
        try:
            description = str(getattr(ep.load(), "description", "")) or "(no description)"
            loadable = True
        except Exception as exc:  # a third-party plug-in that fails to import
            description = f"cannot be loaded: {type(exc).__name__}: {exc}"
            loadable = False
        infos.append(SenderInfo(name, description, ep.value, dist, loadable))
    return infos


def load_sender(name: str, config: Config, folder: Path, env: Mapping[str, str]) -> Sender:
    """Instantiate the sender called ``name``; an unknown name lists the installed ones."""
    if name in BUILTIN_SENDERS:  # no scan of the installed packages' entry points
        module, _, attribute = BUILTIN_SENDERS[name].partition(":")
        cls = getattr(import_module(module), attribute)
        return cls(config=config, folder=folder, env=env)
    senders = available_senders()
    if name not in senders:
        known = ", ".join(sorted(senders)) or "none"
        raise NewsletterError(f"unknown sender '{name}'; installed senders: {known}", hint="see `newsletter senders`, or install the package that provides it")
    try:
        cls = senders[name].load()
    except Exception as exc:  # a broken third-party plug-in must not crash us with a traceback
        raise NewsletterError(f"sender '{name}' could not be loaded: {type(exc).__name__}: {exc}", hint=f"reinstall the package providing {senders[name].value}") from None
    return cls(config=config, folder=folder, env=env)


def check_connection(sender: Sender) -> str:
    """Open and close one connection of ``sender``, sending nothing; what was done, in words.

    A sender with a ``check()`` method (smtp: connect, TLS, log in) says itself what it
    checked; for any other, a connection that opens and closes is the check.
    """
    check = getattr(sender, "check", None)
    if callable(check):
        return str(check())
    connection = sender.connect()
    connection.close()
    return f"{sender.describe()}: connected; nothing sent"


def check_sender(folder: Path, name: str | None = None, env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """`newsletter senders --check [NAME]`: the sender's name and what its check found (raises on failure)."""
    env = os.environ if env is None else env
    config = load_config(folder, env)
    chosen = name or config.sender
    lines = [check_connection(load_sender(chosen, config, folder, env))]
    note = unused_smtp_note(config, chosen, env)
    if note:
        lines.append(note)
    return chosen, lines


def unused_smtp_note(config: Config, sender_name: str, env: Mapping[str, str]) -> str | None:
    """A warning when SMTP settings are present but the chosen sender writes a local maildir instead."""
    if sender_name != "maildir" or not config.smtp.host:
        return None
    where = "NEWSLETTER_SMTP_HOST" if env.get("NEWSLETTER_SMTP_HOST") else "smtp.host in newsletter.yaml"
    return (f"note: SMTP settings are present ({where}: {config.smtp.host}) but the sender is maildir: messages go to "
            f"the outbox/ folder, not to {config.smtp.host}; set send.sender: smtp in newsletter.yaml (or use --sender smtp) to send through it")
