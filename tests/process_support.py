"""Helpers for the tests' child processes and servers: Ctrl-C that works however the suite was started, waiting for a port."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Callable


def restore_ctrl_c() -> None:
    """``preexec_fn`` for Popen: undo an inherited "ignore SIGINT".

    A shell starts background jobs (``cmd &``) with SIGINT ignored, and Python
    then never turns SIGINT into KeyboardInterrupt; a test that presses Ctrl-C
    on the CLI must not depend on how the suite itself was started.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until_listening(port: int, name: str, log: Callable[[], str], timeout: float = 20) -> None:
    """Return once something accepts connections on 127.0.0.1:port; fail the test with the server's log if not."""
    import socket
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{name} did not listen on 127.0.0.1:{port}\n{log()}")


def listening_addresses(port: int) -> list[str]:
    """Local addresses of LISTEN sockets on ``port``, from /proc/net/tcp{,6}."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.append(address)
    return found
