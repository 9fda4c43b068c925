"""Turning a validated issue into email: Jinja2 → MJML → premailer for HTML, its own plain-text
template, MIME and header encoding, per-recipient personalisation, `build`, `preview` and `check`
(which renders the templates, so it sits here rather than in content).  Uses only `content`."""
