"""The user's cache (newsletter.mail.usercache): where it is, and that it never changes or breaks a run.

Renders run in child processes, so that each starts with nothing in memory and a cold, warm or
damaged cache folder is all it has; their output is compared with the golden files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.mail import usercache

DATA = Path(__file__).parent / "data" / "golden"
GOLDEN = Path(__file__).parent / "golden"

# Renders the golden issue and prints HTML, NUL, text.  With "forbid", everything the cache stands
# in for raises: Jinja compiling or parsing a template, cssutils parsing CSS, cssselect
# translating a selector; so the render succeeds only if all of it came from the cache.
RENDER = """
import sys
from pathlib import Path
folder, forbid = Path(sys.argv[1]), sys.argv[2] == "forbid"
if forbid:
    import cssutils, jinja2, lxml.cssselect, premailer
    def refuse(*args, **kwargs):
        raise AssertionError("computed instead of read from the cache")
    jinja2.Environment.compile = refuse
    jinja2.Environment.parse = refuse
    cssutils.parseStyle = cssutils.parseString = refuse
    premailer.Premailer._parse_style_rules = refuse
    lxml.cssselect.CSSSelector.__init__ = refuse
from newsletter.content.config import load_config
from newsletter.content.load import load_issue
from newsletter.mail.render import Renderer
config = load_config(folder)
issue = load_issue(folder / "issues" / "2021-07.yaml", config, folder).issue
rendered = Renderer(folder, config).render(issue)
sys.stdout.buffer.write(rendered.html.encode() + b"\\0" + rendered.text.encode())
"""


@pytest.fixture
def golden_folder(tmp_path: Path) -> Path:
    target = tmp_path / "golden"
    shutil.copytree(DATA, target)
    return target


def expected() -> tuple[str, str]:
    return (GOLDEN / "2021-07.html").read_text(encoding="utf-8"), (GOLDEN / "2021-07.txt").read_text(encoding="utf-8")


def render(folder: Path, cache: Path, forbid: bool = False) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", RENDER, str(folder), "forbid" if forbid else "-"],
                          env={**os.environ, usercache.ENV_VARIABLE: str(cache)}, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    html, text = done.stdout.split(b"\0")
    return html.decode(), text.decode()


def test_cold_then_warm_cache_give_the_golden_bytes_and_the_warm_one_computes_nothing(golden_folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(AssertionError):  # the check below can fail: with nothing cached, all is computed
        render(golden_folder, cache / "empty", forbid=True)
    assert render(golden_folder, cache) == expected()
    kinds = sorted({path.name.split("-")[0] for path in cache.iterdir()})
    assert kinds == ["css", "jinja", "merge"]
    assert render(golden_folder, cache, forbid=True) == expected()
    assert render(golden_folder, cache) == expected()


def test_with_a_warm_cache_premailer_and_cssutils_are_not_imported(golden_folder: Path, tmp_path: Path) -> None:
    # importing them was a fifth of a build with a warm cache; logging is only for cssutils' messages,
    # and SQLite only for archives that exist (build asks whether the month is archived)
    code = RENDER.replace("sys.stdout.buffer.write(", (
        "__import__('newsletter.publish.archive').publish.archive.archived_warning(folder, '2021-07'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'premailer', 'cssutils', 'cssselect', 'logging', 'sqlite3'})) or ("))
    cache = tmp_path / "cache"
    env = {**os.environ, usercache.ENV_VARIABLE: str(cache)}
    imported = [subprocess.run([sys.executable, "-c", code, str(golden_folder), "-"], env=env, capture_output=True, text=True,
                               check=True).stdout for _ in range(2)]
    assert imported == ["['cssselect', 'cssutils', 'logging', 'premailer']\n", "[]\n"]


def damaged(data: bytes) -> dict[str, bytes]:
    """Ways a cache file can be wrong, given one good file's bytes."""
    header, _, payload = data.partition(b"\n")
    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    return {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "a flipped byte": bytes(flipped),
        "no header": payload,
        "garbage": os.urandom(300),
    }


