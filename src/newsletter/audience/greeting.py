"""The greeting ``build`` and ``preview`` show, taken from a known list so the author sees what readers get."""

from __future__ import annotations

from pathlib import Path

from newsletter.audience import STORE_FILE
from newsletter.fsutil import display_path
from newsletter.mail.render import PREVIEW_GREETING


def sample_greeting(folder: Path, to: Path | None = None) -> str:
    """The first reader's greeting on ``to`` (a CSV list), else the first confirmed reader's in the
    subscriber store when the folder has one, else "Dear [name],"."""
    # Imported where needed: a build with no list and no store needs none of them (they cost a
    # fifth of `newsletter build` as a process).
    if to is not None:
        from newsletter.audience.subscribers import iter_subscribers
        from newsletter.mail.personalise import greeting_for

        for subscriber in iter_subscribers(to, display=display_path(to, folder)):
            return greeting_for(subscriber.name)
        return PREVIEW_GREETING
    if not (folder / STORE_FILE).is_file():  # opening the store would create it
        return PREVIEW_GREETING
    from newsletter.audience.store import SubscriberStore
    from newsletter.mail.personalise import greeting_for

    with SubscriberStore.open(folder) as store:
        for subscriber in store.confirmed():
            return greeting_for(subscriber.name)
    return PREVIEW_GREETING
