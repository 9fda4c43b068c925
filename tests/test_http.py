"""The endpoint's HTTP helpers: static files never escape site/, content types."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.http import Request, content_type_of, static_file


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "2026-10").mkdir(parents=True)
    (site / "index.html").write_text("home")
    (site / "2026-10" / "index.html").write_text("october")
    (site / "feed.xml").write_text("<feed/>")
    (site / ".hidden").write_text("no")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", site / "link.txt")
    return site


def test_files_and_folders_resolve_inside_the_site(tmp_path: Path) -> None:
    site = _site(tmp_path)
    assert static_file(site, "/") == (site / "index.html").resolve()
    assert static_file(site, "/2026-10/") == (site / "2026-10" / "index.html").resolve()
    assert static_file(site, "/feed.xml") == (site / "feed.xml").resolve()
    assert static_file(site, "/missing.html") is None
    assert static_file(site, "/2026-10") is None, "a folder without its slash (the endpoint redirects)"


def test_nothing_outside_the_site_or_hidden_is_served(tmp_path: Path) -> None:
    site = _site(tmp_path)
    for path in ("/../secret.txt", "/2026-10/../../secret.txt", "/link.txt", "/.hidden", "/%2e%2e/secret.txt", "/..\\secret.txt", "/a\x00b"):
        assert static_file(site, path) is None, path


def test_content_types() -> None:
    assert content_type_of(Path("index.html")) == "text/html; charset=utf-8"
    assert content_type_of(Path("topics/empathy.xml")) == "application/atom+xml; charset=utf-8"
    assert content_type_of(Path("assets/site.css")) == "text/css; charset=utf-8"
    assert content_type_of(Path("assets/filter.js")).startswith(("text/javascript", "application/javascript"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "", "2026-10", "index.html", "..\\", "%2e%2e", "link.txt", ".hidden", "x\x00", "site", "secret.txt"]), max_size=6))
def test_no_path_ever_leads_outside_the_site(tmp_path_factory, parts: list[str]) -> None:
    root = tmp_path_factory.getbasetemp() / "property"
    site = root / "site"
    if not site.exists():
        _site(root)
    found = static_file(site, "/" + "/".join(parts))
    assert found is None or site.resolve() in found.parents


def test_a_form_with_too_many_fields_reads_as_empty() -> None:
    """parse_qs raises past max_num_fields; a form of ours never has that many, so it reads as no form
    (the CSRF checks then refuse it) instead of a 500 and a traceback."""
    import io

    body = "&".join(f"f{i}=x" for i in range(21)).encode()
    environ = {"CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    assert Request(environ).form() == {}
