"""Removing secret values from text before it is shown, logged or stored as an error.

A provider may echo a secret in another spelling than it was sent in: URL-quoted (from a query
or a form), base64 or base64url (an HTTP Basic header, a key it decoded and encoded again),
hex, or percent-encoded byte by byte. :func:`redact` removes each secret in all of these, with
and without base64 padding, also where the secret is part of a longer base64 text (the
``user:key`` of a Basic header): the characters that encode only the secret's bytes are found
for each of the three offsets it can start at. A secret's spellings are computed once, and the
pattern of a set of secrets once (both are cached).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 3
#: Encoded spellings (base64, hex, …) shorter than this are left alone: they would match
#: ordinary text more often than a secret.
MIN_ENCODED_LENGTH = 6
#: How many secrets' spellings, and how many sets of secrets' patterns, are kept.
CACHED_SECRETS = 4096
CACHED_PATTERNS = 1024
_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_URLSAFE = str.maketrans("+/", "-_")


def _quoted(secret: str) -> set[str]:
    """The URL-quoted spellings a secret takes in a URL or a form body (escapes in either
    case: ``%2F`` and ``%2f``)."""
    forms = {quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    return forms | {_ESCAPE.sub(lambda escape: escape.group().lower(), form) for form in forms}


def _base64_cores(data: bytes) -> set[str]:
    """The base64 text that encodes ``data`` wherever it sits in a longer base64 text.

    ``data`` starting at a byte offset of 1 or 2 (mod 3) shares its first characters with the
    bytes before it, and one ending off a 3-byte boundary shares its last one with the bytes
    after it: those characters are left out, the rest encodes ``data`` alone. The whole
    encoding, padded and unpadded, is kept too.
    """
    whole = base64.b64encode(data).decode()
    cores = {whole, whole.rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode().rstrip("=")
        shared_at_end = 1 if (offset + len(data)) % 3 else 0
        cores.add(encoded[(offset * 8 + 5) // 6 : len(encoded) - shared_at_end])
    return cores | {core.translate(_URLSAFE) for core in cores}


@lru_cache(maxsize=CACHED_SECRETS)
def spellings(secret: str) -> frozenset[str]:
    """Every spelling of ``secret`` that :func:`redact` removes: as it is, URL-quoted, and its
    UTF-8 bytes as base64 and base64url (padded, unpadded, inside a longer text), hex (lower
    and upper case) and percent-encoded byte by byte."""
    data = secret.encode("utf-8", "surrogatepass")
    encoded = _base64_cores(data) | {data.hex(), data.hex().upper()}
    encoded |= {"".join(f"%{byte:02X}" for byte in data), "".join(f"%{byte:02x}" for byte in data)}
    long_enough = {form for form in encoded if len(form) >= MIN_ENCODED_LENGTH}
    return frozenset({secret} | _quoted(secret) | long_enough)


@lru_cache(maxsize=CACHED_PATTERNS)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    forms: set[str] = set()
    for secret in secrets:
        forms |= spellings(secret)
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (in any of its :func:`spellings`) with
    ``[redacted]``.

    Secrets shorter than three characters are left alone: replacing them would mangle ordinary
    text without protecting anything. Longer spellings are replaced first, so a secret that
    contains another one is removed whole, and one pass never matches inside a ``[redacted]``
    it wrote.
    """
    usable = {
        secret for secret in secrets if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH
    }
    if not usable:
        return text
    return _pattern(tuple(sorted(usable))).sub(REDACTED, text)
