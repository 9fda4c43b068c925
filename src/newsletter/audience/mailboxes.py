"""Where returned mail is read from: an IMAP folder over TLS, a local Maildir, an mbox file.

Each source lists its messages as (key, raw bytes) and can move one message,
by key, to the processed folder.  Nothing else is ever done to a message:
unrelated mail is read and left exactly as it was.

* **IMAP** (``imaplib`` over TLS, ``imaps://user@host[:port]/FOLDER``):
  messages are fetched with ``BODY.PEEK[]``, which does not set ``\\Seen``;
  a dry run opens the folder with EXAMINE (read-only).  A handled message
  moves to ``newsletter-processed`` with UID MOVE (RFC 6851), or, on a server
  without it, UID COPY, then ``\\Deleted`` and UID EXPUNGE of that one UID
  (RFC 4315); a plain EXPUNGE would also remove whatever else the owner had
  marked deleted, so without UIDPLUS the original stays, flagged deleted.
  Certificates are verified; ``NEWSLETTER_IMAP_CAFILE`` adds a private CA.
* **Maildir**: files in ``new/`` and ``cur/``; a handled message is renamed
  (same file, same bytes, same flags in its name) into the Maildir++ folder
  ``.newsletter-processed`` inside it, which Dovecot and Courier show as the
  IMAP folder ``newsletter-processed``.
* **mbox**: read only.  Removing messages means rewriting the whole file,
  which an MTA may be appending to; the processed Message-IDs that ``inbox``
  remembers make a second run change nothing anyway.
"""

from __future__ import annotations

import imaplib
import mailbox
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol
from urllib.parse import unquote, urlsplit

from newsletter.errors import NewsletterError

PROCESSED = "newsletter-processed"
PASSWORD_ENV = "NEWSLETTER_IMAP_PASSWORD"
CAFILE_ENV = "NEWSLETTER_IMAP_CAFILE"


class Source(Protocol):
    """A mailbox returned mail is read from."""

    description: str
    can_move: bool

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Every message as (key, raw bytes)."""
        ...

    def move_to_processed(self, key: str) -> None:
        """Move one message to the processed folder."""
        ...

    def close(self) -> None:
        """Release the mailbox (log out, close files)."""
        ...


class MaildirSource:
    """A Maildir (new/ and cur/); handled messages go to its ``.newsletter-processed`` Maildir++ folder."""

    can_move = True

    def __init__(self, path: Path) -> None:
        if not all((path / sub).is_dir() for sub in ("new", "cur")):
            raise NewsletterError(f"{path} is not a Maildir (it needs new/ and cur/ folders)", path=str(path), hint="give the Maildir folder itself, the one holding cur/, new/ and tmp/")
        self.path = path
        self.description = f"Maildir {path}"
        self.processed = path / f".{PROCESSED}"

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Every message file in new/ and cur/, keyed 'new/<name>' or 'cur/<name>'."""
        for sub in ("new", "cur"):
            for name in sorted(os.listdir(self.path / sub)):
                if name.startswith("."):
                    continue
                try:
                    yield f"{sub}/{name}", (self.path / sub / name).read_bytes()
                except FileNotFoundError:  # a mail client moved it meanwhile
                    continue

    def move_to_processed(self, key: str) -> None:
        """Rename the file into .newsletter-processed (same subfolder, same name, same bytes)."""
        sub, _, name = key.partition("/")
        self._make_processed()
        try:
            os.rename(self.path / sub / name, self.processed / sub / name)
        except FileNotFoundError:
            # moved meanwhile (a server taking it from new/ to cur/, or a second run): it is remembered
            # as processed, so the next run finds it under its new name and only finishes the move
            pass

    def _make_processed(self) -> None:
        if (self.processed / "cur").is_dir():
            return
        owner = self.path.stat()
        for sub in ("", "cur", "new", "tmp"):
            (self.processed / sub).mkdir(exist_ok=True)
            _same_owner(self.processed / sub, owner)
        marker = self.processed / "maildirfolder"  # Maildir++: this is a subfolder, not a mailbox root
        marker.touch()
        _same_owner(marker, owner)

    def close(self) -> None:
        """Nothing to release."""


def _same_owner(path: Path, owner: os.stat_result) -> None:
    """Give a folder we create the Maildir's owner, so the mail server (e.g. Dovecot as the mail user) can use it."""
    if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
        os.chown(path, owner.st_uid, owner.st_gid)


class MboxSource:
    """An mbox file, read only (see the module docstring)."""

    can_move = False

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise NewsletterError(f"no mbox file at {path}", path=str(path), hint="give the path of an mbox file")
        self.path = path
        self.description = f"mbox {path} (read only)"
        self._box = mailbox.mbox(str(path), create=False)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Every message of the file, keyed by its position."""
        for key in self._box.keys():
            yield str(key), self._box.get_bytes(key)

    def move_to_processed(self, key: str) -> None:
        """Never called: ``can_move`` is False."""
        raise NotImplementedError("mbox files are read only")

    def close(self) -> None:
        """Close the file."""
        self._box.close()


@dataclass(frozen=True)
class ImapLocation:
    """What an ``imaps://user@host[:port]/FOLDER`` URL names."""

    user: str
    host: str
    port: int
    folder: str

    def __str__(self) -> str:
        return f"imaps://{self.user}@{self.host}:{self.port}/{self.folder}"


