"""The command line as a user meets it: exit codes, messages, files written or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main


def run(folder: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--folder", str(folder)], catch_exceptions=False)


def test_check_passes_on_the_examples(folder: Path) -> None:
    result = run(folder, "check")
    assert result.exit_code == 0, result.output
    assert "checked 3 file(s): 0 error(s)" in result.output


def test_check_reports_every_problem_and_fails(folder: Path) -> None:
    (folder / "issues" / "2021-01.yaml").write_text("month: 2021-02\narticles:\n  - title: X\n    topics: [Alliance]\n", encoding="utf-8")
    (folder / "issues" / "2021-03.yaml").write_text("month: 2021-03\narticles: [\n", encoding="utf-8")
    result = run(folder, "check")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "issues/2021-01.yaml:1:8: error: month 2021-02 does not match the file name '2021-01.yaml'; rename the file to 2021-02.yaml or fix the month" in lines
    assert "issues/2021-01.yaml:3:5: error: missing required field 'summary'" in lines
    assert "issues/2021-01.yaml:4:14: error: unknown topic 'Alliance'; did you mean 'Alliance and Therapeutic Relationship'?" in lines
    assert any(line.startswith("issues/2021-03.yaml:3:1: error: YAML syntax error") for line in lines)
    assert "Traceback" not in result.output


def test_check_one_path(folder: Path) -> None:
    result = run(folder, "check", "2026-10")
    assert result.exit_code == 0
    assert "checked 2 file(s)" in result.output


def test_gmail_clipping_is_an_error(folder: Path) -> None:
    big = "\n\n".join(["Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20] * 30)
    text = "month: 2021-05\narticles:\n" + "".join(
        f"  - title: Article {i}\n    topics: [Empathy]\n    summary: |\n" + "".join(f"      {line}\n" for line in big.splitlines()) + "    practice_implications: x\n"
        for i in range(4)
    )
    (folder / "issues" / "2021-05.yaml").write_text(text, encoding="utf-8")
    result = run(folder, "check", "2021-05")
    assert result.exit_code == 1
    assert "issues/2021-05.yaml:1:1: error: the HTML email is" in result.output
    assert "Gmail clips messages over 102 KB" in result.output
    build = run(folder, "build", "2021-05")
    assert build.exit_code == 1
    assert not (folder / "build" / "2021-05").exists()


def test_new_scaffolds_and_refuses_to_overwrite(folder: Path) -> None:
    result = run(folder, "new", "2027-01")
    assert result.exit_code == 0, result.output
    path = folder / "issues" / "2027-01.yaml"
    original = path.read_text(encoding="utf-8")
    assert original.startswith("# The January 2027 issue.")
    assert run(folder, "build", "2027-01").exit_code == 0  # the scaffold renders, placeholders and all
    again = run(folder, "new", "2027-01")
    assert again.exit_code == 1
    assert "error: issues/2027-01.yaml: already exists; not overwriting it" in again.output
    assert path.read_text(encoding="utf-8") == original


def test_new_rejects_a_bad_month(folder: Path) -> None:
    result = run(folder, "new", "2027-13")
    assert result.exit_code == 1
    assert "'2027-13' is not a month; write it as YYYY-MM, e.g. 2021-07" in result.output


def test_build_writes_three_files(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(folder, "build", "2026-10", "--out", str(out))
    assert result.exit_code == 0, result.output
    target = out / "2026-10"
    assert sorted(p.name for p in target.iterdir()) == ["email.html", "email.txt", "message.eml"]
    assert "The Alliance Predicts Outcome Across Treatments" in (target / "email.txt").read_text(encoding="utf-8")


def test_build_of_a_broken_issue_writes_nothing(folder: Path) -> None:
    path = folder / "issues" / "2026-10.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("topics: [Empathy, Therapist Factors]", "topics: [Empathie]"), encoding="utf-8")
    result = run(folder, "build", "2026-10")
    assert result.exit_code == 1
    assert "unknown topic 'Empathie'; did you mean 'Empathy'?" in result.output
    assert not (folder / "build").exists()


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path, "build", "2026-10")
    assert result.exit_code == 1
    assert result.output == (
        f"error: no newsletter.yaml in {tmp_path.resolve()}\n"
        "  hint: run newsletter from your newsletter folder (the one with newsletter.yaml and issues/), or give --folder\n"
    )


def test_check_goes_on_to_the_issues_when_the_config_has_errors(folder: Path) -> None:
    config = folder / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("reply_to: editor@example.org", "reply_to: nope"), encoding="utf-8")
    issue = folder / "issues" / "2026-11.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("topics: [", "topics: [Trainng, ", 1), encoding="utf-8")
    for args in ((), ("newsletter.yaml", "issues/"), ("issues",)):
        result = run(folder, "check", *args)
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0] == "newsletter.yaml:6:11: error: 'nope' is not a valid email address"
        assert any(line.startswith("issues/2026-11.yaml:") and "unknown topic 'Trainng'; did you mean 'Training'?" in line for line in lines)
        assert lines[-1] == "checked 3 file(s): 2 error(s), 0 warning(s)"
    built = run(folder, "build", "2026-10")
    assert built.exit_code == 1
    assert built.output == "newsletter.yaml:6:11: error: 'nope' is not a valid email address\n1 error(s); fix them and try again.\n"


def test_a_key_given_twice_is_an_error_not_a_silent_loss(folder: Path) -> None:
    issue = folder / "issues" / "2026-11.yaml"
    text = issue.read_text(encoding="utf-8")
    first = text.index("    summary:")
    line = text[:first].count("\n") + 1
    issue.write_text(text[:first] + "    summary: an earlier draft\n" + text[first:], encoding="utf-8")
    result = run(folder, "check", "2026-11")
    assert result.exit_code == 1
    assert (
        f"issues/2026-11.yaml:{line + 1}:5: error: 'summary' appears twice here (first on line {line}); "
        "the second would silently replace the first (merge the two or rename one)"
    ) in result.output.splitlines()


def test_a_bad_smtp_setting_from_the_environment_names_the_variable(folder: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--folder", str(folder)], env={"NEWSLETTER_SMTP_PORT": "abc"})
    assert result.exit_code == 1
    assert "environment variable NEWSLETTER_SMTP_PORT: error: smtp port must be a number from 1 to 65535, not 'abc'" in result.output.splitlines()


def test_missing_issue_file(folder: Path) -> None:
    result = run(folder, "build", "2030-01")
    assert result.exit_code == 1
    assert "issues/2030-01.yaml: error: file not found" in result.output


def test_config_problems_are_located(folder: Path) -> None:
    cfg = folder / "newsletter.yaml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("email: notes@example.org", "email: not-an-address"), encoding="utf-8")
    result = run(folder, "check")
    assert result.exit_code == 1
    assert "newsletter.yaml:5:10: error: 'not-an-address' is not a valid email address" in result.output


def test_real_subprocess_build(folder: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "2026-11"],
        cwd=folder, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "built build/2026-11/" in proc.stdout
    assert (folder / "build" / "2026-11" / "message.eml").stat().st_size > 10_000


def test_real_subprocess_error_has_no_traceback(folder: Path) -> None:
    (folder / "issues" / "2026-11.yaml").write_text("month: [\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "newsletter", "build", "2026-11"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("issues/2026-11.yaml:2:1: error: YAML syntax error")
    assert "Traceback" not in proc.stderr


def newsletter(cwd: Path, *args: str, input: str = "") -> subprocess.CompletedProcess:
    """The real command in a child process; stdin is a pipe, so never a terminal."""
    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=cwd, input=input, capture_output=True, text=True, timeout=60)


def test_minus_c_before_the_subcommand(folder: Path, tmp_path: Path) -> None:
    proc = newsletter(tmp_path, "-C", str(folder), "list")
    assert proc.returncode == 0, proc.stderr
    assert sorted(line[:16] for line in proc.stdout.splitlines()) == ["2026-10  checked", "2026-11  checked"]
    long = newsletter(tmp_path, "--folder", str(folder), "build", "2026-11")
    assert long.returncode == 0 and (folder / "build" / "2026-11" / "email.html").is_file()
    # after the subcommand it still works, and wins
    assert newsletter(tmp_path, "-C", str(tmp_path), "list", "-C", str(folder)).stdout == proc.stdout


def test_minus_h_works_for_every_command(tmp_path: Path) -> None:
    from newsletter.cli import main as group

    for name in ["", *group.commands]:
        proc = newsletter(tmp_path, *([name] if name else []), "-h")
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.startswith(f"Usage: newsletter {name + ' ' if name else ''}[OPTIONS]"), name


def test_help_lists_commands_in_workflow_order_with_whole_summaries(tmp_path: Path) -> None:
    from newsletter.cli import COMMAND_ORDER, main as group

    proc = subprocess.run([sys.executable, "-m", "newsletter", "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**__import__("os").environ, "COLUMNS": "80"})
    listing = proc.stdout.split("Commands:\n", 1)[1]
    names = [line.split()[0] for line in listing.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert names[:7] == ["init", "new", "check", "preview", "build", "send", "status"]
    assert sorted(names) == sorted(group.commands)  # every command, a new one too
    assert names == [n for n in COMMAND_ORDER if n in group.commands] + sorted(n for n in group.commands if n not in COMMAND_ORDER)
    flat = " ".join(listing.split())
    for name in names:  # each summary whole: click would cut it with "..."
        doc = " ".join((group.commands[name].help or "").split("\n\n")[0].split())
        assert doc in flat, name
    assert "..." not in listing


def test_a_piped_no_prints_error_and_hint_not_a_usage_banner(folder: Path) -> None:
    proc = newsletter(folder, "send", "2026-11", "--to", "subscribers.example.csv", input="no\n")
    assert proc.returncode == 1
    assert "Usage:" not in proc.stderr and "Try 'newsletter" not in proc.stderr
    assert proc.stderr.splitlines()[-2:] == [
        "error: refusing to send without confirmation: no terminal to ask on",
        "  hint: check the summary above, then run the same command with --yes",
    ]
    assert not (folder / "outbox").exists()


def test_status_of_an_unsent_issue_is_not_sent_yet(folder: Path) -> None:
    proc = newsletter(folder, "status", "2026-11")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["2026-11: not sent yet", "  hint: send it with `newsletter send 2026-11 --to subscribers.example.csv`"]


@pytest.mark.parametrize("command", ["build", "preview", "send", "status", "check"])
def test_a_month_that_is_not_one(folder: Path, command: str) -> None:
    result = run(folder, command, "2026-13")
    assert result.exit_code == 1
    assert "error: '2026-13' is not a month; write it as YYYY-MM, e.g. 2021-07" in result.output


def test_senders_with_a_name_but_no_check_says_what_to_add(folder: Path) -> None:
    result = run(folder, "senders", "smtp")
    assert result.exit_code == 1
    assert "'newsletter senders smtp' needs --check" in result.output
    assert "Traceback" not in result.output
