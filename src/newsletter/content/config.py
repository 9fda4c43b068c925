"""Load and validate ``newsletter.yaml``: who sends, where the archive lives, the vocabularies.

Values from the environment (``NEWSLETTER_SMTP_*``) override the file; the
SMTP password is never read from the file, only from the environment or a
prompt (see ``senders.smtp``).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from newsletter.content.addresses import bounces_address_problem, is_loopback, is_valid_address
from newsletter.errors import ConfigError, NewsletterError, Problem, ValidationError
from newsletter.content.model import DEFAULT_CONSENT, Config, DkimSettings, SMTPSettings, WebSettings
from newsletter.fsutil import display_path
from newsletter.content.yamlsource import YamlSource, parse_yaml_recovering, read_text

CONFIG_NAME = "newsletter.yaml"
USER_TEMPLATES_DIR = "templates"  # the author's template overrides, beside newsletter.yaml

# The topic list of the PPRNet archive pages, spelled exactly as there.
DEFAULT_TOPICS: tuple[str, ...] = (
    "Adherance",
    "Alliance and Therapeutic Relationship",
    "Anxiety Disorders",
    "Attachment",
    "Attendance, Attrition, and Drop-Out",
    "Client Factors",
    "Client Preferences",
    "Cognitive Therapy (CT) and Cognitive-Behavioural Therapy (CBT)",
    "Combination Therapy",
    "Common Factors",
    "Cost-effectiveness",
    "Depression and Depressive Symptoms",
    "Efficacy of Treatments",
    "Empathy",
    "Feedback and Progress Monitoring",
    "Group Psychotherapy",
    "Illness and Medical Comorbidities",
    "Interpersonal Psychotherapy (IPT)",
    "Long-term Outcomes",
    "Medications/Pharmacotherapy",
    "Miscellaneous",
    "Neuroscience and Brain",
    "Outcomes and Deterioration",
    "Personality Disorders",
    "Placebo Effect",
    "Practice-Based Research and Practice Research Networks",
    "Psychodynamic Therapy (PDT)",
    "Resistance and Reactance",
    "Self-Reflection and Awareness",
    "Suicide and Crisis Intervention",
    "Termination",
    "Therapist Factors",
    "Training",
    "Transference and Countertransference",
    "Trauma and/or PTSD",
    "Treatment Length and Frequency",
)

DEFAULT_RESEARCH_TYPES: tuple[str, ...] = (
    "Meta-analysis",
    "Systematic Review",
    "Randomized Controlled Trial",
    "Naturalistic Study",
    "Practice-Based Study",
    "Survey",
    "Qualitative Study",
    "Case Study",
    "Review",
)

SECURITY_MODES = ("none", "starttls", "ssl")
DEFAULT_BOUNCE_THRESHOLD = 3.0
_KNOWN_KEYS = {
    "name", "sender", "reply_to", "postal_address", "archive_url", "unsubscribe",
    "list_id", "language", "topics", "research_types", "smtp", "send", "bounces", "dkim", "web",
}
DKIM_KEY_VARIABLE = "NEWSLETTER_DKIM_KEY"
# A DKIM selector: dot-separated DNS labels (RFC 6376 section 3.1).
SELECTOR_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_WEB_KEYS = {"base_url", "consent_text", "trusted_proxy", "subscribe_limit"}


MIN_RATE, MAX_RATE = 0.001, 100_000.0  # one message in ~17 minutes .. far beyond any server
MIN_TIMEOUT, MAX_TIMEOUT = 0.05, 3600.0


def rate_error(rate: object, name: str) -> str | None:
    """Why ``rate`` (messages per second) cannot be used, or None: NaN, infinity, 1e-300 and text crashed the send."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
        shown = f"{rate:g}" if isinstance(rate, float) else str(rate)
        return f"{name} must be a number of messages per second from {MIN_RATE:g} to {MAX_RATE:g}, not {shown}"
    return None


def find_config(folder: Path) -> Path:
    """The config file of a newsletter folder."""
    return folder / CONFIG_NAME


