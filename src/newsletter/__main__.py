"""Allow ``python -m newsletter``."""

from newsletter.cli import main

if __name__ == "__main__":
    main(prog_name="newsletter")  # usage lines name the command, not "python -m newsletter"
