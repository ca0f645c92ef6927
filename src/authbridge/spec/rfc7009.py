"""OAuth 2.0 Token Revocation, RFC 7009, from the client's side: which token to revoke and the
parameters of the revocation request (§2.1). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["TokenTypeHint", "revocation_params", "token_to_revoke"]

TokenTypeHint = Literal["refresh_token", "access_token"]


def token_to_revoke(tokens: Mapping[str, Any]) -> tuple[TokenTypeHint, str] | None:
    """The token to revoke and its ``token_type_hint``: the refresh token when there is one
    (revoking it ends the whole grant at most providers, §2.1), else the access token;
    ``None`` when neither is a non-empty string."""
    refresh_token = tokens.get("refresh_token")
    if isinstance(refresh_token, str) and refresh_token:
        return "refresh_token", refresh_token
    access_token = tokens.get("access_token")
    if isinstance(access_token, str) and access_token:
        return "access_token", access_token
    return None


def revocation_params(
    token: str, token_type_hint: TokenTypeHint, client_params: Mapping[str, str]
) -> dict[str, str]:
    """The form of the revocation request (§2.1): the token, its hint and the client's
    authentication parameters when it authenticates in the body (RFC 6749 §2.3.1)."""
    return {"token": token, "token_type_hint": token_type_hint, **client_params}