def load_config(folder: Path, env: Mapping[str, str] | None = None) -> Config:
    """Load the folder's config; raise ValidationError listing every problem (ConfigError if there is none)."""
    config, problems = check_config(folder, env)
    errors = [p for p in problems if p.is_error]
    if (errors or config is None) and not find_config(folder).exists():  # a config was read from the file
        raise ConfigError(
            f"no {CONFIG_NAME} in {folder.resolve()}",
            hint=f"run newsletter from your newsletter folder (the one with {CONFIG_NAME} and issues/), or give --folder",
        )
    if errors or config is None:
        raise ValidationError(errors or [Problem(CONFIG_NAME, None, None, "configuration is invalid")])
    return config


def check_config(folder: Path, env: Mapping[str, str] | None = None, *, lenient: bool = False) -> tuple[Config | None, list[Problem]]:
    """Parse and validate the config, collecting every problem instead of stopping at the first.

    ``lenient``: with errors, still return a stand-in config (placeholders where a
    setting is bad) when the file could be read, so `check` can go on to check
    the issues against its topics and research types.
    """
    env = os.environ if env is None else env
    path = find_config(folder)
    display = display_path(path, folder)
    if not path.exists():
        return None, [Problem(display, None, None, f"no {CONFIG_NAME} here; run newsletter from your newsletter folder (the one with {CONFIG_NAME} and issues/)")]
    try:
        found, yaml_errors = parse_yaml_recovering(read_text(path, display), display)
    except NewsletterError as exc:
        return None, [Problem(exc.path or display, exc.line, exc.column, exc.message)]
    yaml_problems = [Problem(e.path or display, e.line, e.column, e.message) for e in yaml_errors]
    if found is None or not isinstance(found.data, dict):
        return None, yaml_problems or [Problem(display, 1, 1, "the config must be a mapping of settings (name:, sender:, ...)")]
    src = found
    data = src.data
    problems: list[Problem] = []
    for key in data:
        if key not in _KNOWN_KEYS:
            problems.append(src.problem((key,), f"unknown setting '{key}'; known settings: {', '.join(sorted(_KNOWN_KEYS))}", "warning", at_key=True))

    def text(*key: str, required: bool = False) -> str | None:
        node: Any = data
        for k in key:
            node = node.get(k) if isinstance(node, dict) else None
        node = src.as_text(key, node)  # `name: No` stays "No" (YAML 1.1 would say False)
        if node is None or (isinstance(node, str) and not node.strip()):
            if required:
                problems.append(src.problem(key[:-1], f"missing required setting '{'.'.join(key)}'"))
            return None
        if not isinstance(node, (str, int, float)):
            problems.append(src.problem(key, f"'{'.'.join(key)}' must be text"))
            return None
        return str(node).strip()

    def address(*key: str, required: bool = False) -> str | None:
        value = text(*key, required=required)
        if value is not None and not is_valid_address(value):
            problems.append(src.problem(key, f"'{value}' is not a valid email address"))
        return value

    name = text("name", required=True)
    sender_name = text("sender", "name") or name
    sender_email = address("sender", "email", required=True)
    reply_to = address("reply_to")
    postal = text("postal_address", required=True)
    archive_url = text("archive_url", required=True)
    if archive_url and not archive_url.startswith(("https://", "http://")):
        problems.append(src.problem(("archive_url",), "archive_url must start with https:// (it is the 'view in browser' link)"))
    elif archive_url and _UNSAFE_URL.search(archive_url):
        problems.append(src.problem(("archive_url",), _unsafe_url_message("archive_url")))
    unsub_email = address("unsubscribe", "email")
    unsub_url = text("unsubscribe", "url")
    if unsub_url and not unsub_url.startswith("https://"):
        problems.append(src.problem(("unsubscribe", "url"), "unsubscribe.url must start with https:// (RFC 8058 one-click unsubscribe needs HTTPS)"))
    elif unsub_url and _UNSAFE_URL.search(unsub_url):
        problems.append(src.problem(("unsubscribe", "url"), _unsafe_url_message("unsubscribe.url")))
    web = _web_settings(src, problems)
    if web.base_url:
        endpoint = web.url("unsubscribe")
        if unsub_url and unsub_url != endpoint:
            problems.append(src.problem(
                ("unsubscribe", "url"),
                f"unsubscribe.url is {unsub_url} but web.base_url makes the unsubscribe link {endpoint}; "
                "remove unsubscribe.url (newsletter serve answers it) or make them the same",
            ))
        unsub_url = endpoint
    if not unsub_email and not unsub_url:
        problems.append(src.problem(("unsubscribe",), "set unsubscribe.email, unsubscribe.url or web.base_url: every email must offer a way to unsubscribe"))

    bounces_address, bounce_threshold = _bounces(src, address, problems)
    topics = _string_list(src, "topics", problems) or DEFAULT_TOPICS
    research_types = _string_list(src, "research_types", problems) or DEFAULT_RESEARCH_TYPES
    smtp = _smtp_settings(src, env, problems)
    send = data.get("send") if isinstance(data.get("send"), dict) else {}
    sender_plugin = env.get("NEWSLETTER_SENDER") or send.get("sender") or ("smtp" if smtp.host else "maildir")
    rate = send.get("rate")
    rate_problem = rate_error(rate, "send.rate") if rate is not None else None
    if rate_problem:
        problems.append(src.problem(("send", "rate"), rate_problem))
        rate = None
    concurrency = send.get("concurrency", 1)
    if not isinstance(concurrency, int) or concurrency < 1:
        problems.append(src.problem(("send", "concurrency"), "send.concurrency must be a whole number of connections, 1 or more"))
        concurrency = 1
    dkim = _dkim_settings(src, env, sender_email, problems)
    if yaml_problems:
        # the rest of the file was read with the bad lines left out: its other problems are reported too,
        # but not the settings the left-out lines would have held
        kept = yaml_problems + [p for p in problems if p.is_error and not p.message.startswith("missing required")]
        problems = sorted(kept, key=lambda p: (p.line or 0, p.column or 0))
    failed = any(p.is_error for p in problems)
    if failed and not lenient:
        return None, problems
    if failed:  # placeholders, never used to send: `check` only validates and renders with them
        name = name or "Newsletter"
        sender_email = sender_email if sender_email and is_valid_address(sender_email) else "sender@example.invalid"
        postal, archive_url = postal or "(postal address)", archive_url or "https://example.invalid/"
        reply_to = reply_to if reply_to and is_valid_address(reply_to) else None
        unsub_email = unsub_email if unsub_email and is_valid_address(unsub_email) else "unsubscribe@example.invalid"
    assert name and sender_email and postal and archive_url
    return (
        Config(
            name=name,
            sender_name=sender_name or name,
            sender_email=sender_email,
            postal_address=postal,
            archive_url=archive_url,
            reply_to=reply_to,
            unsubscribe_email=unsub_email,
            unsubscribe_url=unsub_url,
            list_id=text("list_id"),
            language=text("language") or "en",
            topics=topics,
            research_types=research_types,
            sender=str(sender_plugin),
            smtp=smtp,
            rate=float(rate) if rate else None,
            concurrency=concurrency,
            bounces_address=bounces_address,
            bounce_threshold=bounce_threshold,
            dkim=dkim,
            web=web,
        ),
        problems,
    )


