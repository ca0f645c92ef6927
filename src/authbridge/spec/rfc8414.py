"""OAuth 2.0 Authorization Server Metadata, RFC 8414 (and OpenID Connect Discovery 1.0).

A server publishes a JSON document naming its endpoints and its issuer identifier, at
``/.well-known/oauth-authorization-server`` inserted between the issuer's host and path
(§3.1), or for OpenID providers at ``/.well-known/openid-configuration`` appended to the
issuer. The document is validated with Authlib's :class:`AuthorizationServerMetadata`, and its
``issuer`` must be identical to the one the URL was built from (§3.3), so a document served for
one issuer cannot pass as another's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from authlib.oauth2.rfc8414 import (  # type: ignore[import-untyped]
    AuthorizationServerMetadata,
    get_well_known_url,
)

__all__ = [
    "InvalidMetadata",
    "ServerMetadata",
    "issuer_of_well_known_url",
    "parse_metadata",
    "well_known_url",
]

_OAUTH_SUFFIX = "/.well-known/oauth-authorization-server"
_OIDC_SUFFIX = "/.well-known/openid-configuration"


class InvalidMetadata(ValueError):
    """The metadata document cannot be used; the message says why (never a secret)."""


@dataclass(frozen=True)
class ServerMetadata:
    """What a client takes from the metadata: the issuer, three endpoints and RFC 9207 §3."""

    issuer: str
    authorization_endpoint: str | None
    token_endpoint: str | None
    revocation_endpoint: str | None
    iss_parameter_supported: bool


def well_known_url(issuer: str) -> str:
    """The RFC 8414 metadata URL of ``issuer`` (§3.1: the well-known part goes before the
    issuer's path, ``https://as.example/t1`` → ``https://as.example/.well-known/…/t1``)."""
    return str(get_well_known_url(issuer.rstrip("/"), external=True))


def issuer_of_well_known_url(url: str) -> str | None:
    """The issuer a standard metadata URL belongs to, or ``None`` for any other URL.

    ``https://as.example/.well-known/oauth-authorization-server/t1`` → ``https://as.example/t1``
    (RFC 8414 §3.1); ``https://op.example/t1/.well-known/openid-configuration`` →
    ``https://op.example/t1`` (OpenID Connect Discovery §4).
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return None
    path = parts.path
    if path == _OAUTH_SUFFIX or path.startswith(_OAUTH_SUFFIX + "/"):
        path = path[len(_OAUTH_SUFFIX) :]
    elif path.endswith(_OIDC_SUFFIX):
        path = path[: -len(_OIDC_SUFFIX)]
    else:
        return None
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def parse_metadata(document: Any, *, expected_issuer: str | None) -> ServerMetadata:
    """Validate a metadata document (RFC 8414 §2) and return what a client uses of it.

    ``expected_issuer`` is the issuer the document was asked for; when set, the document's
    ``issuer`` must equal it by simple string comparison (§3.3).

    Raises:
        InvalidMetadata: not a JSON object, a value Authlib's validation refuses, or another
            issuer.
    """
    if not isinstance(document, Mapping):
        raise InvalidMetadata("the metadata is not a JSON object")
    metadata = AuthorizationServerMetadata(dict(document))
    try:
        metadata.validate()
    except ValueError as exc:
        raise InvalidMetadata(f"the metadata is invalid: {exc}") from exc
    issuer = metadata["issuer"]
    if expected_issuer is not None and issuer != expected_issuer:
        raise InvalidMetadata(
            f"the metadata names issuer {issuer!r}, not {expected_issuer!r} (RFC 8414 §3.3)"
        )
    for key in ("token_endpoint", "revocation_endpoint"):
        value = metadata.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidMetadata(f"the metadata's {key!r} is not a URL string")
    return ServerMetadata(
        issuer=issuer,
        authorization_endpoint=metadata.get("authorization_endpoint"),
        token_endpoint=metadata.get("token_endpoint"),
        revocation_endpoint=metadata.get("revocation_endpoint"),
        iss_parameter_supported=(
            metadata.get("authorization_response_iss_parameter_supported") is True
        ),
    )
