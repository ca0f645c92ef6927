"""The request and response bodies of ``/v1/authentications`` (and the import document
``authbridge import`` reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from authbridge.api.schemas import MAX_TEXT, Request
from authbridge.authentications.imports import ImportRequest
from authbridge.jsonvalues import json_problem
from authbridge.storage.models import (
    Authentication,
)


class AuthenticationOut(BaseModel):
    id: str
    connector: str
    connector_version: str
    connector_variant: str | None = Field(description="null: the connector's default variant")
    auth_type: str
    name: str
    external_user_id: str | None
    email: str | None
    scopes: list[str]
    status: str
    last_error: str | None
    expires_at: datetime | None
    hard_expires_at: datetime | None
    delete_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, auth: Authentication, external_user_id: str | None) -> AuthenticationOut:
        return cls(
            id=auth.id,
            connector=auth.connector_key,
            connector_version=auth.connector_version,
            connector_variant=auth.connector_variant,
            auth_type=auth.auth_type,
            name=auth.name,
            external_user_id=external_user_id,
            email=auth.email,
            scopes=list(auth.scopes or []),
            status=auth.status.value,
            last_error=auth.last_error,
            expires_at=auth.expires_at,
            hard_expires_at=auth.hard_expires_at,
            delete_at=auth.delete_at,
            created_at=auth.created_at,
            updated_at=auth.updated_at,
        )


def timestamp(value: datetime | None) -> str | None:
    """``value`` as the response models render a UTC time (``2026-01-01T00:00:00Z``), for a
    body built without a model."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class CredentialsOut(BaseModel):
    authentication_id: str
    connector: str
    auth_type: str
    credentials: dict[str, Any] = Field(
        description="Entered fields and tokens; never the refresh token"
    )
    expires_at: datetime | None


class BasicOut(BaseModel):
    username: str
    password: str


class OAuth1Out(BaseModel):
    client_key: str
    client_secret: str
    token: str | None
    token_secret: str | None
    signature_method: str


class RequestAuthOut(BaseModel):
    """How to authenticate requests to the provider's API (the connector's request rules
    rendered with fresh credentials); ``authbridge.sdk`` applies it to an httpx client."""

    base_url: str | None = Field(description="The API's base URL; null when the connector has none")
    headers: dict[str, str] = Field(description="Headers to send with every request")
    params: dict[str, str] = Field(description="Query parameters to add to every request")
    basic: BasicOut | None = Field(description="HTTP Basic credentials to send")
    oauth1: OAuth1Out | None = Field(description="Sign every request with OAuth 1.0a (RFC 5849)")
    expires_at: datetime | None = Field(description="When the credentials in it expire")


class RefreshOut(BaseModel):
    outcome: Literal["refreshed", "shared"] = Field(
        description="refreshed: by this call; shared: by a refresh running at the same time"
    )
    expires_at: datetime | None


class AuthenticationUpdate(Request):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    delete_at: AwareDatetime | None = Field(
        default=None, description="When to stop serving and delete the authentication"
    )
    clear_delete_at: bool = False


class TokensIn(Request):
    """The tokens, plus provider values the connector's request rules use (``instance_url``):
    any other name is refused when the import is checked against the connector."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Annotated[str, StringConstraints(max_length=2048)]] = Field(
        init=False
    )

    access_token: str | None = Field(default=None, max_length=8192)
    refresh_token: str | None = Field(default=None, max_length=8192)
    token_type: str | None = Field(default=None, max_length=64)
    scope: str | None = Field(default=None, max_length=4096)
    access_token_secret: str | None = Field(
        default=None, max_length=8192, description="OAuth 1.0a token secret"
    )

    @model_validator(mode="after")
    def _storable_values(self) -> TokensIn:
        problem = json_problem(self.model_extra or {})
        if problem is not None:
            raise ValueError(problem.removeprefix("the value: "))
        return self


class AuthenticationImport(Request):
    connector: str = Field(min_length=1, max_length=128)
    version: str | None = Field(default=None, max_length=32)
    variant: str | None = Field(
        default=None,
        max_length=64,
        description="The connector's variant (service environment); its default when omitted",
    )
    external_user_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEXT, description="Required with a master token"
    )
    name: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    fields: dict[str, str] = Field(
        default_factory=dict, description="Form fields (api_key, pwd, jwt connectors)"
    )
    tokens: TokensIn | None = Field(default=None, description="OAuth tokens (oauth1, oauth2)")
    scopes: list[str] | None = Field(default=None, max_length=100)
    expires_at: AwareDatetime | None = None
    hard_expires_at: AwareDatetime | None = None
    delete_at: AwareDatetime | None = None
    delete_after_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    validate_credentials: bool = Field(
        default=True,
        alias="validate",
        description="Run the definition's validate (or validate_access_token) first",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_request(self, *, skip_validate: bool = False) -> ImportRequest:
        """The import service's request for this body (``skip_validate`` overrides it)."""
        return ImportRequest(
            connector=self.connector,
            external_user_id=self.external_user_id,
            version=self.version,
            variant=self.variant,
            name=self.name,
            fields=self.fields,
            tokens=self.tokens.model_dump(exclude_none=True) if self.tokens else {},
            scopes=tuple(self.scopes) if self.scopes is not None else None,
            expires_at=self.expires_at,
            hard_expires_at=self.hard_expires_at,
            delete_at=self.delete_at,
            delete_after_seconds=self.delete_after_seconds,
            validate=self.validate_credentials and not skip_validate,
        )


class JwtConnect(Request):
    connector: str = Field(min_length=1, max_length=128)
    token: str = Field(min_length=1, max_length=64 * 1024, description="The host-signed JWT")


class JwtConnected(BaseModel):
    authentication: AuthenticationOut
    created: bool
