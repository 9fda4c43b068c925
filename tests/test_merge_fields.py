"""Merge fields: the subscriber list's columns as ``subscriber.<column>`` in the email templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.content.config import load_config
from newsletter.errors import TemplateError
from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.content.load import load_issue, resolve_issue_path
from newsletter.mail.personalise import Personaliser
from newsletter.mail.render import MergeFields, Personal, Renderer
from newsletter.delivery.send import SendOptions, execute, prepare
from send_support import Receiver, Server

PACKAGED = Path(__file__).resolve().parent.parent / "src" / "newsletter" / "templates"
TEXT_LINE = "Your reading group meets in {{ subscriber.city }} ({{ subscriber.email }})."
HTML_LINE = '<p class="city">Your reading group meets in {{ subscriber.city }}.</p>'


def use_city(folder: Path, text_line: str = TEXT_LINE, html_line: str = HTML_LINE) -> None:
    """User templates: the packaged ones with a line naming the subscriber's city after the greeting."""
    templates = folder / "templates"
    templates.mkdir(exist_ok=True)
    text = (PACKAGED / "email.txt.j2").read_text(encoding="utf-8")
    (templates / "email.txt.j2").write_text(text.replace("{{ greeting | wrap }}\n", "{{ greeting | wrap }}\n" + text_line + "\n", 1), encoding="utf-8")
    mjml = (PACKAGED / "email.mjml.j2").read_text(encoding="utf-8")
    marker = '{% if greeting %}<p class="greeting">{{ greeting }}</p>{% endif %}'
    assert marker in mjml
    (templates / "email.mjml.j2").write_text(mjml.replace(marker, marker + html_line, 1), encoding="utf-8")


def personaliser(folder: Path, columns: tuple[str, ...] | None) -> Personaliser:
    config = load_config(folder)
    issue = load_issue(resolve_issue_path(folder, "2026-11"), config, folder).issue
    return Personaliser(Renderer(folder, config), issue, config, b"key", columns=columns)


def bodies(data: bytes) -> tuple[str, str]:
    import email
    import email.policy

    msg = email.message_from_bytes(data, policy=email.policy.default)
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_build_and_preview_show_the_column_as_a_placeholder(folder: Path) -> None:
    use_city(folder)
    config = load_config(folder)
    issue = load_issue(resolve_issue_path(folder, "2026-11"), config, folder).issue
    rendered = Renderer(folder, config).render(issue, Personal(greeting="Dear reader,"))
    assert "Your reading group meets in [city] ([email])." in rendered.text
    assert "Your reading group meets in [city]." in rendered.html


def test_each_recipient_gets_their_own_values_escaped(folder: Path) -> None:
    use_city(folder)
    fast = personaliser(folder, ("email", "name", "city"))
    data = fast.personalise("ada@example.org", "Ada", fields={"city": "Troms\u00f8 & <Bergen>"}).data
    text, html = bodies(data)
    assert "Your reading group meets in Troms\u00f8 & <Bergen> (ada@example.org)." in text
    assert "Your reading group meets in Troms\u00f8 &amp; &lt;Bergen&gt;." in html
    # the same as rendering the message for this one recipient
    config = load_config(folder)
    issue = load_issue(resolve_issue_path(folder, "2026-11"), config, folder).issue
    slow = Renderer(folder, config).render(issue, Personal(subscriber=MergeFields({"email": "ada@example.org", "name": "Ada", "city": "Troms\u00f8 & <Bergen>"})))
    assert "Your reading group meets in Troms\u00f8 &amp; &lt;Bergen&gt;." in slow.html
    other = bodies(fast.personalise("bo@example.org", None, fields={}).data)[0]
    assert "Your reading group meets in  (bo@example.org)." in other  # an empty cell stays empty


def test_a_column_the_list_lacks_names_template_and_line(folder: Path) -> None:
    use_city(folder)
    with pytest.raises(TemplateError) as caught:
        personaliser(folder, ("email", "name", "town"))
    error = caught.value
    assert error.message == "the subscriber list has no column 'city'"
    lines = (folder / "templates" / "email.mjml.j2").read_text(encoding="utf-8").splitlines()
    assert str(error.path).endswith("email.mjml.j2") and error.line == next(n for n, line in enumerate(lines, 1) if "subscriber.city" in line)
    assert "its columns are: email, name, town" in error.hint


