"""Connector auth definitions as frozen pydantic models.

A definition's ``type`` selects one of six models (:data:`AuthDefinition` is their union,
discriminated on ``type``). Keys are snake_case; the camelCase spellings used by Appmixer-style
``auth.js`` modules are accepted as aliases, and so are the type names ``apiKey`` and ``oauth``
(OAuth 1.0a), so an existing declarative definition ports over unchanged. Unknown keys are
rejected.

A *property* (``validate``, ``request_profile_info``, ``auth_url`` …) is one of:

* a callable, sync or async, given a :class:`authbridge.mechanisms.Context`;
* a :class:`~authbridge.connectors.request_models.RequestSpec` (method, url, headers, params,
  json, data, auth) whose strings may hold ``{{name}}`` templates;
* a plain URL string, whose meaning depends on the property (a GET for ``validate``,
  ``request_profile_info`` and ``validate_access_token``; a POST for token endpoints; the page to
  send the end user to for ``auth_url``).

The request models (:class:`RequestSpec`, :class:`RequestRules` and their ``auth``) and the
base :class:`Model` are in :mod:`authbridge.connectors.request_models`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import nh3
from pydantic import (
    AliasChoices,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)

from authbridge.connectors.request_models import Model, RequestRules, RequestSpec

AuthType = Literal["none", "api_key", "pwd", "oauth1", "oauth2", "jwt"]
AUTH_TYPES: tuple[AuthType, ...] = ("none", "api_key", "pwd", "oauth1", "oauth2", "jwt")

TYPE_ALIASES: Mapping[str, AuthType] = {
    "apiKey": "api_key",
    "apikey": "api_key",
    "oauth": "oauth1",
    "oauth1a": "oauth1",
}

TOOLTIP_TAGS = {"a", "b", "br", "code", "em", "i", "p", "strong", "u", "ul", "ol", "li", "span"}


def canonical_type(value: object) -> object:
    """Map a type alias (``apiKey``, ``oauth``) to its canonical name; leave others alone."""
    if isinstance(value, str):
        return TYPE_ALIASES.get(value, value)
    return value


def _property_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<url>"
    if isinstance(value, Mapping | RequestSpec):
        return "<request>"
    if callable(value):
        return "<callable>"
    return None


def _path_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<path>"
    return "<callable>" if callable(value) else None


Property = Annotated[
    Annotated[str, Tag("<url>")]
    | Annotated[RequestSpec, Tag("<request>")]
    | Annotated[Callable[..., Any], Tag("<callable>")],
    Discriminator(
        _property_kind,
        custom_error_type="invalid_property",
        custom_error_message="must be a URL string, a request spec (a mapping) or a callable",
    ),
]
"""A definition property: a URL string, a request spec, or a callable given a context.

