"""Webhooks: endpoints, the outbox of events, and their deliveries.

:meth:`WebhookRepository.add_event` is called in the transaction of the change it reports (the
transactional outbox): the event and one pending delivery per interested endpoint are committed
together with the change, or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authbridge.storage.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_id,
    utcnow,
)
from authbridge.vault import Keyring


class WebhookRepository:
    """Queries and changes of the webhook tables."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring

    def interested(self, environment_id: str, event_type: str) -> Sequence[WebhookEndpoint]:
        """The environment's enabled endpoints that receive ``event_type``."""
        statement = select(WebhookEndpoint).where(
            WebhookEndpoint.environment_id == environment_id,
            WebhookEndpoint.enabled.is_(True),
        )
        return [
            endpoint
            for endpoint in self.session.scalars(statement)
            if not endpoint.event_types or event_type in endpoint.event_types
        ]

    def add_event(
        self,
        environment_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        now: datetime | None = None,
    ) -> WebhookEvent:
        """Put an event in the outbox with a pending delivery for every interested endpoint."""
        now = now or utcnow()
        event = WebhookEvent(
            id=new_id(),
            environment_id=environment_id,
            type=event_type,
            payload=dict(payload),
            created_at=now,
        )
        self.session.add(event)
        for endpoint in self.interested(environment_id, event_type):
            self.session.add(
                WebhookDelivery(
                    id=new_id(),
                    environment_id=environment_id,
                    event_id=event.id,
                    endpoint_id=endpoint.id,
                    status=DeliveryStatus.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        self.session.flush()
        return event
