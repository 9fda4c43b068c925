"""``newsletter check``: validate the config and issue files, reporting every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from newsletter.content.config import CONFIG_NAME, check_config
from newsletter.errors import NewsletterError, Problem, ProblemList
from newsletter.content.load import check_issue, display_path, issue_paths, resolve_issue_path
from newsletter.mail.render import Renderer


@dataclass
class CheckReport(ProblemList):
    """All problems found, in the order of the files checked."""

    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check(folder: Path, targets: list[str] | None = None, *, placeholders: str = "error") -> CheckReport:
    """Check the config and the given issues (default: every file in issues/).

    Scaffold text left in an issue is an error (``placeholders="warning"`` for the preview).
    """
    report = CheckReport()
    config, config_problems = check_config(folder, lenient=True)
    report.problems.extend(config_problems)
    report.checked.append(CONFIG_NAME)
    if config is None:
        return report
    paths = _issue_targets(folder, targets) if targets else issue_paths(folder)
    renderer = Renderer(folder, config)
    for path in paths:
        loaded = check_issue(path, config, folder, placeholders=placeholders)
        report.checked.append(loaded.display)
        report.problems.extend(loaded.problems)
        if loaded.issue is None:
            continue
        if loaded.issue.intro_drafted:
            report.problems.append(loaded.source.problem((), f"no intro; this one was drafted from the titles: \"{loaded.issue.intro}\"", "warning") if loaded.source else Problem(loaded.display, 1, 1, "no intro", "warning"))
        try:
            rendered = renderer.render(loaded.issue)
        except NewsletterError as exc:
            report.problems.append(Problem(exc.path or loaded.display, exc.line, exc.column, exc.message))
            continue
        if rendered.clipped_by_gmail:
            report.problems.append(
                Problem(
                    loaded.display, 1, 1,
                    f"the HTML email is {rendered.html_bytes / 1024:.0f} KB; Gmail clips messages over 102 KB, hiding the footer and unsubscribe link. Shorten the summaries or split the issue",
                )
            )
    if not paths:
        report.problems.append(Problem(display_path(folder / "issues", folder), None, None, "no issue files found; create one with `newsletter new YYYY-MM`", "warning"))
    return report


def _issue_targets(folder: Path, targets: list[str]) -> list[Path]:
    """Issue files named on the command line: a folder means its *.yaml files; the config is checked anyway."""
    config_path = (folder / CONFIG_NAME).resolve()
    paths: list[Path] = []
    for target in targets:
        path = resolve_issue_path(folder, target)
        if path.is_dir():
            paths.extend(sorted(path.glob("*.yaml")))
        elif path.resolve() != config_path:
            paths.append(path)
    return paths
