"""The ``maildir`` sender: the default with no server, writing each message into ``outbox/``.

``outbox/`` is a standard Maildir (tmp/, new/, cur/): Thunderbird, mutt, Evolution
or Python's ``mailbox.Maildir`` open it as a mail folder, so the author can look
at exactly what each subscriber would receive.  Each message is written to tmp/,
fsynced and renamed into new/ (the Maildir delivery protocol), so a crash never
leaves half a message in new/, and one that ``deliver`` reported stored is on disk.

Like a mail delivery agent, the file starts with ``Return-Path`` and
``Delivered-To`` (the envelope) and uses LF line ends, the Unix convention for
Maildir files.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from pathlib import Path
from typing import ClassVar, Mapping

from newsletter.errors import SendError
from newsletter.content.model import Config
from newsletter.senders.smtp import check_envelope_address

OUTBOX_DIR = "outbox"
_counter = itertools.count(1)
_counter_lock = threading.Lock()


class MaildirSender:
    """Stores messages in the newsletter folder's ``outbox/`` Maildir."""

    name: ClassVar[str] = "maildir"
    description: ClassVar[str] = "a local Maildir outbox (outbox/ in the newsletter folder) that any mail client can open"

    def __init__(self, *, config: Config, folder: Path, env: Mapping[str, str]) -> None:
        self.config = config
        self.folder = folder
        self.outbox = folder / OUTBOX_DIR

    def describe(self) -> str:
        """'the Maildir outbox letter/outbox/ (no mail leaves this machine)'."""
        return f"the Maildir outbox {self.outbox}/ (no mail leaves this machine)"

    def connect(self) -> "MaildirConnection":
        """Create outbox/{tmp,new,cur} if needed; raise SendError naming the folder when impossible."""
        try:
            for sub in ("tmp", "new", "cur"):
                (self.outbox / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SendError(f"cannot create the Maildir outbox: {exc.strerror}", path=self.outbox, hint="check the newsletter folder is writable") from None
        return MaildirConnection(self.outbox)


class MaildirConnection:
    """Writes messages into one Maildir; safe to use from several threads at once."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self._tmp = str(outbox / "tmp")
        self._new = str(outbox / "new")
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def deliver(self, envelope_from: str, recipient: str, message: bytes) -> str:
        """Store one message in new/; return 'stored <file name>'."""
        sender = check_envelope_address(envelope_from)
        rcpt = check_envelope_address(recipient)
        head = b"Return-Path: <" + sender + b">\nDelivered-To: " + rcpt + b"\n"
        body = message.replace(b"\r\n", b"\n")
        name = self._unique_name()
        tmp_path = os.path.join(self._tmp, name)
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(head + body)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp_path, os.path.join(self._new, name))
        except OSError as exc:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
            raise SendError(f"cannot store a message in the outbox: {exc.strerror}", path=self.outbox, hint="check free disk space and permissions, then run the same command again to continue") from None
        return f"stored {name}"

    def _unique_name(self) -> str:
        # The Maildir convention: time, then a part unique on this host (pid, counter, microseconds), then the host.
        with _counter_lock:
            count = next(_counter)
        now = time.time()
        seconds = int(now)
        return f"{seconds}.M{int((now - seconds) * 1e6)}P{os.getpid()}Q{count}.{self._host}"

    def close(self) -> None:
        """Nothing to close: every message is already on disk."""

    def __enter__(self) -> "MaildirConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
