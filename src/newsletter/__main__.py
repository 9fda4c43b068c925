"""The ``newsletter`` console script and ``python -m newsletter``.

``newsletter --version`` is answered here, before click and the command
definitions are imported: click alone costs about as much as starting Python,
and the version is what scripts and package managers probe most (issue 15
asks for it within 4x of ``python -c pass``).  Everything else goes to
``newsletter.cli``, which prints the same version line for ``--version``
given with other arguments.
"""

from __future__ import annotations

import sys

from newsletter import __version__


def main() -> None:
    """Run the command line (the console script's entry point)."""
    if sys.argv[1:] == ["--version"]:
        print(f"newsletter, version {__version__}")  # the line click's version_option prints
        return
    from newsletter.cli import main as cli

    cli(prog_name="newsletter")  # usage lines name the command, also under "python -m newsletter"


if __name__ == "__main__":
    main()
