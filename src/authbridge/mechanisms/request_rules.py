"""Request rules: how a connector's stored credentials go on an API request.

:func:`prepare` renders a definition's ``request`` rules (see
:class:`authbridge.connectors.request_models.RequestRules`) into a :class:`RequestAuth`: the
base URL, headers, query parameters, HTTP Basic credentials and, for ``oauth1`` connectors, what
OAuth 1.0a signing needs. :meth:`RequestAuth.auth` turns it into an ``httpx.Auth`` for any client;
:meth:`RequestAuth.to_json` / :meth:`RequestAuth.from_json` carry it over the API (``GET
/v1/authentications/{id}/request-auth``) to the SDK.

Template values are the stored credentials (entered fields and token-response values, never the
refresh token), then the connector settings and the variant's values, which win over a
credential of the same name because the end user does not choose them. Rendering goes through
:mod:`authbridge.spec.templates`, so a value never changes a URL's scheme, host or port, nor
adds a header. Pure: no SQL, no I/O except calling a callable ``request``.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from pydantic.alias_generators import to_camel, to_snake

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, OAuth1Definition, OAuth2Definition
from authbridge.connectors.request_models import BasicAuth, RequestRules, origin_placeholder
from authbridge.mechanisms.base import PRIVATE_CREDENTIALS
from authbridge.mechanisms.context import ClientConfig, Context
from authbridge.mechanisms.oauth1 import OAuth1Signer
from authbridge.mechanisms.properties import resolve
from authbridge.spec.templates import (
    DNS_LABEL,
    PLACEHOLDER,
    lookup,
    render_header,
    render_text,
    render_url,
    template_names,
)

if TYPE_CHECKING:
    from authbridge.http import OutboundClient

__all__ = [
    "OAuth1Signing",
    "RequestAuth",
    "RequestRulesAuth",
    "prepare",
    "template_values",
    "token_values",
]

_EMPTY: Mapping[str, object] = MappingProxyType({})
_DEFAULT_OAUTH2 = RequestRules(headers={"Authorization": "Bearer {{access_token}}"})
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class OAuth1Signing:
    """What OAuth 1.0a signing needs: the consumer and the stored access token."""

    client_key: str
    client_secret: str = field(repr=False)
    token: str | None = field(repr=False)
    token_secret: str | None = field(repr=False)
    signature_method: str = "HMAC-SHA1"

    def signer(self) -> OAuth1Signer:
        """Authlib's signer (through authbridge's ``httpx.Auth`` adapter)."""
        return OAuth1Signer(
            consumer_key=self.client_key,
            consumer_secret=self.client_secret,
            signature_method=self.signature_method,
            token=self.token,
            token_secret=self.token_secret,
        )


@dataclass(frozen=True)
class RequestAuth:
    """Rendered request rules, ready to apply to requests; ``repr`` shows no secret."""

    base_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    basic: tuple[str, str] | None = None
    oauth1: OAuth1Signing | None = None

    def auth(self) -> RequestRulesAuth:
        """An ``httpx.Auth`` applying these rules to every request of a client."""
        return RequestRulesAuth(self)

    def apply(self, request: httpx.Request) -> httpx.Request:
        """Add the headers, parameters, Basic credentials and OAuth 1.0a signature in place.

        For OAuth 1.0a a form-encoded body is part of the signature, so it must have been read
        (``await request.aread()``) first; :meth:`auth` does that itself.
        """
        if self.params:
            request.url = request.url.copy_merge_params(dict(self.params))
        for name, value in self.headers.items():
            request.headers[name] = value
        if self.basic is not None:
            pair = f"{self.basic[0]}:{self.basic[1]}".encode()
            request.headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        if self.oauth1 is not None:
            body = request.content if _is_form(request) else b""
            request.headers["Authorization"] = self.oauth1.signer().authorization(
                request.method, str(request.url), request.headers, body
            )
        return request

    def to_json(self) -> dict[str, Any]:
        """The wire form (the body of ``GET /v1/authentications/{id}/request-auth``)."""
        oauth1 = None
        if self.oauth1 is not None:
            oauth1 = {
                "client_key": self.oauth1.client_key,
                "client_secret": self.oauth1.client_secret,
                "token": self.oauth1.token,
                "token_secret": self.oauth1.token_secret,
                "signature_method": self.oauth1.signature_method,
            }
        return {
            "base_url": self.base_url,
            "headers": dict(self.headers),
            "params": dict(self.params),
            "basic": (
                None
                if self.basic is None
                else {"username": self.basic[0], "password": self.basic[1]}
            ),
            "oauth1": oauth1,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Read the wire form back; a malformed document raises ``ValueError``."""
        try:
            basic = data.get("basic")
            oauth1 = data.get("oauth1")
            return cls(
                base_url=_optional_text(data.get("base_url")),
                headers=_text_map(data.get("headers") or {}),
                params=_text_map(data.get("params") or {}),
                basic=None if basic is None else (str(basic["username"]), str(basic["password"])),
                oauth1=None
                if oauth1 is None
                else OAuth1Signing(
                    client_key=str(oauth1["client_key"]),
                    client_secret=str(oauth1["client_secret"]),
                    token=_optional_text(oauth1.get("token")),
                    token_secret=_optional_text(oauth1.get("token_secret")),
                    signature_method=str(oauth1.get("signature_method") or "HMAC-SHA1"),
                ),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError("not a request-auth document") from exc

    def __repr__(self) -> str:
        origin = None
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            origin = f"{parts.scheme}://{parts.hostname}"
        return (
            f"RequestAuth(origin={origin!r}, headers={sorted(self.headers)}, "
            f"params={sorted(self.params)}, basic={self.basic is not None}, "
            f"oauth1={self.oauth1!r})"
        )


class RequestRulesAuth(httpx.Auth):
    """``httpx.Auth`` for :class:`RequestAuth`; works with sync and async clients.

    Only a form-encoded body is read before sending (OAuth 1.0a signs its parameters); other
    bodies keep streaming.
    """

    def __init__(self, rules: RequestAuth) -> None:
        self.rules = rules

    def __repr__(self) -> str:
        return f"RequestRulesAuth({self.rules!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield self.rules.apply(request)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if self.rules.oauth1 is not None and _is_form(request):
            request.read()
        yield self.rules.apply(request)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self.rules.oauth1 is not None and _is_form(request):
            await request.aread()
        yield self.rules.apply(request)


def template_values(
    credentials: Mapping[str, Any],
    config: ClientConfig,
    extra_values: Mapping[str, object] = _EMPTY,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, object]:
    """The values request-rule templates may use, in snake_case and camelCase.

    Credentials (minus the refresh token), the client id and consumer key (public), the
    connector settings, the variant's values (``config.variant_values``), then
    ``extra_values``; later ones win. The stored profile is ``profile_info``
    (``{{profile_info.dc}}``).
    """
    plain: dict[str, object] = {
        key: value for key, value in credentials.items() if key not in PRIVATE_CREDENTIALS
    }
    public = {"client_id": config.client_id, "consumer_key": config.consumer_key}
    plain.update({key: value for key, value in public.items() if value})
    plain.update(config.settings)
    plain.update(config.variant_values)
    plain.update(extra_values)
    if profile is not None:
        plain["profile_info"] = profile
    named = dict(plain)
    for key, value in plain.items():
        for spelling in (to_camel(key), to_snake(key)):
            if spelling not in PRIVATE_CREDENTIALS:
                named.setdefault(spelling, value)
    return named


def token_values(definition: AuthDefinition) -> frozenset[str]:
    """Provider values besides the tokens that the request rules read from the credentials
    (Salesforce's ``instance_url``): an import may bring them with the tokens."""
    rules = definition.request
    if not isinstance(rules, RequestRules):
        return frozenset()
    texts = [rules.base_url or "", *rules.headers.values(), *rules.params.values()]
    if rules.auth is not None:
        texts.extend(str(value) for value in rules.auth.model_dump().values())
    names = {name.split(".")[0] for text in texts for name in template_names(text)}
    form = set(getattr(definition, "auth", {}))
    return frozenset(names - form - PRIVATE_CREDENTIALS - {"access_token", "profile_info"})


async def prepare(
    definition: AuthDefinition,
    *,
    credentials: Mapping[str, Any],
    config: ClientConfig,
    extra_values: Mapping[str, object] = _EMPTY,
    profile: Mapping[str, Any] | None = None,
    http: OutboundClient | None = None,
    now: datetime | None = None,
) -> RequestAuth:
    """Render ``definition``'s request rules with these credentials and configuration.

    ``profile`` is the authentication's stored profile. A callable ``request`` is called with
    a :class:`Context` (built on ``http`` and ``now``)
    and must return a mapping shaped like :class:`RequestRules`. An ``oauth2`` definition whose
    rules put nothing on the request sends ``Authorization: Bearer {{access_token}}``; an
    ``oauth1`` one signs every request with the configured consumer and the stored token.
    Raises :class:`errors.TemplateError` (or a subclass) when a value cannot be used safely.
    """
    values = template_values(credentials, config, extra_values, profile)
    rules = await _rules(definition, credentials, config, profile, http, now)
    if (
        isinstance(definition, OAuth2Definition)
        and not rules.headers
        and not rules.params
        and rules.auth is None
    ):
        rules = rules.model_copy(update={"headers": _DEFAULT_OAUTH2.headers})
    headers = {name: render_header(value, values) for name, value in rules.headers.items()}
    basic = None
    if isinstance(rules.auth, BasicAuth):
        basic = (render_text(rules.auth.username, values), render_text(rules.auth.password, values))
    elif rules.auth is not None:
        headers["Authorization"] = f"Bearer {render_header(rules.auth.bearer, values)}"
    return RequestAuth(
        base_url=None if rules.base_url is None else render_base_url(rules, values),
        headers=headers,
        params={name: render_text(value, values) for name, value in rules.params.items()},
        basic=basic,
        oauth1=_oauth1(definition, credentials, config),
    )


def render_base_url(rules: RequestRules, values: Mapping[str, object]) -> str:
    """Render ``rules.base_url``; an origin taken from a value must match ``allowed_hosts``."""
    assert rules.base_url is not None
    template = rules.base_url.strip()
    name = origin_placeholder(template)
    if name is None:
        return render_url(template, values)
    origin = _allowed_origin(name, lookup(values, name), rules.allowed_hosts)
    rest = PLACEHOLDER.sub("", template, count=1)
    placeholder_origin = "https://origin.invalid"
    rendered = render_url(placeholder_origin + rest, values)
    return origin + rendered.removeprefix(placeholder_origin)


def _allowed_origin(name: str, value: object, allowed_hosts: tuple[str, ...]) -> str:
    """An absolute https URL with a host ending with one of ``allowed_hosts``, as origin."""
    if value is None:
        raise errors.MissingTemplateValue(name)
    if not isinstance(value, str) or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
        raise errors.UnsafeTemplateValue(name, "must be an https URL")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise errors.UnsafeTemplateValue(name, "must be an https URL") from exc
    host = parts.hostname or ""
    if parts.scheme != "https" or not host:
        raise errors.UnsafeTemplateValue(name, "must be an absolute https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise errors.UnsafeTemplateValue(name, "must not hold a user name or password")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise errors.UnsafeTemplateValue(name, "must not hold a query or fragment")
    labels = host.split(".")
    if not all(DNS_LABEL.fullmatch(label) for label in labels):
        raise errors.UnsafeTemplateValue(name, "must name a DNS host")
    if not any(host == suffix[1:] or host.endswith(suffix) for suffix in allowed_hosts):
        raise errors.UnsafeTemplateValue(
            name, f"must be on one of the connector's allowed hosts ({', '.join(allowed_hosts)})"
        )
    netloc = f"{host}:{port}" if port is not None else host
    return f"https://{netloc}{parts.path.rstrip('/')}"


async def _rules(
    definition: AuthDefinition,
    credentials: Mapping[str, Any],
    config: ClientConfig,
    profile: Mapping[str, Any] | None,
    http: OutboundClient | None,
    now: datetime | None,
) -> RequestRules:
    declared = definition.request
    if declared is None:
        return RequestRules()
    if isinstance(declared, RequestRules):
        return declared
    if http is None:
        raise errors.AuthBridgeError("a callable 'request' needs an outbound client")
    tokens = {key: value for key, value in credentials.items() if key not in PRIVATE_CREDENTIALS}
    form = getattr(definition, "auth", {})
    context = Context(
        http=http,
        now=now or datetime.now(UTC),
        fields={key: value for key, value in tokens.items() if key in form},
        config=config,
        tokens=tokens,
        profile=profile,
    )
    answer = await resolve(declared, context)
    if not isinstance(answer, Mapping):
        raise errors.ProviderError("the connector's 'request' callable did not return a mapping")
    try:
        return RequestRules.model_validate(answer)
    except ValidationError as exc:
        where = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
        raise errors.ProviderError(
            f"the connector's 'request' callable returned invalid rules (at {where or 'top'})"
        ) from exc


def _oauth1(
    definition: AuthDefinition, credentials: Mapping[str, Any], config: ClientConfig
) -> OAuth1Signing | None:
    if not isinstance(definition, OAuth1Definition):
        return None
    if not config.consumer_key or not config.consumer_secret:
        raise errors.Conflict("the connector has no consumer key and secret configured")
    return OAuth1Signing(
        client_key=config.consumer_key,
        client_secret=config.consumer_secret,
        token=_optional_text(_first(credentials, "access_token", "accessToken")),
        token_secret=_optional_text(
            _first(credentials, "access_token_secret", "accessTokenSecret")
        ),
        signature_method=definition.signature_method,
    )


def _first(data: Mapping[str, Any], *names: str) -> Any:
    return next((data[name] for name in names if data.get(name) not in (None, "")), None)


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _text_map(value: Mapping[str, Any]) -> dict[str, str]:
    return {str(key): str(item) for key, item in value.items()}


def _is_form(request: httpx.Request) -> bool:
    content_type: str = request.headers.get("Content-Type", "")
    return content_type.split(";")[0].strip().lower() == _FORM
