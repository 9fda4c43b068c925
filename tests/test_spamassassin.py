"""SpamAssassin (Debian's, local rules: ``spamassassin -L -t``) scores the built message and every sent copy at most 0.1."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from newsletter.delivery.send import SendOptions, execute, prepare
from newsletter.mail.build import build, render_issue
from newsletter.mail.dkim import keygen
from send_support import Server, write_list

pytestmark = pytest.mark.skipif(shutil.which("spamassassin") is None, reason="spamassassin is not installed (scripts/test installs it)")
LIMIT = 0.1


def scores(messages: list[bytes], home: Path) -> list[tuple[float, str]]:
    """(score, report) of each message, several spamassassin processes at once (each takes ~1 s of CPU)."""

    def one(data: bytes) -> tuple[float, str]:
        result = subprocess.run(
            ["spamassassin", "-L", "-t", "--siteconfigpath", "/etc/spamassassin", "--configpath", "/usr/share/spamassassin"],
            input=data, capture_output=True, timeout=300, env={"HOME": str(home), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )
        report = result.stdout.decode("utf-8", "replace")
        found = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", report)
        assert found, report + result.stderr.decode("utf-8", "replace")
        return float(found.group(1)), report[report.index("Content analysis details"):]

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, messages))


def long_issue(folder: Path) -> str:
    """A generated 2026-12 issue of 9 articles (the two example issues' articles, retitled), near Gmail's clip size."""
    articles = []
    for month in ("2026-10", "2026-11"):
        articles += yaml.safe_load((folder / "issues" / f"{month}.yaml").read_text(encoding="utf-8"))["articles"]
    issue = yaml.safe_load((folder / "issues" / "2026-11.yaml").read_text(encoding="utf-8"))
    issue["month"] = "2026-12"
    # deep copies: a repeated object would be written as a YAML alias, which newsletter files refuse
    issue["articles"] = [dict(copy.deepcopy(a), title=f"{a['title']} ({n + 1})") for n, a in enumerate((articles * 3)[:9])]
    (folder / "issues" / "2026-12.yaml").write_text(yaml.safe_dump(issue, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return "2026-12"


def test_built_messages_score_at_most_0_1(folder: Path, tmp_path: Path) -> None:
    issues = ["2026-10", "2026-11", long_issue(folder)]
    built = [build(folder, issue) for issue in issues]
    assert built[-1].rendered.html_bytes > 40_000  # the long one really is long
    results = scores([b.eml_path.read_bytes() for b in built], tmp_path)
    for issue, (score, report) in zip(issues, results):
        assert score <= LIMIT, f"{issue}:\n{report}"


def test_every_sent_signed_copy_scores_at_most_0_1(folder: Path, tmp_path: Path) -> None:
    keygen(folder, "s1")
    with (folder / "newsletter.yaml").open("a", encoding="utf-8") as handle:
        handle.write("\ndkim:\n  selector: s1\n  key_file: dkim/s1.pem\n")
    csv = write_list(folder / "list.csv", [("ann@example.net", "Ann Example"), ("zoe@example.com", "Zoë Ünal"), ("bo@example.org", "")])
    with Server() as server:
        execute(prepare(folder, SendOptions(issue="2026-11", to=csv, sender="smtp", retry_delay=0.05), env=server.env()))
        got = server.receiver.received()
    assert len(got) == 3
    for copy, (score, report) in zip(got, scores([g.data for g in got], tmp_path)):
        assert score <= LIMIT, f"{copy.rcpt}:\n{report}"


def test_preheader_is_hidden_without_white_text_and_padded(folder: Path) -> None:
    _, rendered, _ = render_issue(folder, "2026-11")
    hidden = re.search(r'<div style="([^"]*)" aria-hidden="true">([^<]*)</div>', rendered.html)
    assert hidden, "no hidden preheader"
    style, text = hidden.groups()
    for rule in ("display:none", "max-height:0", "overflow:hidden", "opacity:0", "mso-hide:all"):
        assert rule in style.replace(" ", "")
    assert "color" not in style
    assert text.startswith("Routine outcome monitoring, repairing alliance ruptures, and why clients leave early.")
    assert text.count("\u034f\u200c\u00a0") >= 80  # pushes "View this issue in your browser" out of the inbox preview
    head = rendered.html[: rendered.html.index("</head>")]
    assert '<meta name="color-scheme" content="light">' in head
    assert '<meta name="supported-color-schemes" content="light">' in head
