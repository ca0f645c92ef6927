"""The request and response bodies of ``/v1/connect-sessions``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from authbridge.api.schemas import MAX_TEXT, ExternalId, Request


class ConnectSessionIn(Request):
    external_user_id: str = ExternalId
    connector: str = Field(min_length=1, max_length=128)
    version: str | None = Field(default=None, max_length=32)
    variant: str | None = Field(
        default=None,
        max_length=64,
        description="The connector's variant (service environment); its default when omitted",
    )
    authentication_id: str | None = Field(
        default=None, max_length=64, description="Edit or reconnect this authentication in place"
    )
    origin: str | None = Field(
        default=None,
        max_length=512,
        description="The host page's origin; the result is posted to it alone",
    )
    skip_title_field: bool = False
    skip_auth_settings: bool = False
    allow_account_change: bool = Field(
        default=False,
        description="When editing, accept a reconnect that signs in to another account",
    )
    delete_after_seconds: int | None = Field(
        default=None,
        gt=0,
        le=10 * 365 * 86400,
        description="Delete the account this many seconds after it is connected or reconnected",
    )
    user_name: str | None = Field(default=None, max_length=MAX_TEXT)
    user_email: str | None = Field(default=None, max_length=320)


class ConnectSessionOut(BaseModel):
    id: str
    url: str = Field(description="Open in a popup or send to the end user; valid once")
    expires_at: datetime
