"""DKIM signatures (RFC 6376): rsa-sha256, relaxed/relaxed, on every message that leaves.

The DKIM format comes from dkimpy: its relaxed canonicalisation of headers and
bodies, its choice of which header instances a ``h=`` list names
(``select_headers``), its removal of the ``b=`` value and its folding.  Two
steps are done here instead, for speed (dkimpy's pure-Python RSA costs 7.5-9 ms
a message, which would cap sending at ~120 messages a second):

- the RSA step goes to OpenSSL through ``cryptography`` (~0.3 ms on 2048 bits);
- the body is canonicalised piece by piece with a cache.  A personalised
  message is a list of byte pieces (``personalise.Personaliser``): large
  literal chunks shared by every copy and small per-recipient slots, each
  ending at a line end.  Relaxed body canonicalisation works line by line, so
  the canonical form of a shared chunk is computed once and reused; per copy
  only the slots are canonicalised and everything hashed (SHA-256 of ~30 KB).
  Pieces that do not end at a line end, or a body ending in blank lines, take
  the plain path (the whole body canonicalised at once), which is always right.

``tests/test_dkim.py`` checks the signatures with dkimpy's verifier and with
OpenDKIM's, on messages received by a real SMTP server.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import Relaxed, compress_whitespace, strip_trailing_whitespace

from newsletter.content.config import DKIM_KEY_VARIABLE, SELECTOR_PATTERN, check_config
from newsletter.content.model import Config, DkimSettings
from newsletter.errors import ConfigError
from newsletter.fsutil import display_path
from newsletter.mail.headers import split_fields

KEY_BITS = 2048
# Signed when present, in this order (issue 13); RFC 6376 section 5.4.1.
SIGNED_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id",
)
# Named once more than they occur, so a copy added later (a second From, a forged
# unsubscribe target) breaks the signature (RFC 6376 section 8.15).
OVERSIGNED = (b"from", b"list-unsubscribe", b"list-unsubscribe-post")
_SIGNED = frozenset(SIGNED_HEADERS)
_CACHE_MIN = 512  # pieces shorter than this are cheaper to canonicalise than to look up
_CACHE_MAX = 256


class DkimSigner:
    """Signs finished messages with one private key for ``d=domain; s=selector``."""

    def __init__(self, private_key: rsa.RSAPrivateKey, domain: str, selector: str) -> None:
        self.key = private_key
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self._canonical: dict[bytes, bytes] = {}
        self._fields: dict[bytes, tuple[bytes, bytes]] = {}
        self._layouts: dict[tuple[bytes, ...], _Layout] = {}  # by the signed header names
        self._padding = padding.PKCS1v15()
        self._prehashed = utils.Prehashed(hashes.SHA256())
        self._signature_size = (private_key.key_size + 7) // 8

    def sign(self, message: bytes | Sequence[bytes], *, now: float | None = None) -> bytes:
        """The message with a DKIM-Signature header in front.

        ``message`` may be given as the pieces that make it up; shared pieces
        (the same bytes objects from copy to copy) are canonicalised only once.
        """
        return b"".join(self.sign_pieces(message, now=now))

    def sign_pieces(self, message: bytes | Sequence[bytes], *, now: float | None = None) -> list[bytes]:
        """``sign`` as pieces: the DKIM-Signature header's, then the message's own."""
        pieces = [message] if isinstance(message, bytes) else list(message)
        head, body_pieces = _split(pieces)
        chosen = []
        for field in split_fields(head):
            hit = self._canonical_field(field)
            if hit is not None:
                chosen.append(hit)
        body_hash = self.body_hash(body_pieces)
        stamp = str(int(time.time() if now is None else now)).encode("ascii")
        names = tuple(name for name, _ in chosen)
        layout = self._layouts.get(names)
        if layout is None or layout.stamp_size != len(stamp):
            layout = self._layouts[names] = _Layout(self, names, len(stamp))
        # RFC 6376 section 5.4.2: a name listed n times takes the last n instances, bottom up (dkim.select_headers)
        instances: dict[bytes, list[bytes]] = {}
        for name, canonical in chosen:
            instances.setdefault(name, []).append(canonical)
        signed: list[bytes] = []
        for name in layout.include:
            found = instances.get(name)
            if found:
                signed.append(name + b":" + found.pop())
        value = layout.unsigned.fill(stamp, body_hash)
        _, own = _relaxed_header(b"DKIM-Signature", b" " + value)
        signed.append(b"dkim-signature:" + own.rstrip())  # hashed without its CRLF
        signature = self.key.sign(hashlib.sha256(b"".join(signed)).digest(), self._padding, self._prehashed)
        return [b"DKIM-Signature: ", layout.signed.fill(stamp, body_hash, base64.b64encode(signature)), *pieces]

    def body_hash(self, pieces: Sequence[bytes]) -> bytes:
        """Base64 SHA-256 of the relaxed canonical body made of ``pieces``."""
        hasher = hashlib.sha256()
        if all(p.endswith(b"\r\n") for p in pieces[:-1]):
            canonical = [self._canonical_lines(p) for p in pieces]
            last = next((c for c in reversed(canonical) if c), b"")
            if last.endswith(b"\r\n") and not last.endswith(b"\r\n\r\n") and last != b"\r\n":
                hasher.update(b"".join(canonical))  # one update: the GIL is let go once, not per piece
                return base64.b64encode(hasher.digest())
        hasher.update(Relaxed.canonicalize_body(b"".join(pieces)))
        return base64.b64encode(hasher.digest())

    def _canonical_field(self, field: bytes) -> tuple[bytes, bytes] | None:
        """(lowercased name, relaxed value) of one raw header field, None when it is not signed; cached."""
        hit = self._fields.get(field)
        if hit is None:
            name, _, value = field.partition(b":")
            if name.lower() not in _SIGNED:
                return None
            hit = _relaxed_header(name, value)
            if len(self._fields) >= _CACHE_MAX:
                self._fields.clear()
            self._fields[field] = hit
        return hit

    def _canonical_lines(self, piece: bytes) -> bytes:
        """Relaxed canonical form of whole lines (no end-of-body rule), cached for large shared pieces."""
        if len(piece) < _CACHE_MIN:
            return _relaxed_lines(piece)
        hit = self._canonical.get(piece)
        if hit is None:
            if len(self._canonical) >= _CACHE_MAX:
                self._canonical.clear()
            hit = self._canonical[piece] = _relaxed_lines(piece)
        return hit

    def public_record(self) -> str:
        """The TXT record to publish at ``<selector>._domainkey.<domain>``."""
        return txt_record(self.key.public_key())


# Stand-ins for the values that change from copy to copy, in the folded DKIM-Signature template:
# bytes that no tag value has, never a space (dkim.fold breaks lines only at spaces, or inside a run
# of non-spaces at a fixed column), so the template folds exactly as the real header would.
_STAMP, _BODY_HASH, _SIGNATURE = b"\x01", b"\x02", b"\x03"
_BODY_HASH_SIZE = 44  # base64 of a SHA-256 digest


class _Folded:
    """A folded DKIM-Signature value with stand-ins, cut into literal runs and stand-in runs, so each
    copy's value is filled in rather than folded again (``dkim.fold`` twice was a fifth of signing's
    Python; tests compare the two)."""

    _RUN = re.compile(b"(\x01+|\x02+|\x03+)")

    def __init__(self, template: bytes) -> None:
        self.parts: list[bytes | tuple[int, int, int]] = []
        offsets = [0, 0, 0]
        for piece in self._RUN.split(template):
            if piece[:1] in (_STAMP, _BODY_HASH, _SIGNATURE):
                kind = piece[0] - 1
                self.parts.append((kind, offsets[kind], offsets[kind] + len(piece)))
                offsets[kind] += len(piece)
            elif piece:
                self.parts.append(piece)

    def fill(self, *values: bytes) -> bytes:
        """The value with the stamp, the body hash (and the signature) in place of their stand-ins."""
        return b"".join(part if isinstance(part, bytes) else values[part[0]][part[1]:part[2]] for part in self.parts)


class _Layout:
    """What every copy with the same signed header names shares: the h= list in the order headers
    are hashed, and the folded header before and after signing."""

    def __init__(self, signer: DkimSigner, names: tuple[bytes, ...], stamp_size: int) -> None:
        self.stamp_size = stamp_size
        self.include = [name for name in SIGNED_HEADERS for _ in range(names.count(name) + (name in OVERSIGNED))]
        fields = [
            (b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", signer.domain),
            (b"s", signer.selector), (b"t", _STAMP * stamp_size), (b"h", b" : ".join(self.include)),
            (b"bh", _BODY_HASH * _BODY_HASH_SIZE),
            (b"b", b"0" * 60),  # as dkimpy: b= starts on its own line, so adding the value refolds nothing before it
        ]
        unsigned = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(b"DKIM-Signature"))
        self.unsigned = _Folded(unsigned.replace(b"b=" + b"0" * 60, b"b="))  # what dkim.RE_BTAG leaves
        fields[-1] = (b"b", _SIGNATURE * (4 * ((signer._signature_size + 2) // 3)))
        self.signed = _Folded(dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(b"DKIM-Signature")))


def _relaxed_header(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """dkimpy's relaxed header canonicalisation, done with plain bytes methods when there is nothing to compress."""
    unfolded = value.replace(b"\r\n", b"")
    if b"\t" in unfolded or b"  " in unfolded or b"\n" in unfolded or b"\r" in unfolded:
        [(name, value)] = Relaxed.canonicalize_headers([(name, value)])
        return name, value
    return name.lower().rstrip(), unfolded.strip() + b"\r\n"


