"""``oauth2``: the authorization code grant (PKCE S256 by default) and client credentials.

The engine only; the service layer owns state (single use, bound to the browser) and pages.

    request = await mechanism.authorization_request(definition, context, state=state)
    # … the end user approves, the provider redirects to request.redirect_uri …
    code = check_callback(query, expected_issuer=issuer, issuer_required=False)
    result = await mechanism.exchange_code(
        definition, context, code=code, code_verifier=request.code_verifier
    )

Client-credentials definitions get their token from :meth:`OAuth2Mechanism.connect`, with no
end-user redirect. :meth:`OAuth2Mechanism.refresh` renews tokens, keeping the stored refresh
token when the provider sends none and taking a rotated one when it does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from secrets import token_urlsafe
from typing import Any
from urllib.parse import urlsplit

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, OAuth2Definition
from authbridge.connectors.request_models import BearerAuth, RequestSpec
from authbridge.mechanisms.base import (
    PRIVATE_CREDENTIALS,
    ConnectResult,
    DefinedRevocation,
    RedirectMechanism,
    Revocation,
    SignIn,
    TokenRevocation,
)
from authbridge.mechanisms.context import ClientConfig, Context
from authbridge.mechanisms.oauth2_discovery import cached, discovered
from authbridge.mechanisms.oauth2_tokens import (
    TOKEN_KEYS,
    Tokens,
    request_tokens,
    requested_scopes,
)
from authbridge.mechanisms.properties import account_name, call, check_token, pick_path, resolve
from authbridge.mechanisms.request_rules import token_values
from authbridge.spec import expiry, rfc6749, rfc7009, rfc7636, rfc9207
from authbridge.spec.templates import render_url

__all__ = ["AuthorizationRequest", "OAuth2Mechanism", "check_callback"]

#: Shown when a provider's error redirect carries no ``error_description`` (RFC 6749 §4.1.2.1).
CALLBACK_ERROR_MESSAGES: Mapping[str, str] = {
    "access_denied": "The authorization was denied.",
    "invalid_scope": "The provider refused the requested scope.",
    "invalid_request": "The provider rejected the authorization request as malformed.",
    "unauthorized_client": "The provider does not allow this application to ask for access.",
    "unsupported_response_type": "The provider does not support the authorization code flow.",
    "server_error": "The provider failed while handling the authorization.",
    "temporarily_unavailable": "The provider is temporarily unavailable; try again later.",
}
UNEXPECTED_ISSUER = "the authorization response came from an unexpected issuer"
UNKNOWN_ISSUER = (
    "the authorization response names an issuer ('iss', RFC 9207), but this connector declares "
    "none to compare it with: declare 'issuer' or 'discovery_url' in its definition"
)
MISSING_ISSUER = (
    "the authorization response has no 'iss' parameter, but the authorization server always "
    "sends one (RFC 9207)"
)
_BEARER = BearerAuth(bearer="{{access_token}}")


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the end user, and what the token request must repeat.

    ``code_verifier`` (``None`` without PKCE) is a secret the service keeps server-side with
    the state; ``redirect_uri`` is sent again, byte for byte, with the code (RFC 6749 §4.1.3).
    """

    url: str
    code_verifier: str | None = field(repr=False)
    redirect_uri: str