def _bounces(src: YamlSource, address: Any, problems: list[Problem]) -> tuple[str | None, float]:
    """bounces.address (checked to fit a VERP local part) and bounces.threshold (default 3)."""
    raw = src.data.get("bounces")
    if raw is None:
        return None, DEFAULT_BOUNCE_THRESHOLD
    if not isinstance(raw, dict):
        problems.append(src.problem(("bounces",), "'bounces' must be a mapping (address:, threshold:)"))
        return None, DEFAULT_BOUNCE_THRESHOLD
    value = address("bounces", "address")
    problem = bounces_address_problem(value) if value and is_valid_address(value) else None
    if problem:
        problems.append(src.problem(("bounces", "address"), problem))
        value = None
    threshold = raw.get("threshold", DEFAULT_BOUNCE_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold <= 0:
        problems.append(src.problem(("bounces", "threshold"), f"bounces.threshold must be a number above 0 (hard bounce 1, soft 0.5), not '{threshold}'"))
        threshold = DEFAULT_BOUNCE_THRESHOLD
    return value, float(threshold)


def _string_list(src: YamlSource, key: str, problems: list[Problem]) -> tuple[str, ...]:
    value = src.data.get(key)
    if value is None:
        return ()
    if isinstance(value, list):
        value = [src.as_text((key, i), v) for i, v in enumerate(value)]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(src.problem((key,), f"'{key}' must be a list of names"))
        return ()
    return tuple(v.strip() for v in value)


def _dkim_settings(src: YamlSource, env: Mapping[str, str], sender_email: str | None, problems: list[Problem]) -> DkimSettings | None:
    """``dkim:`` (selector, key_file, domain); the domain must align with From (DMARC relaxed alignment)."""
    raw = src.data.get("dkim")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(src.problem(("dkim",), "'dkim' must be a mapping (selector:, key_file:, domain:)"))
        return None
    for key in raw:
        if key not in ("selector", "key_file", "domain"):
            problems.append(src.problem(("dkim", key), f"unknown setting 'dkim.{key}'; known: selector, key_file, domain", at_key=True))
    if "key" in raw or "private_key" in raw:
        problems.append(src.problem(("dkim",), f"do not put the DKIM private key in newsletter.yaml; use dkim.key_file or {DKIM_KEY_VARIABLE}"))
    selector = str(raw.get("selector") or "").strip()
    if not re.fullmatch(SELECTOR_PATTERN, selector):
        where = ("dkim", "selector") if "selector" in raw else ("dkim",)
        problems.append(src.problem(where, "dkim.selector must be a DNS label such as s1 (run 'newsletter dkim keygen --selector s1')"))
        return None
    from_domain = (sender_email or "").rpartition("@")[2].lower()
    domain = str(raw.get("domain") or from_domain).strip().lower().rstrip(".")
    if from_domain and not (from_domain == domain or from_domain.endswith("." + domain)):
        problems.append(src.problem(
            ("dkim", "domain"),
            f"dkim.domain '{domain}' does not align with the From domain '{from_domain}': DMARC needs the signing domain "
            f"to be '{from_domain}' or a parent of it; remove dkim.domain to sign as {from_domain}",
        ))
        return None
    key_file = raw.get("key_file")
    if key_file is not None and not (isinstance(key_file, str) and key_file.strip()):
        problems.append(src.problem(("dkim", "key_file"), "dkim.key_file must be the path of a PEM private key file"))
        return None
    if key_file is None and not env.get(DKIM_KEY_VARIABLE):
        # a warning, not an error: the key may live only in the environment of the shell that sends,
        # and build or preview need no key; send stops with an error when it is still missing
        problems.append(src.problem(("dkim",), f"dkim has no key_file and {DKIM_KEY_VARIABLE} is not set: send will stop until one of them gives the private key", "warning"))
    return DkimSettings(selector=selector, domain=domain, key_file=key_file.strip() if key_file else None)
def _web_settings(src: YamlSource, problems: list[Problem]) -> WebSettings:
    """The ``web:`` block: the endpoint's public base URL (https, except on loopback) and its limits."""
    raw = src.data.get("web")
    if raw is None:
        return WebSettings()
    if not isinstance(raw, dict):
        problems.append(src.problem(("web",), "'web' must be a mapping (base_url:, consent_text:, trusted_proxy:, subscribe_limit:)"))
        return WebSettings()
    for key in raw:
        if key not in _WEB_KEYS:
            problems.append(src.problem(("web", key), f"unknown setting 'web.{key}'; known: {', '.join(sorted(_WEB_KEYS))}", "warning", at_key=True))
    base_url = _base_url(src, raw.get("base_url"), problems)
    consent = raw.get("consent_text")
    if consent is not None and (not isinstance(consent, str) or not consent.strip()):
        problems.append(src.problem(("web", "consent_text"), "web.consent_text must be the text a subscriber agrees to"))
        consent = None
    proxy = raw.get("trusted_proxy")
    if proxy is not None:
        try:
            proxy = str(ipaddress.ip_address(str(proxy).strip()))
        except ValueError:
            problems.append(src.problem(("web", "trusted_proxy"), f"web.trusted_proxy must be the IP address of your reverse proxy (like 127.0.0.1), not '{proxy}'"))
            proxy = None
    limit = raw.get("subscribe_limit", WebSettings.subscribe_limit)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        problems.append(src.problem(("web", "subscribe_limit"), "web.subscribe_limit must be a whole number of sign-ups per IP address per hour, 1 or more"))
        limit = WebSettings.subscribe_limit
    return WebSettings(base_url=base_url, consent_text=" ".join(consent.split()) if consent else DEFAULT_CONSENT,
                       trusted_proxy=proxy, subscribe_limit=limit)


# Characters a URL cannot hold as it is (RFC 3986): in List-Unsubscribe "<url>" a '>' or a space
# ends the URL early or adds another, and in the footer's href they are escaped or encoded, so the
# footer check would then fail with a misleading "no unsubscribe link".
_UNSAFE_URL = re.compile(r'[\s"<>\x00-\x1f\x7f]')


def _unsafe_url_message(setting: str) -> str:
    return f"{setting} cannot contain spaces, quotes, angle brackets or control characters; write them percent-encoded (a space as %20)"


def _base_url(src: YamlSource, value: object, problems: list[Problem]) -> str | None:
    """web.base_url with a trailing slash, or None; https unless the host is loopback."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        problems.append(src.problem(("web", "base_url"), f"web.base_url must be an address like https://notes.example.org/ (no query), not '{text}'"))
        return None
    if _UNSAFE_URL.search(text):
        problems.append(src.problem(("web", "base_url"), _unsafe_url_message("web.base_url")))
        return None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        problems.append(src.problem(
            ("web", "base_url"),
            f"web.base_url must start with https:// (it carries subscribers' tokens, and one-click unsubscribe needs HTTPS), not '{text}'; plain http is only for 127.0.0.1 or localhost",
        ))
        return None
    return text if text.endswith("/") else text + "/"


def _smtp_settings(src: YamlSource, env: Mapping[str, str], problems: list[Problem]) -> SMTPSettings:
    raw = src.data.get("smtp") or {}
    if not isinstance(raw, dict):
        problems.append(src.problem(("smtp",), "'smtp' must be a mapping (host:, port:, security:, username:)"))
        raw = {}
    if "password" in raw:
        problems.append(src.problem(("smtp", "password"), "do not put the SMTP password in newsletter.yaml; set NEWSLETTER_SMTP_PASSWORD or answer the prompt", at_key=True))
    def problem(key: str, variable: str, message: str) -> None:
        """A bad value, located where it came from: the environment variable, or the file's line."""
        if env.get(variable):
            problems.append(Problem(f"environment variable {variable}", None, None, message))
        else:
            problems.append(src.problem(("smtp", key), message))

    host = env.get("NEWSLETTER_SMTP_HOST") or raw.get("host")
    security = str(env.get("NEWSLETTER_SMTP_SECURITY") or raw.get("security") or "starttls").lower()
    if security not in SECURITY_MODES:
        problem("security", "NEWSLETTER_SMTP_SECURITY", f"smtp security must be one of {', '.join(SECURITY_MODES)}, not '{security}'")
        security = "starttls"
    default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
    port_text = env.get("NEWSLETTER_SMTP_PORT") or raw.get("port") or default_port
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except (TypeError, ValueError):
        problem("port", "NEWSLETTER_SMTP_PORT", f"smtp port must be a number from 1 to 65535, not '{port_text}'")
        port = default_port
    username = env.get("NEWSLETTER_SMTP_USERNAME") or raw.get("username")
    try:
        timeout = float(raw.get("timeout", 30))
        if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:  # also false for NaN; .inf overflowed the socket timeout
            raise ValueError
    except (TypeError, ValueError):
        problems.append(src.problem(
            ("smtp", "timeout"), f"smtp timeout must be a number of seconds from {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g}, not '{src.as_text(('smtp', 'timeout'), raw.get('timeout'))}'",
        ))
        timeout = 30.0
    return SMTPSettings(
        host=str(host) if host else None,
        port=port,
        security=security,
        username=str(username) if username else None,
        timeout=timeout,
    )
