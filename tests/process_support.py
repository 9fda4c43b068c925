"""Child processes of the tests that Ctrl-C (SIGINT) can stop, however the test run was started."""

from __future__ import annotations

import signal


def restore_ctrl_c() -> None:
    """``preexec_fn`` for Popen: undo an inherited "ignore SIGINT".

    A shell starts background jobs (``cmd &``) with SIGINT ignored, and Python
    then never turns SIGINT into KeyboardInterrupt; a test that presses Ctrl-C
    on the CLI must not depend on how the suite itself was started.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
