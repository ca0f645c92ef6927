"""Proof Key for Code Exchange (PKCE), RFC 7636.

The client makes a high-entropy ``code_verifier`` (§4.1), sends its ``code_challenge`` with the
authorization request (§4.2, §4.3) and the verifier itself with the token request (§4.5).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from typing import Literal

__all__ = [
    "MAX_VERIFIER_LENGTH",
    "MIN_VERIFIER_LENGTH",
    "UNRESERVED_CHARACTERS",
    "CodeChallengeMethod",
    "code_challenge",
    "generate_code_verifier",
    "validate_code_verifier",
]

CodeChallengeMethod = Literal["S256", "plain"]

#: ``unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`` (RFC 7636 §4.1, RFC 3986 §2.3).
UNRESERVED_CHARACTERS = string.ascii_letters + string.digits + "-._~"
MIN_VERIFIER_LENGTH = 43
MAX_VERIFIER_LENGTH = 128

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def generate_code_verifier(length: int = 64) -> str:
    """Return a fresh ``code_verifier`` of ``length`` unreserved characters (RFC 7636 §4.1).

    Each character is drawn with :mod:`secrets` from the 66 unreserved characters, so the
    default 64 characters carry about 386 bits of entropy (§7.1 asks for at least 256).

    Raises:
        ValueError: ``length`` is outside 43..128, the range §4.1 allows.
    """
    if not MIN_VERIFIER_LENGTH <= length <= MAX_VERIFIER_LENGTH:
        raise ValueError(
            f"a code_verifier must be {MIN_VERIFIER_LENGTH} to {MAX_VERIFIER_LENGTH} "
            f"characters long (RFC 7636 §4.1), not {length}"
        )
    return "".join(secrets.choice(UNRESERVED_CHARACTERS) for _ in range(length))


def validate_code_verifier(verifier: str) -> None:
    """Check ``verifier`` against the ABNF of RFC 7636 §4.1: 43..128 unreserved characters.

    Raises:
        ValueError: the verifier has the wrong length or a character outside the set. The
            message never contains the verifier, which is a secret.
    """
    if not MIN_VERIFIER_LENGTH <= len(verifier) <= MAX_VERIFIER_LENGTH:
        raise ValueError(
            f"a code_verifier must be {MIN_VERIFIER_LENGTH} to {MAX_VERIFIER_LENGTH} "
            f"characters long (RFC 7636 §4.1), this one has {len(verifier)}"
        )
    if _VERIFIER.fullmatch(verifier) is None:
        raise ValueError(
            "a code_verifier may only contain the characters A-Z, a-z, 0-9, '-', '.', '_' "
            "and '~' (RFC 7636 §4.1)"
        )


def code_challenge(verifier: str, method: CodeChallengeMethod = "S256") -> str:
    """Derive the ``code_challenge`` for ``verifier`` (RFC 7636 §4.2).

    ``S256`` gives ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`` without ``=`` padding
    (Appendix A); ``plain`` gives the verifier itself and is only for clients that cannot use
    ``S256``.

    Raises:
        ValueError: the verifier breaks §4.1, or ``method`` is neither ``S256`` nor ``plain``.
    """
    validate_code_verifier(verifier)
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    if method == "plain":
        return verifier
    raise ValueError(f"unknown code_challenge_method {method!r}; use 'S256' or 'plain'")