def check_callback(
    query: Mapping[str, str], *, expected_issuer: str | None, issuer_required: bool
) -> str:
    """Read the authorization redirect and return its ``code``.

    Checks ``iss`` as RFC 9207 §2.4 requires, on error responses too; the caller checks
    ``state``. Raises :class:`~authbridge.errors.ProviderError` for a provider error (with its
    ``error_description``, or a readable default per error code), an unexpected or missing
    issuer, or a redirect with neither code nor error.
    """
    try:
        response = rfc6749.parse_callback(query)
    except ValueError as exc:
        raise errors.ProviderError(
            "the authorization response carries neither a code nor an error"
        ) from exc
    try:
        rfc9207.check_issuer(
            response.iss, expected_issuer=expected_issuer, issuer_required=issuer_required
        )
    except rfc9207.IssuerMismatch as exc:
        if exc.expected is None and exc.received is not None and not issuer_required:
            raise errors.ProviderError(UNKNOWN_ISSUER) from exc
        if exc.expected is not None and exc.received is None:
            raise errors.ProviderError(f"{UNEXPECTED_ISSUER}: {MISSING_ISSUER}") from exc
        raise errors.ProviderError(UNEXPECTED_ISSUER) from exc
    if isinstance(response, rfc6749.OAuthError):
        default = CALLBACK_ERROR_MESSAGES.get(
            response.error, f"The provider refused the authorization ({response.error})."
        )
        raise errors.ProviderError(response.description or default, body=dict(query))
    return response.code