def parse_imap_url(url: str) -> ImapLocation:
    """Parse ``imaps://user@host[:port]/FOLDER`` (user may be %-encoded, e.g. me%40example.org; FOLDER defaults to INBOX)."""
    parts = urlsplit(url)
    if parts.scheme != "imaps":
        raise NewsletterError(
            f"--imap {url!r}: only imaps:// (IMAP over TLS) is supported", hint="write imaps://user@host[:port]/FOLDER",
        )
    if parts.password:
        raise NewsletterError("--imap: do not put the password in the URL", hint=f"set {PASSWORD_ENV} or answer the prompt")
    try:
        port = parts.port or 993
    except ValueError:
        raise NewsletterError(f"--imap {url!r}: the port must be a number", hint="write imaps://user@host:993/INBOX") from None
    if not parts.username or not parts.hostname:
        raise NewsletterError(f"--imap {url!r}: a user and a host are needed", hint="write imaps://user@host[:port]/FOLDER")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapLocation(unquote(parts.username), parts.hostname, port, folder)


class ImapSource:
    """One IMAP folder over TLS (see the module docstring)."""

    can_move = True

    def __init__(self, location: ImapLocation, password: str, *, read_only: bool, env: Mapping[str, str], timeout: float = 60) -> None:
        self.location = location
        self.description = f"IMAP {location}"
        where = f"{location.host}:{location.port}"
        context = ssl.create_default_context(cafile=env.get(CAFILE_ENV) or None)
        try:
            self.imap = imaplib.IMAP4_SSL(location.host, location.port, ssl_context=context, timeout=timeout)
        except ssl.SSLCertVerificationError as exc:
            raise NewsletterError(f"{where}: the server's TLS certificate is not trusted ({exc.verify_message})", hint=f"for a private CA set {CAFILE_ENV} to its certificate file") from None
        except (OSError, socket.timeout) as exc:
            raise NewsletterError(f"cannot connect to the IMAP server {where}: {exc}", hint="check the host and port (imaps is usually port 993)") from None
        try:
            self.imap.login(location.user, password)
        except imaplib.IMAP4.error as exc:
            self._logout()
            raise NewsletterError(f"{where}: the IMAP server refused the login for {location.user}: {_text(exc)}", hint=f"check the user and {PASSWORD_ENV}") from None
        status, data = self.imap.select(_quote(location.folder), readonly=read_only)
        if status != "OK":
            self._logout()
            raise NewsletterError(f"{where}: cannot open the folder {location.folder!r}: {_text(data)}", hint="check the folder name in the URL (INBOX, or e.g. INBOX/bounces)")
        self.capabilities = self._capabilities()
        self._created = False

    def _capabilities(self) -> set[str]:
        """The capabilities after login (servers such as Dovecot announce MOVE and UIDPLUS only then)."""
        status, data = self.imap.capability()
        words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace").upper().split() if status == "OK" else []
        return set(words) | {c.upper() for c in self.imap.capabilities}

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Every message not flagged deleted, keyed by UID, read with BODY.PEEK[] (nothing marked seen)."""
        # messages already flagged deleted are on their way out (ours without UIDPLUS, or the owner's): skip them
        status, data = self.imap.uid("SEARCH", "UNDELETED")
        uids = data[0].split() if status == "OK" and data and data[0] else []
        for uid in uids:
            status, fetched = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")  # PEEK: reading must not mark it seen
            raw = next((item[1] for item in fetched or [] if isinstance(item, tuple)), None)
            if status == "OK" and raw is not None:
                yield uid.decode("ascii"), raw

    def move_to_processed(self, key: str) -> None:
        """UID MOVE to newsletter-processed (created when missing), or COPY + \\Deleted + UID EXPUNGE."""
        if not self._created:
            status, data = self.imap.create(PROCESSED)
            if status != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if isinstance(d, bytes)).upper() and not self._exists():
                raise NewsletterError(f"{self.location.host}: cannot create the folder {PROCESSED}: {_text(data)}", hint="create it yourself, or check the account's rights")
            self._created = True
        if "MOVE" in self.capabilities:
            status, data = self.imap.uid("MOVE", key, PROCESSED)
        else:
            status, data = self.imap.uid("COPY", key, PROCESSED)
            if status == "OK":
                self.imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
                if "UIDPLUS" in self.capabilities:
                    self.imap.uid("EXPUNGE", key)
        if status != "OK":
            raise NewsletterError(f"{self.location.host}: cannot move message UID {key} to {PROCESSED}: {_text(data)}")

    def _exists(self) -> bool:
        status, data = self.imap.list('""', PROCESSED)
        return status == "OK" and any(d for d in data if d)

    def _logout(self) -> None:
        try:
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def close(self) -> None:
        """Log out."""
        self._logout()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: object) -> str:
    if isinstance(data, (list, tuple)):
        return " ".join(_text(d) for d in data if d)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return re.sub(r"\s+", " ", str(data))


def open_source(
    *, imap: str | None, maildir: Path | None, mbox: Path | None, read_only: bool,
    env: Mapping[str, str], password_prompt: Callable[[str], str] | None,
) -> Source:
    """The one source the user named; the IMAP password from the environment or the prompt."""
    given = [name for name, value in (("--imap", imap), ("--maildir", maildir), ("--mbox", mbox)) if value]
    if len(given) != 1:
        raise NewsletterError("give exactly one of --imap URL, --maildir DIR or --mbox FILE", hint="e.g. newsletter inbox --maildir ~/Maildir/.bounces")
    if maildir is not None:
        return MaildirSource(maildir)
    if mbox is not None:
        return MboxSource(mbox)
    assert imap is not None
    location = parse_imap_url(imap)
    password = env.get(PASSWORD_ENV) or (password_prompt(f"IMAP password for {location.user}@{location.host}") if password_prompt else "")
    if not password:
        raise NewsletterError(f"no IMAP password for {location.user}@{location.host}", hint=f"set {PASSWORD_ENV}, or run on a terminal to be asked")
    return ImapSource(location, password, read_only=read_only, env=env)
