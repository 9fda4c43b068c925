"""The error root of the package, and the ``Problem`` record used by validation.

Every error a user can cause is a ``NewsletterError`` that knows where it
happened (file and line, an address, or a server) and what to do about it; the
CLI turns it into a message without a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")


def visible(text: str, limit: int = 80) -> str:
    """``text`` for an error message: control and invisible characters as ``\\x00``-style escapes, cut to ``limit``.

    A NUL or a zero-width space in an address must show in the message, or
    "'n2@x.org' is not valid" points at an address that looks fine.
    """
    shown = _INVISIBLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One finding of validation, located in a file."""

    path: str
    line: int | None
    column: int | None
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class ProblemList:
    """Mixin for results that carry ``problems``: splits them into errors and warnings."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]


class NewsletterError(Exception):
    """A problem the user can fix; carries a location and a hint."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.path:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            text = f"{where}: {text}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(NewsletterError):
    """newsletter.yaml is missing or wrong."""


class TemplateError(NewsletterError):
    """A Jinja or MJML template failed to render."""


class ValidationError(NewsletterError):
    """An issue file has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.is_error]
        super().__init__(
            "\n".join(str(p) for p in problems)
            + f"\n{len(errors)} error(s); fix them and run `newsletter check` again."
        )
        self.problems = problems


class SendError(NewsletterError):
    """Sending could not start or a server misbehaved in a way we cannot retry."""


class SubscriberError(NewsletterError):
    """The subscriber list cannot be read."""
