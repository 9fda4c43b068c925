"""Header field values, RFC 2047-encoded and folded under 78 columns without the header registry.

The email package's header registry parses every value into a tree and folds
that tree again on output: about 0.3 ms a header, most of a message's cost.
The values a newsletter writes are simple (a display name and an address, a
subject line, a list name), so they are encoded here directly:

- a word that is plain RFC 5322 ``atext`` stays as it is;
- an ASCII name with specials (``,`` ``:`` ``"``...) becomes a quoted string;
- runs of other words (non-ASCII, or specials inside a non-ASCII name) become
  Q encoded-words, spaces included, because the whitespace *between* two
  encoded-words is not displayed (RFC 2047 section 6.2);
- anything that looks like an encoded-word (``=?``) is itself encoded, so a
  reader never sees a literal decoded by mistake.

tests/test_headers.py parses every form back with the email package.
"""

from __future__ import annotations

import re

# RFC 2047 section 2: a line holding an encoded-word is at most 76 characters; every line kept so.
MAX_LINE = 76
# A longer word is encoded too, so that it can be split: no line ever needs re-folding.
LONGEST_LITERAL = 60
# RFC 5322 atext words separated by single spaces: needs neither quoting nor encoding.
_ATEXT_WORD = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
# Q encoding restricted to what RFC 2047 section 5(3) allows inside a phrase.
_Q_CHAR = [chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) == "-") else ("_" if b == 32 else f"={b:02X}") for b in range(256)]
_Q_PREFIX, _Q_SUFFIX = "=?utf-8?q?", "?="
# Encoded text of an encoded-word that still fits on a line after "Reply-To: " (RFC 2047 allows 75 in all).
_WORD_ROOM = MAX_LINE - len("Reply-To: ") - len(_Q_PREFIX) - len(_Q_SUFFIX)


# What one_line would change: a control, a whitespace run, whitespace at an end, or a tab, NBSP...
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]|\s\s|^\s|\s$|[^\S ]")


def one_line(value: str) -> str:
    """Fold any CR/LF (and other controls) into spaces: header values can never start a new header."""
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        # The common case (a name, a Message-ID: each message of a send passes two here), without the
        # regex search, whose five alternatives tried at every position cost ~15k instructions a value.
        # Every control and every whitespace character but the space is unprintable, so a printable value
        # with single inner spaces is one the search cannot match (a Hypothesis test compares the two).
        return value
    if not _NOT_ONE_LINE.search(value):
        return value
    return " ".join("".join(" " if ord(c) < 32 or c == "\x7f" else c for c in value).split())


# str.translate table from a UTF-8 byte (read as a latin-1 character) to its Q encoding.
_Q_TRANSLATE = {byte: _Q_CHAR[byte] for byte in range(256)}


def encoded_words(text: str) -> list[str]:
    """``text`` as Q encoded-words of at most 75 characters, split between characters, never inside one."""
    # A display name or subject usually fits one word: encoded in one translate call rather
    # than a turn per character (the loop below then splits nowhere, so the result is the same).
    whole = text.encode("utf-8").decode("latin-1").translate(_Q_TRANSLATE)
    if len(whole) <= _WORD_ROOM:
        return [_Q_PREFIX + whole + _Q_SUFFIX] if whole else []
    return _split_encoded_words(text)


def _split_encoded_words(text: str) -> list[str]:
    """``encoded_words`` one character at a time, starting a new word where the next would not fit."""
    words: list[str] = []
    chunk = ""
    for char in text:
        encoded = "".join(_Q_CHAR[b] for b in char.encode("utf-8"))
        if chunk and len(chunk) + len(encoded) > _WORD_ROOM:
            words.append(_Q_PREFIX + chunk + _Q_SUFFIX)
            chunk = ""
        chunk += encoded
    if chunk:
        words.append(_Q_PREFIX + chunk + _Q_SUFFIX)
    return words


def _tokens(text: str, plain: re.Pattern[str] | None) -> list[str]:
    """Words of ``text``: plain ones as they are, runs of the rest as encoded-words.

    ``plain`` matches a word that may stay literal (None: any ASCII word may).
    """
    out: list[str] = []
    run: list[str] = []
    for word in text.split(" ") if text else []:
        literal = (word.isascii() if plain is None else bool(plain.match(word))) and "=?" not in word and len(word) <= LONGEST_LITERAL
        if literal:
            if run:
                out.extend(encoded_words(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.extend(encoded_words(" ".join(run)))
    return out


def phrase_tokens(name: str) -> list[str]:
    """A display name as header tokens: atoms, one quoted string, or atoms and encoded-words."""
    name = one_line(name)
    if not name:
        return []
    words = name.split(" ")
    if "=?" not in name and all(len(word) < LONGEST_LITERAL for word in words):
        if all(_ATEXT_WORD.match(word) for word in words):
            return words
        if _PRINTABLE_ASCII.match(name):
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{quoted}"'.split(" ")
    return _tokens(name, _ATEXT_WORD)


def fold(name: str, tokens: list[str], linesep: str = "\n") -> str:
    """The value of header ``name`` from ``tokens``, joined by spaces, a new line before one that would pass MAX_LINE."""
    lines = [""]
    room = MAX_LINE - len(name) - 2
    for token in tokens:
        if not lines[-1]:
            lines[-1] = token
        elif len(lines[-1]) + 1 + len(token) > room:
            lines.append(" " + token)
            room = MAX_LINE
        else:
            lines[-1] += " " + token
    return linesep.join(lines)


def mailbox_value(header: str, name: str | None, address: str, linesep: str = "\n") -> str:
    """'Display Name <address>' (or the bare address), encoded and folded for ``header``."""
    return mailbox_from_tokens(header, phrase_tokens(name or ""), address, linesep)


def mailbox_from_tokens(header: str, name_tokens: list[str], address: str, linesep: str = "\n") -> str:
    """``mailbox_value`` with the display name's ``phrase_tokens`` already made (a name used in
    several headers is encoded once)."""
    address = one_line(address)
    if not name_tokens:
        return address
    return fold(header, [*name_tokens, f"<{address}>"], linesep)


def unstructured_value(header: str, text: str, linesep: str = "\n") -> str:
    """Free text such as a Subject, with only its non-ASCII words encoded, folded for ``header``."""
    return fold(header, _tokens(one_line(text), None), linesep)


def split_fields(head: bytes) -> list[bytes]:
    """A header block (each line ending CRLF) as whole fields, continuation lines and CRLFs included."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields
