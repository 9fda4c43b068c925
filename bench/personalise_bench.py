"""What does personalising one message cost?  Run: .venv/bin/python bench/personalise_bench.py

Measured in one run on the example issue, per recipient:

1. the reference: building the message with the ``email`` package for each
   recipient (``message.build_message`` + ``message_bytes`` on an issue
   rendered once), the ~6 ms the issue quotes;
2. rendering and building per recipient, as a tool without templates-once would;
3. ours: ``Personaliser.personalise`` filling slots in the pre-encoded bytes,
   for ASCII and for non-ASCII names.

Prints figures and ratios only (nothing asserts; timings depend on the machine).
"""

from __future__ import annotations

import argparse
import time
from email.headerregistry import Address
from pathlib import Path

from newsletter.content.config import load_config
from newsletter.content.load import load_issue, resolve_issue_path
from newsletter.mail.message import build_message, message_bytes
from newsletter.mail.personalise import Personaliser, greeting_for
from newsletter.mail.render import Personal, Renderer

ROOT = Path(__file__).resolve().parent.parent


def per_call(func, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            func(i)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issue", default=None, help="YYYY-MM (default: the newest example issue)")
    parser.add_argument("-n", type=int, default=2000, help="recipients per timing")
    args = parser.parse_args()
    config = load_config(ROOT)
    issue_arg = args.issue or sorted(p.stem for p in (ROOT / "issues").glob("*.yaml"))[-1]
    issue = load_issue(resolve_issue_path(ROOT, issue_arg), config, ROOT).issue
    renderer = Renderer(ROOT, config)
    personaliser = Personaliser(renderer, issue, config, b"bench key")
    rendered = renderer.render(issue, Personal(greeting_for("Ada Lovelace"), personaliser.unsubscribe_url("ada@example.org")))

    def build(i: int) -> bytes:
        return message_bytes(build_message(rendered, config, to=Address(f"Reader {i}", addr_spec=f"r{i}@example.org")))

    def render_and_build(i: int) -> bytes:
        url = personaliser.unsubscribe_url(f"r{i}@example.org")
        again = renderer.render(issue, Personal(greeting_for(f"Reader {i}"), url))
        return message_bytes(build_message(again, config, to=Address(f"Reader {i}", addr_spec=f"r{i}@example.org"), unsubscribe_url=url))

    size = len(personaliser.personalise("ada@example.org", "Ada Lovelace").data)
    reference = per_call(build, max(50, args.n // 20))
    full = per_call(render_and_build, 20)
    ascii_names = per_call(lambda i: personaliser.personalise(f"r{i}@example.org", f"Reader {i}"), args.n)
    nordic = per_call(lambda i: personaliser.personalise(f"r{i}@example.org", f"Marta R\u00f8nnestad {i}"), args.n)
    print(f"issue {issue_arg}, message {size / 1024:.1f} KB")
    print(f"email package build per recipient (reference): {reference * 1e3:8.3f} ms")
    print(f"render + build per recipient:                  {full * 1e3:8.3f} ms")
    print(f"personalise, ASCII names:                      {ascii_names * 1e6:8.1f} us  ({reference / ascii_names:.0f}x faster than the reference)")
    print(f"personalise, non-ASCII names (RFC 2047):       {nordic * 1e6:8.1f} us  ({reference / nordic:.0f}x faster than the reference)")


if __name__ == "__main__":
    main()
