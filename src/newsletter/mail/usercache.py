"""A per-user cache of work that comes out the same in every process (issue 15, start-up).

What is kept: the email templates compiled by Jinja (``mail/render.py``) and
what the CSS inliner derives from the templates' stylesheets and inline styles
(``mail/inline.py``).  Both are pure functions of text and of the versions of
the code that computed them; each file's name carries those versions, so an
upgrade starts a fresh file instead of reading an old one.

Where: ``$NEWSLETTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/newsletter``, else
``~/.cache/newsletter``.  Deleting it is always safe: everything in it is
recomputed on the next run.

A cache must never break or change a run, so every failure here is silent and
means "not cached": a missing or unwritable folder, a folder that is not the
user's own or that others may write to, a file another user owns, a truncated
or corrupt file (each file carries the SHA-256 of its payload, checked before
use), a file from another version.  Files are written to a temporary file and
renamed, so a reader sees a whole file or none.  Nothing is unpickled: callers
store JSON, or ``marshal`` data that is only read back from the user's own
folder after its digest checked.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

ENV_VARIABLE = "NEWSLETTER_CACHE_DIR"
_MAGIC = b"newsletter-cache 1 "
_MAX_BYTES = 16 * 1024 * 1024  # a file larger than this is not ours (or not worth reading)
_checked: dict[str, bool] = {}


def cache_dir() -> Path:
    """The cache folder this process would use (it may not exist)."""
    explicit = os.environ.get(ENV_VARIABLE)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is ignored
        return Path(xdg) / "newsletter"
    return Path.home() / ".cache" / "newsletter"  # "~" when there is no home: refused below


def _usable_dir(create: bool) -> Path | None:
    """The cache folder when it is the user's own and only theirs to write; None otherwise."""
    try:
        folder = cache_dir()
    except (RuntimeError, KeyError):  # no home directory to be found
        return None
    if str(folder).startswith("~"):
        return None
    key = str(folder)
    ok = _checked.get(key)
    if ok is None or (not ok and create):
        try:
            if create:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.stat(folder)
            ok = info.st_uid == os.getuid() and not info.st_mode & 0o022
        except OSError:
            ok = False
        _checked[key] = ok
    return folder if ok else None


def read(name: str) -> bytes | None:
    """The payload stored under ``name``, or None when there is none whole and trustworthy."""
    folder = _usable_dir(create=False)
    if folder is None:
        return None
    try:
        fd = os.open(folder / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_size > _MAX_BYTES:
                return None
            data = handle.read()
    except OSError:
        return None
    header, newline, payload = data.partition(b"\n")
    if not newline or header != _MAGIC + hashlib.sha256(payload).hexdigest().encode():
        return None
    return payload


def write(name: str, payload: bytes) -> None:
    """Store ``payload`` under ``name`` (atomically: a temporary file renamed); failures are ignored."""
    folder = _usable_dir(create=True)
    if folder is None or len(payload) > _MAX_BYTES:
        return
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(tmp, folder / name)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def fingerprint(*parts: object) -> str:
    """A short digest of ``parts`` (versions, sources) to put in a file name."""
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogateescape")).hexdigest()[:20]


def source_digest(path: str) -> str:
    """The SHA-256 of a source file (a module whose code decides what is cached), '' if unreadable."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def installed(package: str) -> str:
    """A stamp of an installed top-level package, found without importing it: the name of its
    ``*.dist-info`` folder (name and version) and the size and time of its ``__init__.py``."""
    import importlib.machinery

    try:
        spec = importlib.machinery.PathFinder.find_spec(package)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        if origin is None:
            return "?"
        info = origin.stat()
        site = origin.parent.parent
        prefix = package.lower() + "-"
        dists = sorted(n for n in os.listdir(site) if n.lower().startswith(prefix) and n.endswith((".dist-info", ".egg-info")))
    except (OSError, ValueError, ImportError):
        return "?"
    return f"{','.join(dists)}|{info.st_size}|{info.st_mtime_ns}"
