"""``newsletter new YYYY-MM``: a commented issue file to fill in."""

from __future__ import annotations

import os
from pathlib import Path

from newsletter.errors import NewsletterError
from newsletter.content.load import ISSUES_DIR, display_path
from newsletter.content.model import MONTH_RE

TEMPLATE = """\
# The {month_name} issue.  Check it with `newsletter check {month}`,
# watch it with `newsletter preview {month}`.
month: {month}                 # must match the file name

# subject: ...                  # optional; default "<newsletter name> — {month_name}"
# preheader: ...                # optional; the grey line inbox lists show after the subject

# The "This month..." text.  Leave it out and one is drafted from the titles.
intro: |
  I blog about ...

articles:                       # one or more
  - title: Title of the first article
    citation:                   # optional; `text` alone is enough
      text: "Surname, A., & Other, B. ({year}). Title of the paper. Journal, 1(2), 3–4. https://doi.org/10.1000/xyz123"
      # authors: ["Surname, A.", "Other, B."]
      # year: {year}
      # doi: 10.1000/xyz123
    topics: [Therapist Factors]  # from `topics` in newsletter.yaml
    # research_type: Meta-analysis   # from `research_types` in newsletter.yaml
    summary: |
      What the study asked, how, and what it found.  Blank lines
      separate paragraphs.
    practice_implications: |
      What a clinician might do differently on Monday.
"""


def new_issue(folder: Path, month: str) -> Path:
    """Create ``issues/YYYY-MM.yaml``; refuse to overwrite an existing file."""
    if not MONTH_RE.match(month):
        raise NewsletterError(f"'{month}' is not a month; write it as YYYY-MM, e.g. 2021-07")
    from newsletter.content.model import MONTH_NAMES

    path = folder / ISSUES_DIR / f"{month}.yaml"
    text = TEMPLATE.format(month=month, year=month[:4], month_name=f"{MONTH_NAMES[int(month[5:]) - 1]} {month[:4]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: refuse atomically even if two commands race.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise NewsletterError("already exists; not overwriting it", path=display_path(path, folder), hint="edit the file, or delete it first if you really want a fresh one") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
