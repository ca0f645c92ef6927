"""Talking to an OAuth 2 token endpoint: one grant's request, and its answer read as tokens.

A token property is a URL string (a form POST built here per RFC 6749, with client
authentication), a request spec (run with the context's values) or a callable (given the
context; it returns ``{access_token | accessToken, refresh_token | refreshToken, expires_in |
accessTokenExpDate | expires_at}``). Whatever the source, the answer goes through
:func:`authbridge.spec.rfc6749.parse_token_response`, and an OAuth error becomes authbridge's:
``invalid_grant`` is :class:`~authbridge.errors.InvalidToken`, anything else a
:class:`~authbridge.errors.ProviderError` with the provider's description.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authbridge import errors
from authbridge.connectors.models import OAuth2Definition
from authbridge.http import error_for_status, parse_body
from authbridge.mechanisms.context import Context
from authbridge.mechanisms.properties import resolve
from authbridge.redaction import redact
from authbridge.spec import expiry, rfc6749
from authbridge.spec.templates import render_url

__all__ = ["Tokens", "oauth_failure", "read_tokens", "request_tokens", "requested_scopes"]

_CAMEL_TOKEN_KEYS = {
    "accessToken": "access_token",
    "refreshToken": "refresh_token",
    "tokenType": "token_type",
    "expiresIn": "expires_in",
    "idToken": "id_token",
}
_ABSOLUTE_EXPIRY_KEYS = ("accessTokenExpDate", "access_token_exp_date", "expires_at", "expiresAt")
#: Token-response values besides the tokens that are kept with them, so request rules can use
#: them (Salesforce's ``instance_url``, Pipedrive's ``api_domain``): scalars under a plain name.
MAX_EXTRA_VALUES = 32
MAX_EXTRA_LENGTH = 2048
#: The keys :meth:`Tokens.credentials` writes itself; every other stored key is an extra.
TOKEN_KEYS = frozenset({"access_token", "token_type", "refresh_token", "scope"})


@dataclass(frozen=True)
class Tokens:
    """Tokens a provider issued, read from any of the supported answer shapes."""

    access_token: str = field(repr=False)
    token_type: str
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scope: tuple[str, ...] | None = None
    extra: Mapping[str, str | int | float | bool] = field(default_factory=dict, repr=False)

    def credentials(self, scope_delimiter: str) -> dict[str, Any]:
        """What is stored: the extra values, the tokens, their type and the granted scope (as
        one string)."""
        stored: dict[str, Any] = dict(self.extra)
        stored.update(access_token=self.access_token, token_type=self.token_type)
        if self.refresh_token is not None:
            stored["refresh_token"] = self.refresh_token
        if self.scope is not None:
            stored["scope"] = scope_delimiter.join(self.scope)
        return stored


def oauth_failure(error: rfc6749.OAuthError, context: Context) -> errors.ProviderError:
    """The authbridge error for an OAuth error answer (RFC 6749 §5.2)."""
    message = redact(error.description or _default_message(error.error), context.secrets())
    if error.error == "invalid_grant":
        return errors.InvalidToken(message)
    return errors.ProviderError(message)


def _default_message(code: str) -> str:
    return f"the provider refused the token request ({code})"


def read_tokens(answer: Any, context: Context, definition: OAuth2Definition) -> Tokens:
    """Read a token answer: an RFC 6749 §5.1 body (JSON or form), or a callable's mapping."""
    if isinstance(answer, Mapping):
        data: dict[str, Any] = {_CAMEL_TOKEN_KEYS.get(str(k), str(k)): v for k, v in answer.items()}
    elif isinstance(answer, str):
        try:
            data = rfc6749.parse_token_body(answer)
        except rfc6749.TokenResponseError as exc:
            raise errors.ProviderError(str(exc)) from exc
    else:
        raise errors.ProviderError("the token request did not return an object with tokens")
    absolute: Any = None
    for key in _ABSOLUTE_EXPIRY_KEYS:
        if key in data:
            absolute = data.pop(key)
    try:
        parsed = rfc6749.parse_token_response(
            data, now=context.now, scope_delimiter=definition.scope_delimiter
        )
        expires_at = parsed.expires_at
        if absolute is not None:
            expires_at = expiry.expires_at_from(absolute, now=context.now)
    except rfc6749.OAuthError as exc:
        raise oauth_failure(exc, context) from exc
    except ValueError as exc:  # TokenResponseError included; messages quote no token
        raise errors.ProviderError(f"unusable token response: {exc}") from exc
    return Tokens(
        access_token=parsed.access_token,
        token_type=parsed.token_type,
        refresh_token=parsed.refresh_token,
        expires_at=expires_at,
        scope=parsed.scope,
        extra=_extra_values(parsed.extra),
    )


