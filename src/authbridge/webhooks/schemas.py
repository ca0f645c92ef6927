"""The request and response bodies of the webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from authbridge.api.schemas import MAX_TEXT, Request
from authbridge.storage.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

PayloadFormat = Literal["standard", "tray"]
FORMAT_HELP = (
    "standard: {type, timestamp, data}; tray: the flat body of Tray Embedded's expired-auth "
    "notification ({authentication_name, service_name, user_id, authId, external_user_id}), "
    "for authentication.expiring (the default) and authentication.expired only. Both are "
    "signed with the Standard Webhooks headers."
)
WARNING_HELP = (
    "Days before a hard expiry this endpoint gets authentication.expiring (at most 365); "
    "null: the connector's window, else the worker's --warn-days"
)


class WebhookEndpointIn(Request):
    url: str = Field(min_length=1, max_length=2048, description="An absolute https (or http) URL")
    event_types: list[str] = Field(
        default_factory=list, max_length=20, description="The events to receive; empty: all"
    )
    description: str | None = Field(default=None, max_length=MAX_TEXT)
    payload_format: PayloadFormat = Field(default="standard", description=FORMAT_HELP)
    expiry_warning_days: float | None = Field(
        default=None, gt=0, le=365, allow_inf_nan=False, description=WARNING_HELP
    )


class WebhookEndpointUpdate(Request):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(
        default=None, max_length=20, description="The events to receive; empty: all"
    )
    enabled: bool | None = None
    description: str | None = Field(
        default=None, max_length=MAX_TEXT, description="An empty text removes it"
    )
    payload_format: PayloadFormat | None = Field(default=None, description=FORMAT_HELP)
    expiry_warning_days: float | None = Field(
        default=None, gt=0, le=365, allow_inf_nan=False, description=WARNING_HELP
    )


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    description: str | None
    event_types: list[str] = Field(description="The events it receives; empty: all")
    enabled: bool
    payload_format: str = Field(description="standard or tray")
    expiry_warning_days: float | None = Field(description=WARNING_HELP)
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookEndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types or []),
            enabled=endpoint.enabled,
            payload_format=endpoint.payload_format,
            expiry_warning_days=endpoint.expiry_warning_days,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class IssuedWebhookEndpointOut(WebhookEndpointOut):
    secret: str = Field(
        description="The Standard Webhooks signing secret (whsec_...); shown once, stored encrypted"
    )


class WebhookDeliveryOut(BaseModel):
    id: str
    event_id: str = Field(description="Also the webhook-id header of every attempt")
    event_type: str
    endpoint_id: str
    status: str = Field(description="pending, succeeded or failed")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, delivery: WebhookDelivery, event_type: str) -> WebhookDeliveryOut:
        pending = delivery.status.value == "pending"
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            event_type=event_type,
            endpoint_id=delivery.endpoint_id,
            status=delivery.status.value,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            last_attempt_at=delivery.last_attempt_at,
            next_attempt_at=delivery.next_attempt_at if pending else None,
            created_at=delivery.created_at,
        )


class WebhookEventOut(BaseModel):
    id: str
    type: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: WebhookEvent) -> WebhookEventOut:
        data = dict(event.payload or {})
        return cls(id=event.id, type=event.type, data=data, created_at=event.created_at)


class RedeliveryIn(Request):
    since: AwareDatetime = Field(description="Events created at or after this time")
    until: AwareDatetime | None = Field(
        default=None, description="Events created before this time; default: now"
    )
    failed_only: bool = Field(
        default=False,
        description="Only the events this endpoint never received (every delivery failed)",
    )
    limit: int = Field(default=200, ge=1, le=200, description="Events queued in this call")
    cursor: str | None = Field(
        default=None, max_length=512, description="next_cursor of the previous call"
    )


class RedeliveryOut(BaseModel):
    queued: int = Field(description="New deliveries queued; the worker sends them")
    already_pending: int = Field(description="Events already waiting for a delivery, left alone")
    next_cursor: str | None = Field(
        description="More events remain in the range: call again with this cursor"
    )