def test_a_damaged_cache_is_ignored_and_then_repaired(golden_folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    render(golden_folder, cache)
    good = {path: path.read_bytes() for path in cache.iterdir()}
    for how in damaged(next(iter(good.values()))):
        for path, data in good.items():
            path.write_bytes(damaged(data)[how])
        assert render(golden_folder, cache) == expected(), how
        # each damaged file was replaced by a good one: the next run computes nothing
        assert render(golden_folder, cache, forbid=True) == expected(), how


@pytest.mark.parametrize("payload", [
    b"not json", b"[1, 2]", b'{"pairs": 3}', b'{"xpaths": {}, "pairs": {"a": [[1, 2]]}, "floats": {}, "styles": {}}',
    json.dumps({"xpaths": {}, "pairs": {}, "floats": {}, "styles": {"0\\nx": [[[["1"], "p", "c:d"]], None]}}).encode(),
    b'{"k": [[["one", "two"]], []]}', b'{"k": [[[1, 2, 3]], ["x"]]}', b"\x00\x01 not marshal",
    "right checksum, not marshal", "right checksum, not code",
])
def test_a_well_sealed_file_of_the_wrong_shape_is_ignored(golden_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          payload: bytes | str) -> None:
    """Whole files (their digest checks) holding something else than expected: a foreign file,
    a file from a bug, a compiled template that is no code object."""
    import marshal

    cache = tmp_path / "cache"
    render(golden_folder, cache)
    monkeypatch.setenv(usercache.ENV_VARIABLE, str(cache))
    for path in cache.iterdir():
        if isinstance(payload, str):
            checksum = usercache.read(path.name).partition(b"\n")[0]  # a template's: its source's
            tail = b"\xe3 garbage" if payload.endswith("marshal") else marshal.dumps(("a", 1))
            usercache.write(path.name, checksum + b"\n" + tail)
        else:
            usercache.write(path.name, payload)
    assert render(golden_folder, cache) == expected()


def test_an_unusable_cache_folder_still_builds(golden_folder: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert render(golden_folder, not_a_folder) == expected()
    assert render(golden_folder, not_a_folder / "below") == expected()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # others may write there: neither read nor written
    assert render(golden_folder, shared) == expected()
    assert list(shared.iterdir()) == []
    done = subprocess.run([sys.executable, "-m", "newsletter", "build", "2021-07", "--folder", str(golden_folder)],
                          env={**os.environ, usercache.ENV_VARIABLE: str(not_a_folder)}, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (golden_folder / "build" / "2021-07" / "email.html").is_file()


def test_where_the_cache_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(usercache.ENV_VARIABLE, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert usercache.cache_dir() == tmp_path / "home" / ".cache" / "newsletter"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert usercache.cache_dir() == tmp_path / "home" / ".cache" / "newsletter"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert usercache.cache_dir() == tmp_path / "xdg" / "newsletter"
    monkeypatch.setenv(usercache.ENV_VARIABLE, str(tmp_path / "mine"))
    assert usercache.cache_dir() == tmp_path / "mine"


def test_write_then_read_whole_files_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cache = tmp_path / "new" / "cache"
    monkeypatch.setenv(usercache.ENV_VARIABLE, str(cache))
    assert usercache.read("a") is None
    usercache.write("a", b"payload\nwith lines")
    assert usercache.read("a") == b"payload\nwith lines"
    assert cache.stat().st_mode & 0o777 == 0o700 and (cache / "a").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in cache.iterdir()] == ["a"]  # no temporary file left behind
    (cache / "b").symlink_to(cache / "a")
    assert usercache.read("b") is None  # a link may point anywhere: not followed
    (cache / "a").write_bytes((cache / "a").read_bytes()[:-1])
    assert usercache.read("a") is None


def shout(value: str) -> str:
    return value.upper()


def shout_with_context(context: object, value: str) -> str:
    return value + "!"


def test_a_compiled_template_does_not_outlive_a_change_of_the_filters_it_was_compiled_with(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Jinja decides when it compiles how each filter is called (with the context or not) and runs a
    filter of constants there and then; the compiled code depends on the filters, not only on the
    template's source.  site.py registers its own filter (``paras``) outside render.py, whose source
    is all the cache's names carry: a changed filter must not be called the way the old one was."""
    import jinja2

    from newsletter.mail.render import make_environment

    monkeypatch.setenv(usercache.ENV_VARIABLE, str(tmp_path / "cache"))
    folder = tmp_path / "newsletter"
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "t.html.j2").write_text("{{ x | shout }} {{ 'k' | shout }}\n", encoding="utf-8")
    before = make_environment(folder)
    before.filters["shout"] = shout
    assert before.get_template("t.html.j2").render(x="a") == "A K\n"
    assert any(path.name.startswith("jinja-") for path in (tmp_path / "cache").iterdir())  # it was cached
    after = make_environment(folder)  # a later run, its filter changed
    after.filters["shout"] = jinja2.pass_eval_context(shout_with_context)
    assert after.get_template("t.html.j2").render(x="a") == "a! k!\n"
