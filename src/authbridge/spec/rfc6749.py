"""The OAuth 2.0 Authorization Framework, RFC 6749, from the client's side.

Building the authorization request (§4.1.1), reading the redirect back (§4.1.2), the token
request parameters of the authorization code (§4.1.3), refresh (§6) and client credentials
(§4.4.2) grants, client authentication (§2.3.1), and the token endpoint's answers (§5.1, §5.2).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

from authbridge.spec import expiry, rfc7636

__all__ = [
    "RESERVED_AUTHORIZATION_PARAMETERS",
    "AuthorizationResponse",
    "OAuthError",
    "TokenResponse",
    "TokenResponseError",
    "authorization_code_params",
    "authorization_url",
    "client_auth",
    "client_credentials_params",
    "join_scope",
    "parse_callback",
    "parse_error_response",
    "parse_token_body",
    "parse_token_response",
    "refresh_token_params",
]

#: Parameters :func:`authorization_url` sets itself; ``extra`` may never contain them.
RESERVED_AUTHORIZATION_PARAMETERS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
)
_TOKEN_FIELDS = frozenset(
    {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}
)
_NO_PARAMETERS: Mapping[str, str] = MappingProxyType({})


class OAuthError(Exception):
    """An error answered by the authorization server (RFC 6749 §4.1.2.1, §5.2).

    ``error`` is the RFC's error code (``invalid_request``, ``access_denied``...), with the
    optional ``error_description`` as ``description`` and ``error_uri`` as ``uri``. An error
    from the authorization redirect also carries its ``state`` and ``iss`` (RFC 9207 §2), which
    the caller must check as for a success before trusting it.
    """

    def __init__(
        self,
        error: str,
        description: str | None = None,
        uri: str | None = None,
        *,
        state: str | None = None,
        iss: str | None = None,
    ) -> None:
        super().__init__(error, description, uri)
        self.error = error
        self.description = description
        self.uri = uri
        self.state = state
        self.iss = iss

    def __str__(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error


class TokenResponseError(ValueError):
    """A token endpoint answer is not a usable RFC 6749 §5.1 response.

    The message never contains a token value.
    """


@dataclass(frozen=True)
class AuthorizationResponse:
    """A successful authorization redirect (RFC 6749 §4.1.2; ``iss`` from RFC 9207 §2)."""

    code: str = field(repr=False)
    state: str | None
    iss: str | None = None


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1); ``repr`` shows no credential.

    ``expires_at`` is absolute UTC, computed from ``expires_in``; ``scope`` is ``None`` when the
    server did not state it (then it equals the scope requested, §5.1). ``extra`` holds every
    other parameter, read-only.
    """

    access_token: str = field(repr=False)
    token_type: str
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scope: tuple[str, ...] | None = None
    id_token: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=lambda: _NO_PARAMETERS, repr=False)


def join_scope(scope: Sequence[str], delimiter: str = " ") -> str:
    """Join scope tokens into one ``scope`` value (RFC 6749 §3.3; some providers use ``,``).

    Raises:
        TypeError: ``scope`` is a single string rather than a sequence of tokens.
        ValueError: a token is empty, or contains whitespace or the delimiter.
    """
    if isinstance(scope, str):
        raise TypeError("scope must be a sequence of scope tokens, not a single string")
    for token in scope:
        if not token or delimiter in token or any(char.isspace() for char in token):
            raise ValueError(f"invalid scope token {token!r} (RFC 6749 §3.3)")
    return delimiter.join(scope)


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    scope: Sequence[str] = (),
    scope_delimiter: str = " ",
    code_challenge: str | None = None,
    code_challenge_method: str = "S256",
    extra: Mapping[str, str] = _NO_PARAMETERS,
) -> str:
    """Build the authorization request URL of the code grant (RFC 6749 §4.1.1).

    A query already in ``endpoint`` is kept as it is and the parameters are appended (§3.1).
    ``scope`` is left out when empty; ``code_challenge`` and its method (RFC 7636 §4.3) only
    when a challenge is given. ``extra`` adds provider-specific parameters.

    Raises:
        ValueError: ``endpoint`` is not absolute or has a fragment (§3.1), ``state`` is empty,
            ``extra`` names a parameter of :data:`RESERVED_AUTHORIZATION_PARAMETERS`, or a
            parameter would appear twice (§3.1). The message names the parameter.
    """
    parts = urlsplit(endpoint)
    if not parts.scheme or not parts.netloc:
        raise ValueError("the authorization endpoint must be an absolute URL")
    if parts.fragment:
        raise ValueError("the authorization endpoint must not have a fragment (RFC 6749 §3.1)")
    if not state:
        raise ValueError("state must not be empty: it protects the redirect (RFC 6749 §10.12)")
    for name in extra:
        if name in RESERVED_AUTHORIZATION_PARAMETERS:
            raise ValueError(f"extra parameters may not set {name!r}; pass it as its argument")
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    if scope:
        params["scope"] = join_scope(scope, scope_delimiter)
    params["state"] = state
    if code_challenge is not None:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = code_challenge_method
    for name, value in extra.items():
        if name in params:
            raise ValueError(f"parameter {name!r} would be sent twice (RFC 6749 §3.1)")
        params[name] = value
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name in params:
            raise ValueError(f"the authorization endpoint's query already contains {name!r}")
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))


