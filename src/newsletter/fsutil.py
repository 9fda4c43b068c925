"""Atomic file writes: a temporary file in the same directory, fsync, then rename."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from newsletter.errors import NewsletterError


def _process_umask() -> int:
    """The umask, read without changing it where Linux tells it (os.umask alone must set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import, before any thread starts.  Temporary files and folders are
# private (0600/0700); what is published gets the modes a plain open()/mkdir() would
# give, so a web server can read a site/ folder and rsync -a copies sane modes.
UMASK = _process_umask()
FILE_MODE = 0o666 & ~UMASK
DIR_MODE = 0o777 & ~UMASK


def atomic_write(path: Path, data: bytes | str, *, encoding: str = "utf-8") -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a half."""
    try:
        tmp = _fsynced_temp(path, data.encode(encoding) if isinstance(data, str) else data)
    except OSError as exc:
        raise NewsletterError(f"cannot write: {exc.strerror}", path=str(path), hint="check the folder exists and is writable") from None
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise NewsletterError(f"cannot write: {exc.strerror}", path=str(path)) from None
        raise


def create_new(path: Path, data: bytes | str, *, encoding: str = "utf-8") -> None:
    """Write a file that must not exist yet: whole (temporary file, fsync) and never over an existing one.

    ``os.link`` publishes the finished temporary file under the new name and fails
    if the name exists, so two racing commands cannot both create it and a full
    disk leaves no half-written file.  FileExistsError is left to the caller.
    """
    try:
        tmp = _fsynced_temp(path, data.encode(encoding) if isinstance(data, str) else data)
        try:
            os.link(tmp, path)
        finally:
            _unlink_quietly(tmp)
    except FileExistsError:
        raise
    except OSError as exc:
        raise NewsletterError(f"cannot write here: {exc.strerror}", path=str(path.parent), hint="check that the folder is writable") from None


def _fsynced_temp(path: Path, payload: bytes) -> str:
    """A private temporary file beside ``path`` holding ``payload``, on disk; its name (removed on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def display_path(path: Path, folder: Path | None = None) -> str:
    """A path as the user would type it: relative to the folder or cwd when possible.

    A file inside the folder with no symbolic link or '..' on the way (``issues/2026-10.yaml``)
    is shown as written after one lstat per step; anything else is resolved.  Resolving costs
    an lstat per directory of both paths in Python, a sixth of loading an issue (issue 15);
    tests/test_fsutil.py compares the two on random trees of links.
    """
    if folder is not None:
        inside = _plainly_inside(path, folder)
        if inside is not None:
            return inside
    return _display_path_by_resolving(path, folder)


def _plainly_inside(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` when it is ``folder/a/b`` and neither a nor a/b is a link; else None.

    Then resolving both gives the resolved folder joined with a/b, so the relative path is
    a/b as written.  A '..' (which climbs out of a link's target) or any link, missing or
    unreadable step goes the long way.
    """
    whole, base = str(path), str(folder)
    if not whole.startswith(base) or whole[len(base):len(base) + 1] != "/":
        return None
    relative = whole[len(base) + 1:]
    step = base
    for name in relative.split("/"):
        if name in ("", ".", ".."):
            return None
        step = f"{step}/{name}"
        try:
            if stat.S_ISLNK(os.lstat(step).st_mode):
                return None
        except OSError:
            return None
    return relative


def _display_path_by_resolving(path: Path, folder: Path | None = None) -> str:
    """``display_path`` by resolving every link of the path, the folder and perhaps the working directory."""
    resolved = path.resolve()
    for base in (folder, None) if folder is not None else (None,):
        try:  # the working directory only when the folder does not do (it costs a getcwd and a resolve)
            return str(resolved.relative_to((Path.cwd() if base is None else base).resolve()))
        except ValueError:
            continue
    return str(path)


def sqlite_uri(path: Path, *, read_only: bool = False) -> str:
    """A ``file:`` URI for ``sqlite3.connect(..., uri=True)``, its path %-encoded.

    Pasted in raw, a '#', '?' or '%' in the folder's name would end or change the path, and
    SQLite would open (and create) some other file, without ``mode=ro``.
    """
    return path.resolve().as_uri() + ("?mode=ro" if read_only else "")


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def utf16_name(data: bytes) -> str | None:
    """"UTF-16" when ``data`` (the start of a file) is UTF-16 text, by its byte-order mark or its zero bytes.

    Spreadsheets on Windows save "Unicode text" as UTF-16; such a file is not
    "broken UTF-8" and the user needs to hear which encoding to choose instead.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    sample = data[:200]
    if len(sample) >= 4 and sample.count(0) * 3 >= len(sample) and (sample[1::2].count(0) * 4 >= len(sample) or sample[0::2].count(0) * 4 >= len(sample)):
        return "UTF-16"
    return None
