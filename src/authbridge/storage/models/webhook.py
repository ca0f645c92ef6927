"""Webhooks: endpoints per environment, the outbox of events, and their deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class WebhookEndpoint(Base):
    """Where an environment's events are sent; ``secret_ct`` is the encrypted signing secret.

    ``event_types`` lists the events it receives (empty: all of them). ``payload_format`` is
    ``standard`` (the ``{type, timestamp, data}`` envelope) or ``tray`` (Tray Embedded's flat
    expired-auth body); ``expiry_warning_days`` is how long before a hard expiry it hears of it
    (``None``: the connector's window, else the worker's).
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(255))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(default=True)
    payload_format: Mapped[str] = mapped_column(
        String(16), default="standard", server_default="standard"
    )
    expiry_warning_days: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"WebhookEndpoint(id={self.id!r}, url={self.url!r}, enabled={self.enabled!r})"


class WebhookEvent(Base):
    """One event in the outbox, written in the transaction of the change it reports.

    ``id`` is the ``webhook-id`` of every delivery of it, so receivers can deduplicate.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_listing", "environment_id", "created_at", "id"),)

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"WebhookEvent(id={self.id!r}, type={self.type!r})"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(Base):
    """One event to one endpoint: retried with backoff until it succeeds or gives up.

    A pending delivery is tried from ``next_attempt_at`` and retried until ``retry_until``
    (``None`` on rows older than redelivery: 24 hours after the event). A redelivery is a new
    row for the same event and endpoint, so the earlier attempts stay listed.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_listing", "environment_id", "created_at", "id"),
    )

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(
            DeliveryStatus,
            name="delivery_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda statuses: [status.value for status in statuses],
            validate_strings=True,
        ),
        default=DeliveryStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    retry_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return (
            f"WebhookDelivery(id={self.id!r}, status={self.status.value!r}, "
            f"attempts={self.attempts!r})"
        )
