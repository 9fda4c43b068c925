"""Replace a whole directory at once: build it beside the target, then swap.

Readers see the old directory or the new one, never a mixture.  On Linux the
swap is one ``renameat2(RENAME_EXCHANGE)`` call; elsewhere it falls back to two
renames (the old tree is moved aside first, so nothing is ever lost).  libc is
reached through the process's own symbols (``ctypes.CDLL(None)``), not
``ctypes.util.find_library``, which runs ``ldconfig -p`` in a child process: that
was in every ``newsletter build`` that replaced an earlier build.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from newsletter.errors import NewsletterError
from newsletter.fsutil import DIR_MODE, fsync_dir

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def temp_dir_beside(target: Path) -> Path:
    """A fresh empty directory in the target's parent (same file system, so rename works)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        made = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        made.chmod(DIR_MODE)  # it becomes the published folder: mkdtemp's 0700 would shut out a web server
        return made
    except OSError as exc:
        raise NewsletterError(f"cannot create a folder here: {exc.strerror}", path=str(target.parent), hint="check the folder exists and is writable") from None


def fsync_tree(directory: Path) -> None:
    """Flush every file and folder below ``directory`` to disk before it is published."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False if the platform cannot."""
    import ctypes  # here: most commands never swap

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):  # no renameat2 (old glibc, not Linux), no dlopen(NULL)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _rename_if_absent(new: Path, target: Path) -> bool:
    """Rename ``new`` to ``target`` when there is no target; False when there is one, including
    one another run (a second build at once) published between the check and the rename."""
    if target.exists():
        return False
    try:
        os.rename(new, target)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def replace_directory(new: Path, target: Path) -> None:
    """Publish the finished directory ``new`` as ``target``, removing the old tree afterwards."""
    try:
        if _rename_if_absent(new, target):
            pass
        elif _exchange(new, target):
            shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old tree
        else:
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.rename(target, aside / "old")
            try:
                os.rename(new, target)
            except OSError:
                os.rename(aside / "old", target)  # put the old tree back
                shutil.rmtree(aside, ignore_errors=True)
                raise
            shutil.rmtree(aside, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise NewsletterError(f"cannot replace the folder: {exc.strerror}", path=str(target), hint="check the folder is writable and not open elsewhere") from None
    fsync_dir(target.parent)
