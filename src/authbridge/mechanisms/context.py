"""What a definition's callables receive, and the client configuration they may read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic.alias_generators import to_camel, to_snake

from authbridge import errors
from authbridge.connectors.request_models import RequestSpec
from authbridge.mechanisms.http_request import HttpRequest

if TYPE_CHECKING:
    from authbridge.http import OutboundClient


@dataclass(frozen=True)
class ClientConfig:
    """A connector's configuration in one environment: OAuth client, consumer, settings, and
    the template values of the chosen variant (``{{login}}`` in ``https://{{login}}.…``).

    Secret values are kept out of ``repr``. Variant values are not secret: they come from the
    connector's manifest.
    """

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    consumer_key: str | None = None
    consumer_secret: str | None = field(default=None, repr=False)
    redirect_uri: str | None = None
    scopes: tuple[str, ...] | None = None
    settings: Mapping[str, str] = field(default_factory=dict, repr=False)
    variant_values: Mapping[str, str] = field(default_factory=dict)


class Context:
    """The argument of every callable property.

    Entered field values, tokens and client credentials are readable as attributes in either
    spelling (``context.domain``, ``context.api_key`` / ``context.apiKey``,
    ``context.access_token`` / ``context.accessToken``, ``context.client_id`` …), by item
    (``context["domain"]``), and in ``{{name}}`` templates. ``context.http`` is the outbound
    client; ``await context.request(spec)`` runs a request spec (a mapping, a
    :class:`RequestSpec` or a URL) with the context's values filled in and returns the parsed
    response body; ``await context.httpRequest(config)`` (or ``.get``, ``.post`` …; also
    ``context.http_request``) sends an axios-style config as it is and returns an
    :class:`~authbridge.mechanisms.http_request.HttpResponse` with ``data``. Both raise on a
    non-2xx answer. Raise ``context.InvalidTokenError`` when a token is no longer valid and
    ``context.CredentialsRejected`` when entered credentials are wrong. In ``on_connected``,
    ``context.auth_id`` (``authId``) is the authentication just stored.
    """

    InvalidTokenError = errors.InvalidToken
    CredentialsRejected = errors.CredentialsRejected

    def __init__(
        self,
        *,
        http: OutboundClient,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        config: ClientConfig | None = None,
        callback_url: str | None = None,
        tokens: Mapping[str, Any] | None = None,
        profile: Mapping[str, Any] | None = None,
        auth_id: str | None = None,
    ) -> None:
        self.http = http
        self.auth_id = auth_id
        self.now = now
        self.fields: Mapping[str, Any] = dict(fields or {})
        self.config = config or ClientConfig()
        self.callback_url = callback_url
        self.tokens: Mapping[str, Any] = dict(tokens or {})
        self.profile = profile

    @property
    def http_request(self) -> HttpRequest:
        """The axios-like client of Appmixer's ``context.httpRequest`` (which works too)."""
        return HttpRequest(self.http, self.secrets)

    httpRequest = http_request  # the name of the code ported from an auth.js

    @property
    def authId(self) -> str | None:
        """``on_connected``'s stored authentication, as ``context.auth_id`` is."""
        return self.auth_id

    @property
    def profile_info(self) -> Mapping[str, Any] | None:
        """The profile, under the reference's name (``context.profileInfo`` works too)."""
        return self.profile

    def replace(self, **changes: Any) -> Context:
        """A copy with some of the constructor's arguments changed."""
        current: dict[str, Any] = {
            "http": self.http,
            "now": self.now,
            "fields": self.fields,
            "config": self.config,
            "callback_url": self.callback_url,
            "tokens": self.tokens,
            "profile": self.profile,
            "auth_id": self.auth_id,
        }
        current.update(changes)
        return Context(**current)

    def values(self) -> dict[str, Any]:
        """The names a ``{{name}}`` template may use, in snake_case and camelCase."""
        plain: dict[str, Any] = {}
        plain.update(self.config.settings)
        client = {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "consumer_key": self.config.consumer_key,
            "consumer_secret": self.config.consumer_secret,
            "callback_url": self.callback_url,
        }
        plain.update({key: value for key, value in client.items() if value is not None})
        plain.update(self.tokens)
        plain.update(self.fields)
        # The variant picks the provider's host: the end user's own values never override it.
        plain.update(self.config.variant_values)
        if self.profile is not None:
            plain["profile_info"] = self.profile
        if self.auth_id is not None:
            plain["auth_id"] = self.auth_id
        named = dict(plain)
        for key, value in plain.items():
            named.setdefault(to_camel(key), value)
            named.setdefault(to_snake(key), value)
        return named

    def secrets(self) -> list[str]:
        """Every value that must never be echoed back (for redaction of messages)."""
        found = [str(value) for value in self.fields.values() if value not in (None, "")]
        found += [str(value) for value in self.tokens.values() if isinstance(value, str) and value]
        for value in (self.config.client_secret, self.config.consumer_secret):
            if value:
                found.append(value)
        found += [value for value in self.config.settings.values() if value]
        return found

    async def request(
        self, spec: RequestSpec | Mapping[str, Any] | str, *, method: str = "GET"
    ) -> Any:
        """Run a request spec with this context's values; return the parsed response body."""
        if isinstance(spec, str):
            spec = RequestSpec(url=spec)
        elif not isinstance(spec, RequestSpec):
            spec = RequestSpec.model_validate(spec)
        response = await self.http.execute(
            spec, self.values(), default_method=method, secrets=self.secrets()
        )
        return response.body

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        values = self.values()
        if name in values:
            return values[name]
        raise AttributeError(f"the context has no value named {name!r}")

    def __getitem__(self, name: str) -> Any:
        return self.values()[name]

    def __repr__(self) -> str:
        return (
            f"Context(fields={sorted(self.fields)}, tokens={sorted(self.tokens)}, "
            f"callback_url={self.callback_url!r})"
        )