@pytest.mark.parametrize(
    "text_line",
    [
        "In {{ subscriber.city | upper }}.",
        "{% if subscriber.city %}You meet in {{ subscriber.city }}.{% else %}No group yet.{% endif %}",
        "{% if subscriber.vip == 'yes' %}Thank you!{% endif %}",
        "In {{ subscriber.city or 'somewhere' }}.",
        "Map: https://maps.example.org/?q={{ subscriber['city'] | urlencode }}",
        "{% set where = subscriber.city %}In {{ where }}.",
    ],
)
def test_merge_field_in_logic_or_filters_is_refused_while_writing(folder: Path, text_line: str) -> None:
    """The value is filled in after rendering, so logic on it would be decided on a placeholder."""
    use_city(folder, text_line=text_line)
    config = load_config(folder)
    issue = load_issue(resolve_issue_path(folder, "2026-11"), config, folder).issue
    for render in (lambda: Renderer(folder, config).render(issue), lambda: personaliser(folder, ("email", "name", "city", "vip"))):
        with pytest.raises(TemplateError) as caught:
            render()
        error = caught.value
        assert error.path == str(folder / "templates" / "email.txt.j2") and error.line == 7
        assert "is filled in per recipient after rendering, so it can only be written on its own" in error.message
        assert error.message.startswith(("subscriber.city ", "subscriber.vip "))


def test_a_filtered_greeting_is_refused_before_sending(folder: Path) -> None:
    templates = folder / "templates"
    templates.mkdir()
    text = (PACKAGED / "email.txt.j2").read_text(encoding="utf-8")
    (templates / "email.txt.j2").write_text(text.replace("{{ greeting | wrap }}", "{{ greeting | upper }}"), encoding="utf-8")
    with pytest.raises(TemplateError, match="can only be written as they are"):
        personaliser(folder, ("email", "name"))


def test_a_column_may_have_any_name(folder: Path) -> None:
    use_city(folder, text_line="Code {{ subscriber._values }} / {{ subscriber['items'] }}.", html_line="")
    data = personaliser(folder, ("email", "name", "_values", "items")).personalise("a@example.org", fields={"_values": "V1", "items": "I2"}).data
    assert "Code V1 / I2." in bodies(data)[0]


def test_sent_messages_carry_each_row_and_a_resume_uses_the_list_as_it_is_now(folder: Path) -> None:
    use_city(folder)
    csv = folder / "list.csv"
    csv.write_text(
        'email;name;city;status\nada@example.org;Ada;Oslo;\nbo@example.org;Bo;"Bergen\tBcc: evil";\n'
        "cy@example.org;Cy;Troms\u00f8;unsubscribed\n",
        encoding="utf-8",
    )
    options = SendOptions(issue="2026-11", to=csv, sender="smtp", retry_delay=0.01, max_attempts=1)
    with Server(Receiver(faults={"ada@example.org": ["451"]})) as server:
        first = execute(prepare(folder, options, env=server.env()))
        got = {g.rcpt: g for g in server.receiver.received()}
    assert first.counts["deferred"] == 1 and set(got) == {"bo@example.org"}
    text, html = bodies(got["bo@example.org"].data)
    assert "Your reading group meets in Bergen Bcc: evil (bo@example.org)." in text
    assert "meets in Bergen Bcc: evil.</p>" in html
    assert b"\r\nBcc:" not in got["bo@example.org"].data.split(b"\r\n\r\n")[0]
    with Ledger(ledger_path(folder, "2026-11"), recover=False) as ledger:
        assert {row.address: row.fields for row in ledger.rows()} == {
            "ada@example.org": {"city": "Oslo"}, "bo@example.org": {"city": "Bergen Bcc: evil"},
        }
    # Ada was deferred; the author fixes her city in the list and runs the same command again
    csv.write_text(csv.read_text(encoding="utf-8").replace("Ada;Oslo", "Ada;Trondheim"), encoding="utf-8")
    with Server() as server:
        second = execute(prepare(folder, options, env=server.env()))
        got = {g.rcpt: g for g in server.receiver.received()}
    assert second.ok and set(got) == {"ada@example.org"}
    assert "Your reading group meets in Trondheim (ada@example.org)." in bodies(got["ada@example.org"].data)[0]
