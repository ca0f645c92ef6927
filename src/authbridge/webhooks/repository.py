"""Webhooks: endpoints, the outbox of events, and their deliveries.

:meth:`WebhookRepository.add_event` is called in the transaction of the change it reports (the
transactional outbox): the event and one pending delivery per interested endpoint are committed
together with the change, or not at all.

An endpoint's signing secret (Standard Webhooks, ``whsec_`` + base64) is returned once, when it
is created or rotated, and otherwise kept encrypted in ``secret_ct`` as the JSON document
``{"current": ..., "previous": ..., "previous_until": ...}``: after a rotation the previous
secret keeps signing beside the new one until ``previous_until``, so receivers can switch over.

Deliveries are claimed by :meth:`WebhookRepository.due_deliveries` (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite serialises writers) which pushes ``next_attempt_at`` forward to a claim
time, so no other worker takes them while they are being sent; :meth:`record_attempt` stores
the outcome only while that claim still holds (a compare-and-swap on ``next_attempt_at``).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from authbridge.storage.crypto import seal_json, unseal_json
from authbridge.storage.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_id,
    utcnow,
)
from authbridge.storage.pagination import DEFAULT_PAGE_SIZE, Page, fetch_page
from authbridge.storage.repositories._dml import affected_rows
from authbridge.vault import Keyring

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
_SECRET = "secret_ct"


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET
"""Passed for a field that an update leaves as it is."""


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


@dataclass(frozen=True)
class IssuedEndpoint:
    """A new endpoint (or one whose secret was rotated); ``secret`` is its only plaintext copy."""

    record: WebhookEndpoint
    secret: str = field(repr=False)


class WebhookRepository:
    """Queries and changes of the webhook tables."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring

    # -- endpoints ---------------------------------------------------------------------------

    def create_endpoint(
        self,
        environment_id: str,
        url: str,
        *,
        event_types: Sequence[str] = (),
        description: str | None = None,
        now: datetime | None = None,
    ) -> IssuedEndpoint:
        """Store an endpoint with a new signing secret (sealed; returned this once)."""
        now = now or utcnow()
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=new_id(),
            environment_id=environment_id,
            url=url,
            description=description,
            event_types=list(event_types),
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        endpoint.secret_ct = seal_json(self.keyring, endpoint, _SECRET, {"current": secret})
        self.session.add(endpoint)
        self.session.flush()
        return IssuedEndpoint(record=endpoint, secret=secret)

    def get_endpoint(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        statement = select(WebhookEndpoint).where(
            WebhookEndpoint.environment_id == environment_id, WebhookEndpoint.id == endpoint_id
        )
        return self.session.scalars(statement).first()

    def list_endpoints(
        self, environment_id: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[WebhookEndpoint]:
        """One page of the environment's endpoints, oldest first."""
        statement = select(WebhookEndpoint).where(WebhookEndpoint.environment_id == environment_id)
        return fetch_page(
            self.session,
            statement,
            WebhookEndpoint.created_at,
            WebhookEndpoint.id,
            limit=limit,
            cursor=cursor,
        )

    def update_endpoint(
        self,
        endpoint: WebhookEndpoint,
        *,
        url: str | _Unset = UNSET,
        event_types: Sequence[str] | _Unset = UNSET,
        enabled: bool | _Unset = UNSET,
        description: str | _Unset | None = UNSET,
        now: datetime | None = None,
    ) -> WebhookEndpoint:
        """Change the given fields (those left :data:`UNSET` keep their value)."""
        if not isinstance(url, _Unset):
            endpoint.url = url
        if not isinstance(event_types, _Unset):
            endpoint.event_types = list(event_types)
        if not isinstance(enabled, _Unset):
            endpoint.enabled = enabled
        if not isinstance(description, _Unset):
            endpoint.description = description
        endpoint.updated_at = now or utcnow()
        self.session.flush()
        return endpoint

    def delete_endpoint(self, environment_id: str, endpoint_id: str) -> bool:
        """Delete the endpoint and its deliveries; return whether it existed."""
        statement = delete(WebhookEndpoint).where(
            WebhookEndpoint.environment_id == environment_id, WebhookEndpoint.id == endpoint_id
        )
        return affected_rows(self.session, statement) == 1

    def rotate_secret(
        self, endpoint: WebhookEndpoint, *, keep_previous_until: datetime | None, now: datetime
    ) -> IssuedEndpoint:
        """Give the endpoint a new secret; the current one keeps signing until the given time."""
        document: dict[str, Any] = {"current": new_secret()}
        if keep_previous_until is not None and keep_previous_until > now:
            document |= {
                "previous": self._secret_document(endpoint)["current"],
                "previous_until": keep_previous_until.isoformat(),
            }
        endpoint.secret_ct = seal_json(self.keyring, endpoint, _SECRET, document)
        endpoint.updated_at = now
        self.session.flush()
        return IssuedEndpoint(record=endpoint, secret=document["current"])

    def signing_secrets(self, endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
        """The secrets that sign a message sent at ``now``: the current one, then any previous
        one still within its grace period."""
        document = self._secret_document(endpoint)
        found = [str(document["current"])]
        previous, until = document.get("previous"), document.get("previous_until")
        if previous and until and datetime.fromisoformat(until) > now:
            found.append(str(previous))
        return found

    def _secret_document(self, endpoint: WebhookEndpoint) -> dict[str, Any]:
        value: dict[str, Any] = unseal_json(self.keyring, endpoint, _SECRET)
        return value

    def endpoints_by_id(self, endpoint_ids: Iterable[str]) -> dict[str, WebhookEndpoint]:
        ids = set(endpoint_ids)
        if not ids:
            return {}
        statement = select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids))
        return {endpoint.id: endpoint for endpoint in self.session.scalars(statement)}

    # -- the outbox --------------------------------------------------------------------------

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

    def add_direct_event(
        self,
        endpoint: WebhookEndpoint,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        now: datetime,
        next_attempt_at: datetime,
    ) -> tuple[WebhookEvent, WebhookDelivery]:
        """An event for ``endpoint`` alone, whatever its filter (a test event), and its delivery.

        ``next_attempt_at`` later than ``now`` claims the delivery for the caller right away.
        """
        event = WebhookEvent(
            id=new_id(),
            environment_id=endpoint.environment_id,
            type=event_type,
            payload=dict(payload),
            created_at=now,
        )
        delivery = WebhookDelivery(
            id=new_id(),
            environment_id=endpoint.environment_id,
            event_id=event.id,
            endpoint_id=endpoint.id,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=next_attempt_at,
            created_at=now,
        )
        self.session.add(event)
        self.session.flush()
        self.session.add(delivery)
        self.session.flush()
        return event, delivery

    def events_by_id(self, event_ids: Iterable[str]) -> dict[str, WebhookEvent]:
        ids = set(event_ids)
        if not ids:
            return {}
        statement = select(WebhookEvent).where(WebhookEvent.id.in_(ids))
        return {event.id: event for event in self.session.scalars(statement)}

    def list_events(
        self,
        environment_id: str,
        *,
        event_type: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[WebhookEvent]:
        """One page of the environment's events, oldest first."""
        statement = select(WebhookEvent).where(WebhookEvent.environment_id == environment_id)
        if event_type is not None:
            statement = statement.where(WebhookEvent.type == event_type)
        return fetch_page(
            self.session,
            statement,
            WebhookEvent.created_at,
            WebhookEvent.id,
            limit=limit,
            cursor=cursor,
        )

    def prune_events(self, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events created before ``before`` that no delivery still waits
        on, oldest first; their deliveries go with them. Returns how many were deleted."""
        waiting = exists().where(
            WebhookDelivery.event_id == WebhookEvent.id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        old = (
            select(WebhookEvent.id)
            .where(WebhookEvent.created_at < before, ~waiting)
            .order_by(WebhookEvent.created_at)
            .limit(limit)
        )
        ids = list(self.session.scalars(old))
        if ids:
            self.session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        return len(ids)

    # -- deliveries --------------------------------------------------------------------------

    def due_deliveries(
        self,
        now: datetime,
        limit: int,
        *,
        claim_until: datetime,
    ) -> Sequence[WebhookDelivery]:
        """Claim up to ``limit`` pending deliveries due at ``now``, the most overdue first.

        The rows are locked (skipping rows another worker holds, on PostgreSQL) and their
        ``next_attempt_at`` set to ``claim_until``, so once this transaction commits no other
        worker takes them before that time; :meth:`record_attempt` then needs that same value.
        """
        statement = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        deliveries = list(self.session.scalars(statement))
        for delivery in deliveries:
            delivery.next_attempt_at = claim_until
        self.session.flush()
        return deliveries

    def record_attempt(
        self,
        delivery_id: str,
        *,
        claimed_until: datetime,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
        status_code: int | None,
        error: str | None,
        now: datetime,
        count_attempt: bool = True,
    ) -> bool:
        """Store the outcome of an attempt, if the claim taken with ``claimed_until`` holds.

        Returns ``False`` (and changes nothing) when the delivery is gone (its endpoint was
        deleted) or was claimed again by someone else after the claim expired.
        """
        values: dict[str, Any] = {
            "status": status,
            "next_attempt_at": next_attempt_at,
            "last_status_code": status_code,
            "last_error": error,
        }
        if count_attempt:
            values |= {"attempts": WebhookDelivery.attempts + 1, "last_attempt_at": now}
        statement = (
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at == claimed_until,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return affected_rows(self.session, statement) == 1

    def get_delivery(self, environment_id: str, delivery_id: str) -> WebhookDelivery | None:
        statement = select(WebhookDelivery).where(
            WebhookDelivery.environment_id == environment_id, WebhookDelivery.id == delivery_id
        )
        return self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()

    def list_deliveries(
        self,
        environment_id: str,
        *,
        endpoint_id: str | None = None,
        event_type: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[WebhookDelivery]:
        """One page of the environment's deliveries, oldest first."""
        statement = select(WebhookDelivery).where(WebhookDelivery.environment_id == environment_id)
        if endpoint_id is not None:
            statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
        if event_id is not None:
            statement = statement.where(WebhookDelivery.event_id == event_id)
        if status is not None:
            statement = statement.where(WebhookDelivery.status == status)
        if event_type is not None:
            statement = statement.where(
                WebhookDelivery.event_id.in_(
                    select(WebhookEvent.id).where(
                        WebhookEvent.environment_id == environment_id,
                        WebhookEvent.type == event_type,
                    )
                )
            )
        return fetch_page(
            self.session,
            statement,
            WebhookDelivery.created_at,
            WebhookDelivery.id,
            limit=limit,
            cursor=cursor,
        )

    def event_types_of(self, event_ids: Iterable[str]) -> dict[str, str]:
        """The type of each event, by id (to show with its deliveries)."""
        ids = set(event_ids)
        if not ids:
            return {}
        statement = select(WebhookEvent.id, WebhookEvent.type).where(WebhookEvent.id.in_(ids))
        return {row.id: row.type for row in self.session.execute(statement)}