(Union members are tagged ``<url>``, ``<request>``, ``<callable>``; error paths drop the tags.)
"""

PathOrCallable = Annotated[
    Annotated[str, Tag("<path>")] | Annotated[Callable[..., Any], Tag("<callable>")],
    Discriminator(
        _path_kind,
        custom_error_type="invalid_path_or_callable",
        custom_error_message="must be a dot path string or a callable",
    ),
]
"""A dot path into the profile (``contact.email``) or a callable given a context."""


def _rules_kind(value: Any) -> str | None:
    if isinstance(value, Mapping | RequestRules):
        return "<rules>"
    return "<callable>" if callable(value) else None


RequestRulesOrCallable = Annotated[
    Annotated[RequestRules, Tag("<rules>")] | Annotated[Callable[..., Any], Tag("<callable>")],
    Discriminator(
        _rules_kind,
        custom_error_type="invalid_request_rules",
        custom_error_message="must be a mapping of request rules or a callable",
    ),
]
"""Request rules, or a callable given a context that returns a mapping of the same shape."""


class SelectOption(Model):
    value: str
    label: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        return {"value": value} if isinstance(value, str) else value


class FieldSpec(Model):
    """One input of a connect form (or of an ``authData`` claim, or a connector setting).

    ``name`` is the label shown to the end user; ``tooltip`` may hold simple HTML, which is
    sanitised when the definition is loaded.
    """

    type: Literal["text", "textarea", "password", "select"] = "text"
    name: str | None = None
    tooltip: str | None = None
    required: bool = True
    options: tuple[SelectOption, ...] = ()
    default: str | None = None
    placeholder: str | None = None

    @field_validator("tooltip", mode="after")
    @classmethod
    def _sanitise_tooltip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return nh3.clean(value, tags=TOOLTIP_TAGS, attributes={"a": {"href", "title"}})

    @model_validator(mode="after")
    def _select_has_options(self) -> FieldSpec:
        if self.type == "select" and not self.options:
            raise ValueError("a 'select' field needs at least one entry in 'options'")
        if self.type != "select" and self.options:
            raise ValueError("'options' is only allowed on a 'select' field")
        values = {option.value for option in self.options}
        if self.default is not None and self.options and self.default not in values:
            raise ValueError(f"default {self.default!r} is not one of the options")
        return self

    @property
    def is_secret(self) -> bool:
        """Whether the form masks the value (every value is encrypted at rest regardless)."""
        return self.type == "password"


Fields = dict[str, FieldSpec]


class ConnectButton(Model):
    """A custom image (usually a data URI) for the "Connect account" button."""

    image: str


class _Base(Model):
    """Properties every auth type may declare."""

    request_profile_info: Property | None = None
    account_name_from_profile_info: PathOrCallable | None = None
    connect_account_button: ConnectButton | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "connect_account_button", "connectAccountButton", "connecAccountButton"
        ),
    )
    on_connected: Callable[..., Any] | None = None
    request: RequestRulesOrCallable | None = None
    """How the credentials go on API requests: :class:`RequestRules` or a callable."""
    token_type: str | None = None
    settings: Fields = Field(default_factory=dict)
    """Connector configuration values the host sets per environment (e.g. a shared secret)."""

    @field_validator("settings", mode="after")
    @classmethod
    def _field_names(cls, value: Fields) -> Fields:
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"field name {name!r} must be a valid identifier")
        return value


class _FormBase(_Base):
    auth: Fields
    validate_err_callback: Callable[..., Any] | None = None

    @field_validator("auth", mode="after")
    @classmethod
    def _auth_fields(cls, value: Fields) -> Fields:
        if not value:
            raise ValueError("at least one field is required")
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"field name {name!r} must be a valid identifier")
        return value


class NoneDefinition(_Base):
    """No per-user credentials (the host may still configure connector ``settings``)."""

    type: Literal["none"] = "none"


class ApiKeyDefinition(_FormBase):
    """Credentials typed into a form: API keys, tokens, subdomains."""

    type: Literal["api_key"] = "api_key"
    validate_: Property | None = Field(
        default=None, validation_alias=AliasChoices("validate", "validate_")
    )


def _default_pwd_fields() -> Fields:
    return {
        "username": FieldSpec(type="text", name="Username"),
        "password": FieldSpec(type="password", name="Password"),
    }


class PwdDefinition(_FormBase):
    """Username and password, used as HTTP Basic or exchanged by ``validate`` for a token.

    ``validate`` (code, or a request spec whose answer is read) gives ``{token, expires}``, the
    expiry also spelled ``expiresIn`` or ``expires_in`` (:mod:`authbridge.mechanisms.pwd`).
    """

    type: Literal["pwd"] = "pwd"
    auth: Fields = Field(default_factory=_default_pwd_fields)
    validate_: Property = Field(validation_alias=AliasChoices("validate", "validate_"))


class JwtDefinition(_FormBase):
    """Credentials the host passes in the ``authData`` claim of a JWT it signs."""

    type: Literal["jwt"] = "jwt"
    validate_: Property | None = Field(
        default=None, validation_alias=AliasChoices("validate", "validate_")
    )


class OAuth1Definition(_Base):
    """OAuth 1.0a (RFC 5849): request token, authorization, access token."""

    type: Literal["oauth1"] = "oauth1"
    request_request_token: Property
    auth_url: Property
    request_access_token: Property
    validate_access_token: Property | None = None
    signature_method: Literal["HMAC-SHA1", "RSA-SHA1", "PLAINTEXT"] = "HMAC-SHA1"


class OAuth2Definition(_Base):
    """OAuth 2 (RFC 6749): authorization code (PKCE by default) or client credentials."""

    type: Literal["oauth2"] = "oauth2"
    grant_type: Literal["authorization_code", "client_credentials"] = "authorization_code"
    auth_url: Property | None = None
    request_access_token: Property | None = None
    refresh_access_token: Property | None = None
    validate_access_token: Property | None = None
    email_from_profile_info: PathOrCallable | None = None
    scope: tuple[str, ...] = ()
    scope_delimiter: str = ","
    refresh_before_exp: float = Field(default=5, ge=0)
    refresh_before_exp_units: Literal["minutes", "seconds"] = "minutes"
    pkce: bool = True
    client_authentication: Literal["body", "basic"] = "body"
    authorization_params: dict[str, str] = Field(default_factory=dict)
    revocation: Property | None = Field(
        default=None,
        validation_alias=AliasChoices("revocation", "revoke", "revoke_url", "revokeUrl"),
    )
    """How to revoke the stored tokens before a scheduled deletion: a URL string is an RFC 7009
    endpoint (``revoke_url``); a request spec (``POST`` unless it names a method) or a callable
    given the context is the provider's own way (GitHub's ``DELETE …/grant``)."""
    discovery_url: str | None = None
    """The server's metadata document (RFC 8414 ``/.well-known/oauth-authorization-server`` or
    OpenID ``/.well-known/openid-configuration``): it fills ``auth_url``,
    ``request_access_token``, ``revocation`` and ``issuer`` where they are left out."""
    issuer: str | None = None
    """The authorization server's issuer (RFC 9207): a callback's ``iss`` must equal it. With
    ``auth_url`` or ``request_access_token`` left out, the metadata is found from it (RFC 8414
    §3.1) as for ``discovery_url``."""
    issuer_required: bool = False
    """The server always sends ``iss`` (RFC 9207 §3): a callback without it is refused."""
    hard_expiry: bool = False
    """The access token's expiry is final (Facebook's 60-day tokens cannot be refreshed): it
    becomes the authentication's hard expiry, so the worker warns before it and marks the
    authentication expired after it, and never tries to refresh it."""

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_list(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("discovery_url", "issuer", mode="after")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None or "{{" in value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value

    @model_validator(mode="after")
    def _grant_needs(self) -> OAuth2Definition:
        if self.discovery_url is not None or self.issuer is not None:
            return self  # the server's metadata fills the endpoints left out
        if self.request_access_token is None:
            raise ValueError(
                "'request_access_token' (requestAccessToken) is required, unless "
                "'discovery_url' or 'issuer' finds it in the server's metadata"
            )
        if self.grant_type == "authorization_code" and self.auth_url is None:
            raise ValueError(
                "'auth_url' (authUrl) is required for the authorization code grant, unless "
                "'discovery_url' or 'issuer' finds it in the server's metadata"
            )
        return self


AuthDefinition = Annotated[
    NoneDefinition
    | ApiKeyDefinition
    | PwdDefinition
    | JwtDefinition
    | OAuth1Definition
    | OAuth2Definition,
    Discriminator("type"),
]

FormDefinition = ApiKeyDefinition | PwdDefinition | JwtDefinition

_definition_adapter: TypeAdapter[AuthDefinition] = TypeAdapter(AuthDefinition)


def parse_definition(auth_type: str, definition: Mapping[str, Any]) -> AuthDefinition:
    """Validate a raw definition mapping for ``auth_type`` (aliases accepted).

    Raises :class:`pydantic.ValidationError`; the loader turns it into problems with file and
    key path.
    """
    data = dict(definition)
    data["type"] = canonical_type(auth_type)
    return _definition_adapter.validate_python(data)
