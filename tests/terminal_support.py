"""Run the real `newsletter` command on a pseudo-terminal, typing answers when prompts appear."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path


def run_on_terminal(args: list[str], cwd: Path | None = None, answers: list[tuple[bytes, bytes]] = (), env: dict[str, str] | None = None,
                    timeout: float = 60, *, python_args: list[str] | None = None) -> tuple[int, bytes]:
    """Run `python -m newsletter ARGS` (or `python PYTHON_ARGS`) with a pty as its terminal; for each
    (prompt, reply), type the reply once the prompt has appeared.  Returns the exit code and
    everything the terminal showed."""
    argv = [sys.executable, *(python_args if python_args is not None else ["-m", "newsletter", *args])]
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("COLUMNS", "100")
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        try:
            if cwd is not None:
                os.chdir(cwd)
            os.execve(sys.executable, argv, child_env)
        finally:
            os._exit(127)
    output = b""
    pending = list(answers)
    searched = 0  # each prompt is looked for after the previous one, so a repeated question counts again
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child has exited and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            while pending and (found := output.find(pending[0][0], searched)) >= 0:
                prompt, reply = pending.pop(0)
                searched = found + len(prompt)
                os.write(fd, reply + b"\n")
        else:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output