def parse_callback(query: Mapping[str, str]) -> AuthorizationResponse | OAuthError:
    """Read the parameters of the authorization redirect (RFC 6749 §4.1.2, §4.1.2.1).

    Returns the error (not raised) when the server sent ``error``, else the response. Neither
    ``state`` (§10.12) nor ``iss`` (RFC 9207) is checked here.

    Raises:
        ValueError: the redirect carries neither ``code`` nor ``error``.
    """
    error = _error_from(query)
    if error is not None:
        error.state = query.get("state")
        error.iss = query.get("iss")
        return error
    code = query.get("code")
    if not code:
        raise ValueError("the authorization response has neither code nor error (§4.1.2)")
    return AuthorizationResponse(code=code, state=query.get("state"), iss=query.get("iss"))


def authorization_code_params(
    code: str, redirect_uri: str, code_verifier: str | None = None
) -> dict[str, str]:
    """Token request parameters of the authorization code grant (RFC 6749 §4.1.3), with the
    PKCE ``code_verifier`` (RFC 7636 §4.5) when one was used.

    Raises:
        ValueError: ``code_verifier`` breaks RFC 7636 §4.1.
    """
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        rfc7636.validate_code_verifier(code_verifier)
        params["code_verifier"] = code_verifier
    return params


def refresh_token_params(
    refresh_token: str, scope: Sequence[str] | None = None, *, scope_delimiter: str = " "
) -> dict[str, str]:
    """Token request parameters of a refresh (RFC 6749 §6); no scope means the one granted."""
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        params["scope"] = join_scope(scope, scope_delimiter)
    return params


def client_credentials_params(
    scope: Sequence[str] | None = None, *, scope_delimiter: str = " "
) -> dict[str, str]:
    """Token request parameters of the client credentials grant (RFC 6749 §4.4.2)."""
    params = {"grant_type": "client_credentials"}
    if scope:
        params["scope"] = join_scope(scope, scope_delimiter)
    return params


def client_auth(
    client_id: str, client_secret: str | None, method: Literal["basic", "body"]
) -> tuple[dict[str, str], dict[str, str]]:
    """Return the headers and body parameters that authenticate a client (RFC 6749 §2.3.1).

    ``basic`` is HTTP Basic with the id and the secret each form-urlencoded (Appendix B)
    *before* base64, as §2.3.1 requires: ``a b:c`` is sent as ``a+b%3Ac``. ``body`` puts
    ``client_id`` and ``client_secret`` in the request body; with no secret (a public client,
    §2.1) only ``client_id`` is sent (§3.2.1).

    Raises:
        ValueError: ``basic`` without a secret, or an unknown method.
    """
    if method == "basic":
        if client_secret is None:
            raise ValueError("HTTP Basic client authentication needs a client secret")
        credentials = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
        encoded = base64.b64encode(credentials.encode("ascii")).decode("ascii")
        return {"Authorization": f"Basic {encoded}"}, {}
    if method == "body":
        body = {"client_id": client_id}
        if client_secret is not None:
            body["client_secret"] = client_secret
        return {}, body
    raise ValueError(f"unknown client authentication method {method!r}; use 'basic' or 'body'")


