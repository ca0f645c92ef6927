"""Removing secret values from text before it is shown, logged or stored as an error."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 3


def _forms(secret: str) -> set[str]:
    """The raw secret and the URL-quoted spellings it takes in a URL or a form body."""
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (and its URL-quoted forms) with ``[redacted]``.

    Secrets shorter than three characters are left alone: replacing them would mangle ordinary
    text without protecting anything. Longer forms are replaced first, so a secret that contains
    another one is removed whole, and one pass never matches inside a ``[redacted]`` it wrote.
    """
    forms: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
            forms |= _forms(secret)
    if not forms:
        return text
    pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    return re.sub(pattern, REDACTED, text)