def _relaxed_lines(data: bytes) -> bytes:
    """dkimpy's relaxed line canonicalisation, skipped when three substring scans show it changes nothing."""
    if b"\t" not in data and b"  " not in data and b" \r\n" not in data:
        return data
    return compress_whitespace(strip_trailing_whitespace(data))


def _split(pieces: list[bytes]) -> tuple[bytes, list[bytes]]:
    """The header block (each field ending CRLF) and the body's pieces; a piece holding the blank line is cut."""
    head: list[bytes] = []
    tail = b""
    for index, piece in enumerate(pieces):
        joined = tail + piece
        at = joined.find(b"\r\n\r\n")
        if at >= 0:
            cut = at + 2 - len(tail)  # index in ``piece`` right after the last header's CRLF
            if cut < 0:  # the blank line began in an earlier piece: join the head and cut there
                whole = b"".join(pieces)
                at = whole.find(b"\r\n\r\n")
                return whole[: at + 2], [whole[at + 4:]]
            head.append(piece[:cut])
            rest = piece[cut + 2:]
            return b"".join(head), ([rest] if rest else []) + pieces[index + 1:]
        head.append(piece)
        tail = joined[-3:]
    return b"".join(head), []


def txt_record(public_key: rsa.RSAPublicKey) -> str:
    """'v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>' for a public key."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def zone_line(selector: str, domain: str, record: str) -> str:
    """The record as a zone-file line, split into strings of at most 255 characters (a DNS limit)."""
    chunks = [record[i:i + 250] for i in range(0, len(record), 250)]
    strings = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{selector}._domainkey.{domain}. IN TXT ( {strings} )"


def load_private_key(settings: DkimSettings, folder: Path, env: Mapping[str, str] | None = None) -> rsa.RSAPrivateKey:
    """The RSA private key from ``dkim.key_file`` (relative to the folder) or NEWSLETTER_DKIM_KEY."""
    env = os.environ if env is None else env
    if settings.key_file:
        path = folder / settings.key_file
        where = display_path(path, folder)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the DKIM key (dkim.key_file): {exc.strerror}", path=where,
                hint=f"run 'newsletter dkim keygen --selector {settings.selector}' or fix dkim.key_file in newsletter.yaml",
            ) from None
    else:
        where = f"environment variable {DKIM_KEY_VARIABLE}"
        if not env.get(DKIM_KEY_VARIABLE):
            raise ConfigError(
                f"dkim.selector is set but there is no private key: dkim.key_file is not set and {DKIM_KEY_VARIABLE} is empty",
                path="newsletter.yaml", hint=f"export {DKIM_KEY_VARIABLE}=\"$(cat {settings.selector}.pem)\" or add dkim.key_file",
            )
        data = env.get(DKIM_KEY_VARIABLE, "").replace("\\n", "\n").encode("ascii", "replace")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            "is not an unencrypted PEM private key", path=where,
            hint="give the file 'newsletter dkim keygen' wrote (-----BEGIN PRIVATE KEY-----...)",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
        raise ConfigError("is not an RSA key of 1024 bits or more (DKIM rsa-sha256 needs one; 2048 recommended)", path=where)
    return key


def signer_for(config: Config, folder: Path, env: Mapping[str, str] | None = None) -> DkimSigner | None:
    """The signer ``newsletter.yaml`` asks for, or None when DKIM is not configured."""
    if config.dkim is None:
        return None
    return DkimSigner(load_private_key(config.dkim, folder, env), config.dkim.domain, config.dkim.selector)


@dataclass(frozen=True)
class GeneratedKey:
    """What ``newsletter dkim keygen`` made: the key file and the DNS record to publish."""

    key_path: Path
    selector: str
    domain: str
    record: str

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def keygen(folder: Path, selector: str = "s1", key_path: Path | None = None) -> GeneratedKey:
    """Write a new 2048-bit RSA key (mode 0600, never over an existing file) and return its TXT record.

    The domain is ``dkim.domain``, else the From domain.  The config is read leniently: a
    ``dkim:`` section waiting for this very key must not stop its making.
    """
    config, problems = check_config(folder, lenient=True)
    if config is None:
        raise ConfigError(problems[0].message if problems else "cannot read newsletter.yaml", path=problems[0].path if problems else None)
    if not re.fullmatch(SELECTOR_PATTERN, selector):
        raise ConfigError(f"--selector '{selector}' is not a DNS label", hint="use letters, digits and '-', such as s1 or 2026a")
    domain = config.dkim.domain if config.dkim else config.sender_email.rpartition("@")[2].lower()
    path = key_path or folder / "dkim" / f"{selector}.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: never replace a key that may already be published; 0600 from the start, never readable by others
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            "a key file is already there; refusing to replace a key that may be published", path=display_path(path, folder),
            hint="choose another --selector (rotate keys by publishing the new selector, then switching dkim.selector)",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write the key: {exc.strerror}", path=display_path(path, folder)) from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return GeneratedKey(path, selector, domain, txt_record(key.public_key()))