def parse_token_body(raw: str | Mapping[str, Any]) -> dict[str, Any]:
    """Decode a token endpoint body: a JSON object (RFC 6749 §5.1) or, as GitHub answers
    by default, form-encoded parameters (``access_token=...&scope=repo``). A mapping is copied.

    Raises:
        TokenResponseError: malformed JSON, JSON that is not an object, text that is not
            form-encoded, or a repeated parameter (§3.1). The message quotes no value.
    """
    if isinstance(raw, Mapping):
        return dict(raw)
    text = raw.strip()
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            raise TokenResponseError("the token endpoint answered with malformed JSON") from None
        if not isinstance(data, dict):
            raise TokenResponseError("the token endpoint answered with JSON that is not an object")
        return data
    if any(part and "=" not in part for part in text.split("&")):
        raise TokenResponseError("the token endpoint answered with neither JSON nor a form")
    params: dict[str, Any] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        if name in params:
            raise TokenResponseError(f"parameter {name!r} appears twice (RFC 6749 §3.1)")
        params[name] = value
    return params


def parse_error_response(body: str | Mapping[str, Any]) -> OAuthError | None:
    """Return the error of an RFC 6749 §5.2 error response, or ``None`` if ``body`` is not one.

    Only a non-empty string ``error`` counts; other shapes are provider-specific.
    """
    try:
        data = parse_token_body(body)
    except TokenResponseError:
        return None
    return _error_from(data)


def parse_token_response(
    body: str | Mapping[str, Any], *, now: datetime, scope_delimiter: str = " "
) -> TokenResponse:
    """Read a successful token response (RFC 6749 §5.1) received at ``now`` (aware UTC).

    ``expires_in`` may be a number or a numeric string. A missing ``token_type`` is taken as
    ``Bearer``, as many providers omit it. ``scope`` may be a delimited string or a list.

    Raises:
        OAuthError: the body is an error response (§5.2), as some providers send with 200.
        TokenResponseError: no ``access_token``, or a parameter of the wrong type or value.
        ValueError: ``now`` is naive.
    """
    expiry.require_aware(now)
    data = parse_token_body(body)
    error = _error_from(data)
    if error is not None:
        raise error
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenResponseError("the token response has no access_token (RFC 6749 §5.1)")
    token_type = data.get("token_type") or "Bearer"
    if not isinstance(token_type, str):
        raise TokenResponseError("the token response's token_type is not a string")
    expires_at = None
    if data.get("expires_in") is not None:
        try:
            lifetime = expiry.parse_lifetime(data["expires_in"])
        except ValueError as exc:
            raise TokenResponseError(f"the token response's expires_in is invalid: {exc}") from None
        # A lifetime of 0 would be a token that is already dead; the providers that send it
        # (Mailchimp) mean "does not expire", so it counts as no lifetime stated.
        if lifetime > 0:
            expires_at = expiry.expires_at_from(lifetime, now=now)
    return TokenResponse(
        access_token=access_token,
        token_type=token_type,
        refresh_token=_optional_string(data, "refresh_token"),
        expires_at=expires_at,
        scope=_parse_scope(data.get("scope"), scope_delimiter),
        id_token=_optional_string(data, "id_token"),
        extra=MappingProxyType({k: v for k, v in data.items() if k not in _TOKEN_FIELDS}),
    )


def _error_from(data: Mapping[str, Any]) -> OAuthError | None:
    error = data.get("error")
    if not isinstance(error, str) or not error:
        return None
    description = data.get("error_description")
    uri = data.get("error_uri")
    return OAuthError(
        error,
        description if isinstance(description, str) else None,
        uri if isinstance(uri, str) else None,
    )


def _optional_string(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TokenResponseError(f"the token response's {name} is not a string")
    return value


def _parse_scope(value: Any, delimiter: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(token.strip() for token in value.split(delimiter) if token.strip())
    if isinstance(value, list) and all(isinstance(token, str) for token in value):
        return tuple(value)
    raise TokenResponseError("the token response's scope is neither a string nor a list")