class OAuth2Mechanism(RedirectMechanism):
    type = "oauth2"

    # -- the sign-in round trip (the authorization code grant) --------------------------------

    def signs_in_at_provider(self, definition: AuthDefinition) -> bool:
        """The authorization code grant does; client credentials fetch a token directly."""
        return _oauth2(definition).grant_type == "authorization_code"

    def missing_configuration(self, config: ClientConfig) -> str | None:
        return None if config.client_id else "client id"

    async def sign_in(
        self, definition: AuthDefinition, context: Context, *, scopes: Sequence[str] | None
    ) -> SignIn:
        """A fresh ``state`` (the lookup) and PKCE verifier (kept secret), and the scopes
        asked for (:func:`requested_scopes`)."""
        definition, _ = await discovered(_oauth2(definition), context)
        state = token_urlsafe(32)
        asked = requested_scopes(definition, context, scopes)
        request = await self.authorization_request(definition, context, state=state, scopes=asked)
        return SignIn(
            url=request.url,
            lookup=state,
            redirect_uri=request.redirect_uri,
            scopes=asked,
            secrets={"code_verifier": request.code_verifier},
        )

    def callback_lookup(self, query: Mapping[str, str]) -> str:
        return query.get("state", "")

    def import_template(self, definition: AuthDefinition) -> dict[str, Any]:
        """The tokens (and the values the request rules read from the token response), their
        expiry and the scopes."""
        definition = _oauth2(definition)
        tokens = {
            "access_token": "<access token>",
            "refresh_token": "<refresh token, or remove this line when there is none>",
        }
        tokens |= {
            name: f"<{name} from the token response>" for name in sorted(token_values(definition))
        }
        return {
            "tokens": tokens,
            "expires_at": (
                "<when the access token expires, ISO 8601 with a time zone, or remove this line>"
            ),
            "scopes": list(definition.scope),
        }

    async def signed_in(
        self,
        definition: AuthDefinition,
        context: Context,
        query: Mapping[str, str],
        *,
        redirect_uri: str,
        scopes: Sequence[str],
        secrets: Mapping[str, Any],
    ) -> ConnectResult:
        """Check the redirect (``error``, RFC 9207 ``iss``) and trade the code for tokens with
        the exact redirect URI and scopes of :meth:`sign_in`.

        The expected issuer is the declared one or the server metadata's; an ``iss`` when
        neither is known is refused, and so is a missing ``iss`` when ``issuer_required`` or
        the metadata announces ``authorization_response_iss_parameter_supported``."""
        definition, _ = await discovered(_oauth2(definition), context)
        code = check_callback(
            query, expected_issuer=definition.issuer, issuer_required=definition.issuer_required
        )
        return await self.exchange_code(
            definition,
            context,
            code=code,
            code_verifier=secrets.get("code_verifier"),
            redirect_uri=redirect_uri,
            scopes=scopes,
        )

    async def authorization_request(
        self,
        definition: AuthDefinition,
        context: Context,
        *,
        state: str,
        scopes: Sequence[str] | None = None,
    ) -> AuthorizationRequest:
        """Build the authorization URL (RFC 6749 §4.1.1) with a fresh PKCE verifier.

        A string ``auth_url`` gets the standard parameters; a callable is given the context,
        whose values include ``state``, ``scope`` (joined), ``redirect_uri``, ``client_id`` and
        ``code_challenge``, and returns the URL. The verifier never appears in the URL.
        """
        definition, _ = await discovered(_oauth2(definition), context)
        if definition.auth_url is None:
            raise errors.AuthBridgeError("this OAuth 2 connector has no authorization URL")
        redirect_uri = _redirect_uri(context)
        client_id = _client_id(context)
        scope = requested_scopes(definition, context, scopes)
        verifier = rfc7636.generate_code_verifier() if definition.pkce else None
        challenge = rfc7636.code_challenge(verifier) if verifier is not None else None
        auth_url = definition.auth_url
        if isinstance(auth_url, str):
            endpoint = render_url(auth_url, context.values()) if "{{" in auth_url else auth_url
            try:
                url = rfc6749.authorization_url(
                    endpoint,
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    state=state,
                    scope=scope,
                    scope_delimiter=definition.scope_delimiter,
                    code_challenge=challenge,
                    extra=definition.authorization_params,
                )
            except (TypeError, ValueError) as exc:
                raise errors.AuthBridgeError(f"cannot build the authorization URL: {exc}") from exc
            return AuthorizationRequest(url, verifier, redirect_uri)
        if isinstance(auth_url, RequestSpec):
            raise errors.AuthBridgeError("'auth_url' must be a URL string or a callable")
        values: dict[str, Any] = {
            "state": state,
            "scope": _join(scope, definition.scope_delimiter),
            "redirect_uri": redirect_uri,
        }
        if challenge is not None:
            values.update(code_challenge=challenge, code_challenge_method="S256")
        url = await call(auth_url, context.replace(fields={**context.fields, **values}))
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise errors.AuthBridgeError("'auth_url' must return an absolute http(s) URL")
        return AuthorizationRequest(url, verifier, redirect_uri)

    async def exchange_code(
        self,
        definition: AuthDefinition,
        context: Context,
        *,
        code: str,
        code_verifier: str | None,
        redirect_uri: str | None = None,
        scopes: Sequence[str] | None = None,
    ) -> ConnectResult:
        """Trade an authorization code for tokens (RFC 6749 §4.1.3), then name the account.

        ``redirect_uri`` is the one of the authorization request (by default the context's
        callback URL); ``scopes`` are those requested, assumed granted when the token response
        does not state its scope (§5.1).
        """
        definition, _ = await discovered(_oauth2(definition), context)
        assert definition.request_access_token is not None
        redirect = redirect_uri if redirect_uri is not None else _redirect_uri(context)
        try:
            grant = rfc6749.authorization_code_params(code, redirect, code_verifier)
        except ValueError as exc:
            raise errors.AuthBridgeError(str(exc)) from exc
        tokens = await request_tokens(definition.request_access_token, definition, context, grant)
        return await self._connected(definition, context, tokens, scopes)

    async def connect(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        """Fetch a token with the client credentials grant (RFC 6749 §4.4); no redirect."""
        definition, _ = await discovered(_oauth2(definition), context)
        if definition.grant_type != "client_credentials":
            raise errors.AuthBridgeError(
                "this OAuth 2 connector uses the authorization code flow: the end user must be "
                "redirected to the provider (authorization_request, then exchange_code)"
            )
        tokens = await self._client_credentials(definition, context)
        return await self._connected(definition, context, tokens, None)

    async def refresh(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        """Renew the access token (RFC 6749 §6) with the stored refresh token.

        The stored refresh token is kept when the provider sends none; a rotated one replaces
        it. Client-credentials connectors fetch a new token instead. The profile is not fetched
        again, so ``account_name`` is ``None`` (the stored name stays).
        """
        definition, _ = await discovered(_oauth2(definition), context)
        if definition.grant_type == "client_credentials":
            tokens = await self._client_credentials(definition, context)
            return self._result(definition, context, tokens, None, profile=None, name=None)
        stored = context.tokens.get("refresh_token") or context.tokens.get("refreshToken")
        if not isinstance(stored, str) or not stored:
            raise errors.InvalidToken("no refresh token is stored: connect the account again")
        prop = definition.refresh_access_token or definition.request_access_token
        assert prop is not None
        try:
            tokens = await request_tokens(
                prop, definition, context, rfc6749.refresh_token_params(stored)
            )
        except errors.ProviderUnavailable:
            raise
        except errors.ProviderError as exc:
            if exc.status_code == 401 and not isinstance(exc, errors.InvalidToken):
                raise errors.InvalidToken(
                    exc.message, status_code=exc.status_code, body=exc.body
                ) from exc
            raise
        # The previous answer's extra values (Salesforce's instance_url) stay unless this one
        # sends them again; the refresh token stays when the provider sends no new one.
        kept = {
            key: value
            for key, value in context.tokens.items()
            if key not in TOKEN_KEYS and isinstance(value, str | int | float | bool)
        }
        tokens = replace(
            tokens,
            refresh_token=tokens.refresh_token if tokens.refresh_token is not None else stored,
            extra={**kept, **tokens.extra},
        )
        stored_scope = context.tokens.get("scope")
        previous = (
            tuple(s for s in stored_scope.split(definition.scope_delimiter) if s)
            if isinstance(stored_scope, str)
            else None
        )
        return self._result(definition, context, tokens, previous, profile=None, name=None)

    async def check_tokens(self, definition: AuthDefinition, context: Context) -> None:
        await self._validate(_oauth2(definition), context)

    def can_refresh(self, definition: AuthDefinition, credentials: Mapping[str, Any]) -> bool:
        """A client-credentials grant asks for a new token; otherwise a refresh token is needed."""
        if _oauth2(definition).grant_type == "client_credentials":
            return True
        return any(credentials.get(name) for name in PRIVATE_CREDENTIALS)

    def refresh_due_at(
        self, definition: AuthDefinition, expires_at: datetime | None, now: datetime
    ) -> datetime | None:
        """``refresh_before_exp`` (with its units) before expiry; never for a hard expiry
        (nothing to refresh: the end user reconnects before it)."""
        definition = _oauth2(definition)
        if expires_at is None or definition.hard_expiry:
            return None
        margin = expiry.refresh_margin(
            definition.refresh_before_exp, definition.refresh_before_exp_units
        )
        return expiry.refresh_due_at(expires_at, margin, issued_at=now)

    def revocation(self, definition: AuthDefinition, context: Context) -> TokenRevocation | None:
        """A URL ``revocation`` (``revokeUrl``) is RFC 7009: the refresh token when there is
        one, else the access token, with the client authenticated as for the token endpoint. A
        request spec or callable is sent as the definition describes it, with the context's
        values (``{{access_token}}``, ``{{client_id}}`` …) in its templates. A revocation left to
        the server's metadata is known once the metadata is cached (any connect, callback or
        refresh of this process in the last hour fetched it)."""
        definition = cached(_oauth2(definition), context)
        chosen = rfc7009.token_to_revoke(context.tokens)
        if definition.revocation is None or chosen is None:
            return None
        if not isinstance(definition.revocation, str):
            return DefinedRevocation(
                action=definition.revocation, context=context, secrets=tuple(context.secrets())
            )
        hint, token = chosen
        config = context.config
        if not config.client_id:
            raise errors.NotConfigured("no OAuth client id configured")
        headers, client_form = rfc6749.client_auth(
            config.client_id, config.client_secret, definition.client_authentication
        )
        url = definition.revocation
        if "{{" in url:
            url = render_url(url, context.values())
        return Revocation(
            url=url,
            token_type_hint=hint,
            form=rfc7009.revocation_params(token, hint, client_form),
            headers={"Accept": "application/json", **headers},
            secrets=tuple(context.secrets()),
        )

    def hard_expires_at(
        self, definition: AuthDefinition, expires_at: datetime | None
    ) -> datetime | None:
        """The token's expiry when the definition declares it hard."""
        return expires_at if _oauth2(definition).hard_expiry else None

    async def _client_credentials(self, definition: OAuth2Definition, context: Context) -> Tokens:
        assert definition.request_access_token is not None
        grant = rfc6749.client_credentials_params(
            requested_scopes(definition, context), scope_delimiter=definition.scope_delimiter
        )
        return await request_tokens(definition.request_access_token, definition, context, grant)

    async def _connected(
        self,
        definition: OAuth2Definition,
        context: Context,
        tokens: Tokens,
        scopes: Sequence[str] | None,
    ) -> ConnectResult:
        context = context.replace(tokens=tokens.credentials(definition.scope_delimiter))
        await self._validate(definition, context)
        profile: Mapping[str, Any] | None = None
        if definition.request_profile_info is not None:
            found = await resolve(_with_bearer(definition.request_profile_info), context)
            if not isinstance(found, Mapping):
                raise errors.ProviderError("the profile request did not return a JSON object")
            profile = found
            context = context.replace(profile=profile)
        name = await account_name(definition.account_name_from_profile_info, context, profile)
        email = None
        if definition.email_from_profile_info is not None:
            email = await _email(definition.email_from_profile_info, profile, context)
        requested = tuple(scopes) if scopes is not None else requested_scopes(definition, context)
        result = self._result(definition, context, tokens, requested, profile=profile, name=name)
        return replace(result, email=email)

    async def _validate(self, definition: OAuth2Definition, context: Context) -> None:
        if definition.validate_access_token is None:
            return
        await check_token(resolve(_with_bearer(definition.validate_access_token), context))

    def _result(
        self,
        definition: OAuth2Definition,
        context: Context,
        tokens: Tokens,
        requested: Sequence[str] | None,
        *,
        profile: Mapping[str, Any] | None,
        name: str | None,
    ) -> ConnectResult:
        granted = tokens.scope if tokens.scope is not None else requested
        credentials = tokens.credentials(definition.scope_delimiter)
        if tokens.scope is None and granted:
            credentials["scope"] = definition.scope_delimiter.join(granted)
        return ConnectResult(
            account_name=name,
            credentials=credentials,
            profile=profile,
            expires_at=tokens.expires_at,
            scopes=tuple(granted) if granted is not None else None,
        )


async def _email(source: Any, profile: Mapping[str, Any] | None, context: Context) -> str | None:
    """The account's email: a dot path into the profile, or a callable given the context."""
    if callable(source):
        value = await call(source, context)
    elif profile is not None:
        value = pick_path(profile, source)
    else:
        return None
    return (value.strip() or None) if isinstance(value, str) else None


def _with_bearer(prop: Any) -> Any:
    """A plain URL is requested with the access token as ``Authorization: Bearer``."""
    return RequestSpec(url=prop, auth=_BEARER) if isinstance(prop, str) else prop


def _oauth2(definition: AuthDefinition) -> OAuth2Definition:
    if not isinstance(definition, OAuth2Definition):
        raise errors.AuthBridgeError(f"not an OAuth 2 definition: {definition.type!r}")
    return definition


def _redirect_uri(context: Context) -> str:
    if not context.callback_url:
        raise errors.AuthBridgeError("the OAuth 2 flow needs a callback URL (redirect URI)")
    return context.callback_url


def _client_id(context: Context) -> str:
    if not context.config.client_id:
        raise errors.AuthBridgeError("the connector configuration has no OAuth client id")
    return context.config.client_id


def _join(scope: Sequence[str], delimiter: str) -> str:
    try:
        return rfc6749.join_scope(scope, delimiter)
    except (TypeError, ValueError) as exc:
        raise errors.AuthBridgeError(str(exc)) from exc
