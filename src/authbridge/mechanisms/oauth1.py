"""``oauth1``: OAuth 1.0a (RFC 5849), signed through Authlib.

start: request token (RFC 5849 §2.1) → authorization URL (§2.2).
complete: callback ``oauth_token`` checked against the request token → access token with the
verifier (§2.3) → profile → account name → ``validate_access_token``.

Signing is Authlib's (:class:`authlib.oauth1.ClientAuth`, HMAC-SHA1, RSA-SHA1 or PLAINTEXT, in
the ``Authorization`` header); :class:`OAuth1Signer` only adapts it to ``httpx.Auth``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from authlib.oauth1 import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth1.rfc5849.errors import OAuth1Error  # type: ignore[import-untyped]

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, OAuth1Definition
from authbridge.connectors.request_models import RequestSpec
from authbridge.http.client import with_params
from authbridge.mechanisms.base import ConnectResult, RedirectMechanism, SignIn
from authbridge.mechanisms.context import ClientConfig, Context
from authbridge.mechanisms.properties import account_name, call, check_token, resolve
from authbridge.spec.templates import render_url

__all__ = ["OAuth1Mechanism", "OAuth1Signer", "OAuth1Start"]

Property = str | RequestSpec | Callable[..., Any]
_TOKEN_KEYS = ("oauth_token", "oauth_token_secret", "oauth_callback_confirmed")


@dataclass(frozen=True)
class OAuth1Start:
    """Where to send the end user, and the request token to keep until the callback."""

    url: str
    request_token: str
    request_token_secret: str = field(repr=False)


class OAuth1Signer(httpx.Auth):
    """An ``httpx.Auth`` adding an OAuth 1.0a ``Authorization`` header computed by Authlib."""

    requires_request_body = True

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str | None,
        signature_method: str = "HMAC-SHA1",
        token: str | None = None,
        token_secret: str | None = None,
        callback_url: str | None = None,
        verifier: str | None = None,
    ) -> None:
        rsa = signature_method == "RSA-SHA1"
        self._client: Any = ClientAuth(
            consumer_key,
            client_secret=None if rsa else consumer_secret,
            token=token,
            token_secret=token_secret,
            redirect_uri=callback_url,
            rsa_key=consumer_secret if rsa else None,
            verifier=verifier,
            signature_method=signature_method,
        )

    def __repr__(self) -> str:
        return f"OAuth1Signer(consumer_key={self._client.client_id!r})"

    def authorization(self, method: str, url: str, headers: httpx.Headers, body: bytes) -> str:
        """The ``Authorization`` header value for this request (RFC 5849 §3.5.1)."""
        try:
            _, signed, _ = self._client.prepare(method, url, headers.copy(), body)
        except OAuth1Error as exc:
            raise errors.ProviderError(
                f"OAuth 1 cannot sign this request: {exc.description}"
            ) from exc
        except ValueError as exc:  # a malformed RSA key, an unknown method
            raise errors.ProviderError("OAuth 1 cannot sign this request: bad key") from exc
        value = signed["Authorization"]
        assert isinstance(value, str)
        return value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.authorization(
            request.method, str(request.url), request.headers, request.content
        )
        yield request


def _first(data: Mapping[str, Any], *names: str) -> Any:
    return next((data[name] for name in names if data.get(name) not in (None, "")), None)


def _config_secrets(config: ClientConfig) -> list[str]:
    return [value for value in (config.consumer_secret,) if value]


#: Why a sign-in ends when the provider sends no verifier back (the end user said no).
DENIED = "The authorization was denied."


class OAuth1Mechanism(RedirectMechanism):
    """OAuth 1.0a: a popup flow in two steps, :meth:`start` and :meth:`complete`."""

    type = "oauth1"
    request_auth_needs_master = True

    def import_template(self, definition: AuthDefinition) -> dict[str, Any]:
        return {
            "tokens": {
                "access_token": "<access token>",
                "access_token_secret": "<access token secret>",
            }
        }

    # -- the sign-in round trip -------------------------------------------------------------

    def missing_configuration(self, config: ClientConfig) -> str | None:
        return None if config.consumer_key else "consumer key"

    async def sign_in(
        self, definition: AuthDefinition, context: Context, *, scopes: Sequence[str] | None
    ) -> SignIn:
        """A request token (the lookup; its secret kept) and the authorization URL."""
        started = await self.start(definition, context)
        return SignIn(
            url=started.url,
            lookup=started.request_token,
            redirect_uri=context.callback_url or "",
            scopes=(),
            secrets={
                "request_token": started.request_token,
                "request_token_secret": started.request_token_secret,
            },
        )

    def callback_lookup(self, query: Mapping[str, str]) -> str:
        """``oauth_token``; a provider whose user denied access may send the request token as
        ``denied`` instead (Twitter does)."""
        return query.get("oauth_token", "") or query.get("denied", "")

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
        verifier = query.get("oauth_verifier", "")
        if query.get("denied") or not verifier:
            raise errors.ProviderError(DENIED)
        return await self.complete(
            definition,
            context,
            request_token=str(secrets["request_token"]),
            request_token_secret=str(secrets["request_token_secret"]),
            oauth_token=query.get("oauth_token", ""),
            oauth_verifier=verifier,
        )

    async def connect(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        raise errors.AuthBridgeError("OAuth 1.0a connects through start() and complete()")

    def sign(
        self, definition: AuthDefinition, config: ClientConfig, tokens: Mapping[str, Any]
    ) -> OAuth1Signer:
        """An ``httpx.Auth`` signing requests with the consumer and the stored access token."""
        assert isinstance(definition, OAuth1Definition)
        return self._signer(
            definition,
            config,
            token=_first(tokens, "access_token", "accessToken"),
            token_secret=_first(tokens, "access_token_secret", "accessTokenSecret"),
        )

    async def start(self, definition: AuthDefinition, context: Context) -> OAuth1Start:
        """Obtain a request token (RFC 5849 §2.1) and build the authorization URL (§2.2)."""
        assert isinstance(definition, OAuth1Definition)
        prop = definition.request_request_token
        if callable(prop):
            answer = await resolve(prop, context)
            answer = answer if isinstance(answer, Mapping) else {}
            token = _first(answer, "request_token", "requestToken")
            secret = _first(answer, "request_token_secret", "requestTokenSecret")
        else:
            signer = self._signer(definition, context.config, callback_url=context.callback_url)
            answer = await self._signed(prop, context, signer, method="POST")
            if str(answer.get("oauth_callback_confirmed", "")).lower() != "true":
                raise errors.ProviderError("the provider did not confirm the callback URL")
            token, secret = answer.get("oauth_token"), answer.get("oauth_token_secret")
        if not isinstance(token, str) or not token or not isinstance(secret, str):
            raise errors.ProviderError("the provider's answer holds no request token")
        with_token = context.replace(
            tokens={**context.tokens, "request_token": token, "request_token_secret": secret}
        )
        return OAuth1Start(
            url=await self._auth_url(definition.auth_url, with_token),
            request_token=token,
            request_token_secret=secret,
        )

    async def complete(
        self,
        definition: AuthDefinition,
        context: Context,
        *,
        request_token: str,
        request_token_secret: str,
        oauth_token: str,
        oauth_verifier: str,
    ) -> ConnectResult:
        """Finish the flow from the callback's ``oauth_token`` and ``oauth_verifier`` (§2.3)."""
        assert isinstance(definition, OAuth1Definition)
        if not hmac.compare_digest(oauth_token.encode(), request_token.encode()):
            raise errors.ProviderError("the callback's oauth_token is not this flow's token")
        context = context.replace(
            tokens={
                **context.tokens,
                "request_token": request_token,
                "request_token_secret": request_token_secret,
                "oauth_token": oauth_token,
                "oauth_verifier": oauth_verifier,
            }
        )
        prop = definition.request_access_token
        if callable(prop):
            answer = await resolve(prop, context)
            answer = answer if isinstance(answer, Mapping) else {}
            token = _first(answer, "access_token", "accessToken")
            secret = _first(answer, "access_token_secret", "accessTokenSecret")
            known = {"access_token", "accessToken", "access_token_secret", "accessTokenSecret"}
        else:
            signer = self._signer(
                definition,
                context.config,
                token=request_token,
                token_secret=request_token_secret,
                verifier=oauth_verifier,
            )
            answer = await self._signed(prop, context, signer, method="POST")
            token, secret = answer.get("oauth_token"), answer.get("oauth_token_secret")
            known = set(_TOKEN_KEYS)
        if not isinstance(token, str) or not token or not isinstance(secret, str):
            raise errors.ProviderError("the provider's answer holds no access token")
        extras = {key: value for key, value in answer.items() if key not in known}
        credentials = {"access_token": token, "access_token_secret": secret}
        context = context.replace(tokens=credentials)
        profile: Mapping[str, Any] | None = extras or None
        if definition.request_profile_info is not None:
            profile = await self._protected(definition, definition.request_profile_info, context)
            if not isinstance(profile, Mapping):
                raise errors.ProviderError("the profile request did not return a JSON object")
        context = context.replace(profile=profile)
        name = await account_name(definition.account_name_from_profile_info, context, profile)
        await self.check_tokens(definition, context)
        return ConnectResult(account_name=name, credentials=credentials, profile=profile)

    async def check_tokens(self, definition: AuthDefinition, context: Context) -> None:
        """Run ``validate_access_token``; a refused token raises :class:`errors.InvalidToken`."""
        assert isinstance(definition, OAuth1Definition)
        prop = definition.validate_access_token
        if prop is None:
            return
        await check_token(self._protected(definition, prop, context))

    def _signer(
        self,
        definition: OAuth1Definition,
        config: ClientConfig,
        **tokens: str | None,
    ) -> OAuth1Signer:
        if not config.consumer_key or not config.consumer_secret:
            raise errors.AuthBridgeError("the connector has no consumer key and secret configured")
        return OAuth1Signer(
            consumer_key=config.consumer_key,
            consumer_secret=config.consumer_secret,
            signature_method=definition.signature_method,
            **tokens,
        )

    async def _protected(
        self, definition: OAuth1Definition, prop: Property, context: Context
    ) -> Any:
        """Resolve a property needing the access token: called, or sent signed (GET)."""
        if callable(prop):
            return await resolve(prop, context)
        signer = self.sign(definition, context.config, context.tokens)
        return await self._signed(prop, context, signer, method="GET")

    async def _auth_url(self, prop: Property, context: Context) -> str:
        if callable(prop):
            url = await call(prop, context)
            if not isinstance(url, str) or not url:
                raise errors.ProviderError("auth_url did not return a URL")
            return url
        if not isinstance(prop, str):
            raise errors.AuthBridgeError("auth_url must be a URL template or a callable")
        url = render_url(prop, context.values())
        names = {name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
        if "oauth_token" not in names:
            url = with_params(url, {"oauth_token": context.tokens["request_token"]})
        return url

    async def _signed(
        self, prop: str | RequestSpec, context: Context, signer: OAuth1Signer, *, method: str
    ) -> Any:
        """Send a URL or request spec signed by ``signer``; the parsed body of a 2xx answer."""
        spec = RequestSpec(url=prop) if isinstance(prop, str) else prop
        response = await context.http.execute(
            spec,
            context.values(),
            default_method=method,
            secrets=[*context.secrets(), *_config_secrets(context.config)],
            auth=signer,
        )
        return response.body if response.body is not None else {}
