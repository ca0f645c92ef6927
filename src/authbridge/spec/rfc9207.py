"""OAuth 2.0 Authorization Server Issuer Identification, RFC 9207.

An authorization server that supports this RFC names itself in every authorization response,
errors included, with an ``iss`` parameter (§2). A client that knows which server it sent the
end user to compares the two and so defeats mix-up attacks (§1, §2.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["IssuerMismatch", "check_issuer", "issuer_parameter_supported"]

_METADATA_KEY = "authorization_response_iss_parameter_supported"


class IssuerMismatch(ValueError):
    """The authorization response must be rejected: its ``iss`` is wrong or missing (§2.4).

    ``expected`` and ``received`` hold the issuer identifiers involved; they are public URLs,
    never secrets.
    """

    def __init__(self, message: str, *, expected: str | None, received: str | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received


def issuer_parameter_supported(metadata: Mapping[str, Any]) -> bool:
    """Tell whether server metadata (RFC 8414) announces ``iss`` in authorization responses.

    Only the JSON value ``true`` counts (RFC 9207 §3); when the key is absent the default is
    ``false``. The result is the ``issuer_required`` argument of :func:`check_issuer`.
    """
    return metadata.get(_METADATA_KEY) is True


def check_issuer(
    received_iss: str | None,
    *,
    expected_issuer: str | None,
    issuer_required: bool = False,
) -> None:
    """Validate the ``iss`` of an authorization response as RFC 9207 §2.4 requires.

    ``received_iss`` is the parameter already form-decoded (as any query mapping gives it), or
    ``None`` when absent. ``expected_issuer`` is the issuer identifier of the server the
    authorization request was sent to. ``issuer_required`` is true when that server announced
    ``authorization_response_iss_parameter_supported`` (§3) or is configured as sending it.

    The comparison is simple string comparison (RFC 3986 §6.2.1): no case folding, no
    trailing-slash or percent-encoding normalisation, so ``https://as.example/`` does not match
    ``https://as.example``. The cases:

    - ``iss`` present and an expected issuer set: the two must be identical.
    - ``iss`` absent, expected issuer set, required: rejected (§2.4).
    - ``iss`` absent, expected issuer set, not required: accepted, as the server may not
      support RFC 9207.
    - no expected issuer, required: rejected whatever was received. There is nothing to
      compare with, and failing closed is the only safe reading of this misconfiguration.
    - no expected issuer, ``iss`` absent, not required: accepted.
    - no expected issuer, ``iss`` present: rejected. §2.4 says clients SHOULD discard responses
      that carry ``iss`` from servers not announcing support; a client that cannot say which
      issuer it expects cannot tell an honest ``iss`` from a mixed-up one, so the connector
      must declare its issuer (or find it in the server's metadata, RFC 8414) to accept it.

    Raises:
        IssuerMismatch: the response must be rejected and the grant not used.
    """
    if expected_issuer is None:
        if issuer_required:
            raise IssuerMismatch(
                "the authorization server is expected to send 'iss', but no issuer is "
                "configured to compare it with",
                expected=None,
                received=received_iss,
            )
        if received_iss is not None:
            raise IssuerMismatch(
                f"the authorization response names issuer {received_iss!r}, but no issuer is "
                "configured to compare it with (RFC 9207 §2.4)",
                expected=None,
                received=received_iss,
            )
        return
    if received_iss is None:
        if issuer_required:
            raise IssuerMismatch(
                f"the authorization response has no 'iss' parameter, but {expected_issuer!r} "
                "always sends one (RFC 9207 §2.4)",
                expected=expected_issuer,
                received=None,
            )
        return
    if received_iss != expected_issuer:
        raise IssuerMismatch(
            f"the authorization response comes from issuer {received_iss!r}, "
            f"not {expected_issuer!r} (RFC 9207 §2.4)",
            expected=expected_issuer,
            received=received_iss,
        )