def _extra_values(extra: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """The token response's other values worth keeping: short scalars under plain names."""
    kept: dict[str, str | int | float | bool] = {}
    for key, value in extra.items():
        if len(kept) == MAX_EXTRA_VALUES:
            break
        if not key.isidentifier() or key in TOKEN_KEYS or key.startswith("expires"):
            continue
        if isinstance(value, str) and len(value) > MAX_EXTRA_LENGTH:
            continue
        if isinstance(value, str | int | float | bool):
            kept[key] = value
    return kept


async def request_tokens(
    prop: Any,
    definition: OAuth2Definition,
    context: Context,
    grant: Mapping[str, str],
) -> Tokens:
    """Obtain tokens through ``prop`` for the grant whose form parameters are ``grant``.

    A URL string gets ``grant`` as an ``application/x-www-form-urlencoded`` POST body with the
    client authenticated as the definition says; a request spec or a callable reads the grant's
    values (``authorization_code``, ``code_verifier``, ``redirect_uri``, ``refresh_token`` …)
    from the context.
    """
    if isinstance(prop, str):
        answer = await _post_form(prop, definition, context, grant)
    else:
        grant_values = dict(grant)
        if "code" in grant_values:
            grant_values["authorization_code"] = grant_values["code"]
        scoped = context.replace(fields={**context.fields, **grant_values})
        try:
            answer = await resolve(prop, scoped, method="POST")
        except errors.ProviderUnavailable:
            raise
        except errors.ProviderError as exc:
            raise _from_provider_error(exc, scoped) from exc
    return read_tokens(answer, context, definition)


def _from_provider_error(exc: errors.ProviderError, context: Context) -> errors.ProviderError:
    found = rfc6749.parse_error_response(exc.body) if _is_body(exc.body) else None
    if found is not None:
        return oauth_failure(found, context)
    return exc


def _is_body(body: Any) -> bool:
    return isinstance(body, str | Mapping)


async def _post_form(
    url: str, definition: OAuth2Definition, context: Context, grant: Mapping[str, str]
) -> Any:
    client_id = context.config.client_id
    if not client_id:
        raise errors.AuthBridgeError("the connector configuration has no OAuth client id")
    try:
        headers, body = rfc6749.client_auth(
            client_id, context.config.client_secret, definition.client_authentication
        )
    except ValueError as exc:
        raise errors.AuthBridgeError(str(exc)) from exc
    target = render_url(url, context.values()) if "{{" in url else url
    response = await context.http.request(
        "POST",
        target,
        data={**grant, **body},
        headers={"Accept": "application/json", **headers},
    )
    answer = parse_body(response)
    if response.is_success:
        return answer
    found = rfc6749.parse_error_response(answer) if _is_body(answer) else None
    if found is not None and response.status_code < 500 and response.status_code != 429:
        failure = oauth_failure(found, context)
        failure.status_code = response.status_code
        failure.body = answer
        raise failure
    raise error_for_status(
        response.status_code,
        answer,
        reason_phrase=response.reason_phrase,
        retry_after=response.headers.get("retry-after"),
        secrets=context.secrets(),
    )


def requested_scopes(
    definition: OAuth2Definition, context: Context, scopes: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The scopes to ask for: given ones, else the configuration's, else the connector's."""
    if scopes is not None:
        return tuple(scopes)
    if context.config.scopes is not None:
        return context.config.scopes
    return definition.scope
