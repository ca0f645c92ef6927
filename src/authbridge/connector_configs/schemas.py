"""The request and response bodies of ``/v1/connectors`` and ``/v1/connector-configs``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from authbridge.api.schemas import Request
from authbridge.connector_configs.service import ConnectorSettings


class ConnectorConfigIn(Request):
    client_id: str | None = Field(default=None, max_length=512)
    client_secret: str | None = Field(default=None, max_length=4096)
    consumer_key: str | None = Field(default=None, max_length=512)
    consumer_secret: str | None = Field(default=None, max_length=8192)
    redirect_uri: str | None = Field(default=None, max_length=2048)
    scopes: list[str] | None = Field(default=None, max_length=100)
    settings: dict[str, str] = Field(default_factory=dict)


class ConnectorConfigOut(BaseModel):
    connector: str
    variant: str | None = Field(default=None, description="null: the connector's default variant")
    client_id: str | None
    consumer_key: str | None
    redirect_uri: str | None
    redirect_uri_used: str = Field(description="The exact redirect URI sent to the provider")
    scopes: list[str] | None
    has_client_secret: bool
    has_consumer_secret: bool
    settings: list[str] = Field(description="Names of the settings set (values are secret)")
    updated_at: datetime

    @classmethod
    def of(cls, settings: ConnectorSettings, redirect_uri_used: str) -> ConnectorConfigOut:
        return cls(
            connector=settings.connector_key,
            variant=settings.variant or None,
            client_id=settings.client_id,
            consumer_key=settings.consumer_key,
            redirect_uri=settings.redirect_uri,
            redirect_uri_used=redirect_uri_used,
            scopes=None if settings.scopes is None else list(settings.scopes),
            has_client_secret=bool(settings.client_secret),
            has_consumer_secret=bool(settings.consumer_secret),
            settings=sorted(settings.settings),
            updated_at=settings.updated_at,
        )


class FieldOut(BaseModel):
    name: str
    label: str
    type: str
    required: bool
    tooltip: str | None
    options: list[str]


class ConnectorOut(BaseModel):
    key: str
    version: str
    label: str
    auth_type: str
    description: str | None
    docs_url: str | None
    fields: list[FieldOut]
    variants: list[str] = Field(
        default_factory=list, description="Its variants (service environments), default first"
    )
