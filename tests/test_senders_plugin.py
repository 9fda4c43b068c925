"""A third-party sender registered through a real ``newsletter.senders`` entry point.

The plug-in is an installed distribution in miniature: a module plus a
``*.dist-info`` folder with METADATA and entry_points.txt, on sys.path (in
process) or on PYTHONPATH (for the real ``newsletter`` command in a subprocess).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.content.config import load_config
from newsletter.errors import NewsletterError
from newsletter.senders import available_senders, describe_senders, load_sender

PLUGIN = '''
"""A sender that writes each hand-over as one JSON line: proof the plug-in path works."""
import json
from pathlib import Path


class PigeonSender:
    name = "pigeon"
    description = "carrier pigeons (writes pigeon.jsonl)"

    def __init__(self, *, config, folder, env):
        self.path = Path(folder) / "pigeon.jsonl"

    def describe(self):
        return f"pigeons to {self.path.name}"

    def connect(self):
        return PigeonConnection(self.path)


class PigeonConnection:
    def __init__(self, path):
        self.path = path

    def deliver(self, envelope_from, recipient, message):
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"from": envelope_from, "to": recipient, "size": len(message),
                                     "subject": [l for l in message.decode().splitlines() if l.startswith("Subject:")][0]}) + "\\n")
        return "250 pigeon left"

    def close(self):
        pass
'''


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch) -> Path:
    """A site-packages-like folder holding the 'pigeon-sender' distribution and a broken one."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "pigeon_sender.py").write_text(PLUGIN)
    info = site / "pigeon_sender-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pigeon-sender\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[newsletter.senders]\npigeon = pigeon_sender:PigeonSender\n")
    (site / "broken_sender.py").write_text("raise ImportError('needs the pigeon SDK')\n")
    broken = site / "broken_sender-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-sender\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text("[newsletter.senders]\nbroken = broken_sender:BrokenSender\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entry_point_is_found_and_loaded(plugin_site, folder):
    assert {"maildir", "smtp", "pigeon", "broken"} <= set(available_senders())
    sender = load_sender("pigeon", load_config(folder, env={}), folder, {})
    assert type(sender).__module__ == "pigeon_sender" and sender.describe() == "pigeons to pigeon.jsonl"
    connection = sender.connect()
    assert connection.deliver("notes@example.org", "ada@example.org", b"Subject: hi\r\n\r\nx\r\n") == "250 pigeon left"
    assert json.loads((folder / "pigeon.jsonl").read_text())["to"] == "ada@example.org"


def test_a_broken_plugin_is_listed_and_refused_clearly(plugin_site, folder):
    info = {i.name: i for i in describe_senders()}
    assert not info["broken"].loadable
    assert info["broken"].description == "cannot be loaded: ImportError: needs the pigeon SDK"
    with pytest.raises(NewsletterError, match="sender 'broken' could not be loaded: ImportError: needs the pigeon SDK"):
        load_sender("broken", load_config(folder, env={}), folder, {})


def test_unknown_sender_lists_the_installed_ones(plugin_site, folder):
    with pytest.raises(NewsletterError) as error:
        load_sender("fax", load_config(folder, env={}), folder, {})
    assert str(error.value).startswith("unknown sender 'fax'; installed senders: broken, maildir, pigeon, smtp")


def test_senders_command_lists_builtins_and_the_plugin(plugin_site):
    result = CliRunner().invoke(main, ["senders"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[lines.index(next(l for l in lines if l.startswith("pigeon "))) + 1].strip() == "pigeon_sender:PigeonSender (from pigeon-sender)"
    assert any(l.startswith("maildir ") and "Maildir outbox" in l for l in lines)
    assert any(l.startswith("smtp ") and "SMTP server" in l for l in lines)
    assert "newsletter.senders.smtp:SMTPSender (from newsletter)" in result.output


def test_real_send_through_the_plugin_in_a_subprocess(plugin_site, folder):
    env = {**os.environ, "PYTHONPATH": str(plugin_site), "NEWSLETTER_SECRET": "test-secret"}
    env.pop("NEWSLETTER_SENDER", None)
    listing = subprocess.run([sys.executable, "-m", "newsletter", "senders"], env=env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "pigeon" in listing.stdout and "carrier pigeons (writes pigeon.jsonl)" in listing.stdout
    sent = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", "2026-11", "--to", "subscribers.example.csv", "--sender", "pigeon", "--yes"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    deliveries = [json.loads(line) for line in (folder / "pigeon.jsonl").read_text().splitlines()]
    expected = [row.split(",")[0] for row in (folder / "subscribers.example.csv").read_text().splitlines()[1:] if row.endswith(",subscribed")]
    assert sorted(d["to"] for d in deliveries) == sorted(a for a in expected if a.isascii())
    assert {d["from"] for d in deliveries} == {"notes@example.org"}
    assert all(d["subject"].startswith("Subject: Practice Research Notes") for d in deliveries)
    assert f"this run: {len(deliveries)} sent" in sent.stdout
    report = json.loads((folder / "archive" / "2026-11" / "report.json").read_text())
    assert report["sender"] == "pigeons to pigeon.jsonl" and report["counts"]["sent"] == len(deliveries)


def test_builtin_senders_match_the_registered_entry_points():
    """load_sender imports a built-in without reading entry points: the table it uses is what pyproject.toml registers."""
    import tomllib

    from newsletter.senders import BUILTIN_SENDERS

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["entry-points"]["newsletter.senders"] == BUILTIN_SENDERS


def test_a_builtin_sender_loads_without_scanning_installed_packages(folder):
    code = (
        "import sys\nfrom pathlib import Path\nfrom newsletter.content.config import load_config\nfrom newsletter.senders import load_sender\n"
        f"folder = Path({str(folder)!r})\n"
        "for name in ('smtp', 'maildir'):\n"
        "    sender = load_sender(name, load_config(folder, env={'NEWSLETTER_SMTP_HOST': 'localhost'}), folder, {})\n"
        "    print(type(sender).__module__)\n"
        "print('importlib.metadata' in sys.modules, 'ssl' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["newsletter.senders.smtp", "newsletter.senders.maildir", "False", "False"]


def test_a_plugin_cannot_take_a_builtin_name(plugin_site, folder):
    info = plugin_site / "pigeon_sender-1.0.dist-info" / "entry_points.txt"
    info.write_text("[newsletter.senders]\npigeon = pigeon_sender:PigeonSender\nsmtp = pigeon_sender:PigeonSender\n")
    assert available_senders()["smtp"].value == "newsletter.senders.smtp:SMTPSender"
    assert type(load_sender("smtp", load_config(folder, env={"NEWSLETTER_SMTP_HOST": "localhost"}), folder, {})).__module__ == "newsletter.senders.smtp"
    listed = {i.name: i for i in describe_senders()}
    assert listed["smtp"].module == "newsletter.senders.smtp:SMTPSender" and listed["smtp"].distribution == "newsletter"
