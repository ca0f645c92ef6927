"""Events about authentications, written to the webhook outbox in the caller's transaction.

Payloads carry what the reference's expired-auth webhook carries (``authentication_name``,
``service_name``, ``user_id``, ``authId``, ``external_user_id``) plus the status and, for
failures, the provider's message (already redacted). Never a credential. (An endpoint whose
``payload_format`` is ``tray`` is sent those five keys alone, without the envelope.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from authbridge.services.bridge import Bridge
from authbridge.storage.models import Authentication, WebhookEndpoint
from authbridge.tenancy.repository import EndUserRepository
from authbridge.webhooks.repository import WebhookRepository

CREATED: Final = "authentication.created"
UPDATED: Final = "authentication.updated"
INVALID: Final = "authentication.invalid"
RECOVERED: Final = "authentication.recovered"
EXPIRING: Final = "authentication.expiring"
EXPIRED: Final = "authentication.expired"
DELETED: Final = "authentication.deleted"
EVENT_TYPES: Final = (CREATED, UPDATED, INVALID, RECOVERED, EXPIRING, EXPIRED, DELETED)


def payload(session: Session, auth: Authentication, **extra: Any) -> dict[str, Any]:
    external = EndUserRepository(session).external_ids([auth.end_user_id])
    body: dict[str, Any] = {
        "authId": auth.id,
        "authentication_name": auth.name,
        "service_name": auth.connector_key,
        "user_id": auth.end_user_id,
        "external_user_id": external.get(auth.end_user_id or ""),
        "status": auth.status.value,
    }
    body.update(extra)
    return body


def emit(
    bridge: Bridge,
    session: Session,
    event_type: str,
    auth: Authentication,
    *,
    now: datetime | None = None,
    deliver_at: Callable[[WebhookEndpoint], datetime] | None = None,
    **extra: Any,
) -> None:
    """Record ``event_type`` about ``auth`` in the outbox, in the caller's transaction.

    ``deliver_at(endpoint)`` holds an endpoint's delivery back until then (an expiry warning
    waits for the endpoint's own window); by default every delivery is due at once.
    """
    WebhookRepository(session, bridge.keyring).add_event(
        auth.environment_id,
        event_type,
        payload(session, auth, **extra),
        now=now or bridge.now(),
        deliver_at=deliver_at,
    )


def warning_days_by_environment(bridge: Bridge, session: Session) -> dict[str, float]:
    """The widest ``expiry_warning_days`` that an enabled endpoint receiving
    ``authentication.expiring`` sets, by environment (environments with none are left out)."""
    return WebhookRepository(session, bridge.keyring).warning_days_by_environment(EXPIRING)
