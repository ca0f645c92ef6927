"""Webhooks: endpoints, the outbox of events, and their deliveries.

:meth:`WebhookRepository.add_event` is called in the transaction of the change it reports (the
transactional outbox): the event and one pending delivery per interested endpoint are committed
together with the change, or not at all.

An endpoint's signing secret (Standard Webhooks, ``whsec_`` + base64) is returned once, when it
is created or rotated, and otherwise kept encrypted in ``secret_ct`` as the JSON document
``{"current": ..., "previous": ..., "previous_until": ...}``: after a rotation the previous
secret keeps signing beside the new one until ``previous_until``, so receivers can switch over.

An endpoint that is disabled when an event is written gets a delivery that has failed at once
("the endpoint is disabled"), so what it missed is listed and can be redelivered
(:meth:`WebhookRepository.redeliver`: a new pending delivery of the same event, with a retry
window of its own). :meth:`WebhookRepository.add_event` may hold an endpoint's delivery back
until a later time (an expiry warning waits for that endpoint's window).

Deliveries are claimed by :meth:`WebhookRepository.due_deliveries` (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite serialises writers) which pushes ``next_attempt_at`` forward to a claim
time, so no other worker takes them while they are being sent; :meth:`record_attempt` stores
the outcome only while that claim still holds (a compare-and-swap on ``next_attempt_at``).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final

from sqlalchemy import Select, delete, exists, func, select, update
from sqlalchemy.orm import Session

from authbridge.storage.crypto import seal_json, unseal_json
from authbridge.storage.models import (
    Authentication,
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
#: A delivery is retried until this long after it was first due.
RETRY_WINDOW: Final = timedelta(hours=24)
#: Why a delivery to a disabled endpoint is not sent.
DISABLED: Final = "the endpoint is disabled"
STANDARD: Final = "standard"


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
        payload_format: str = STANDARD,
        expiry_warning_days: float | None = None,
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
            payload_format=payload_format,
            expiry_warning_days=expiry_warning_days,
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
        payload_format: str | _Unset = UNSET,
        expiry_warning_days: float | _Unset | None = UNSET,
        now: datetime | None = None,
    ) -> WebhookEndpoint:
        """Change the given fields (those left :data:`UNSET` keep their value)."""
        if not isinstance(payload_format, _Unset):
            endpoint.payload_format = payload_format
        if not isinstance(expiry_warning_days, _Unset):
            endpoint.expiry_warning_days = expiry_warning_days
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
        """The environment's endpoints that receive ``event_type``, enabled or not."""
        statement = select(WebhookEndpoint).where(WebhookEndpoint.environment_id == environment_id)
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
        deliver_at: Callable[[WebhookEndpoint], datetime] | None = None,
    ) -> WebhookEvent:
        """Put an event in the outbox with a delivery for every interested endpoint: pending
        from ``deliver_at(endpoint)`` (default ``now``) for an enabled one, failed at once for
        a disabled one (so it is listed, and can be redelivered).
        """
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
            due = now if deliver_at is None else max(now, deliver_at(endpoint))
            delivery = WebhookDelivery(
                id=new_id(),
                environment_id=environment_id,
                event_id=event.id,
                endpoint_id=endpoint.id,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=due,
                retry_until=due + RETRY_WINDOW,
                created_at=now,
            )
            if not endpoint.enabled:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = delivery.retry_until = None
                delivery.last_error = DISABLED
            self.session.add(delivery)
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
            retry_until=now + RETRY_WINDOW,
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

    # -- redelivery --------------------------------------------------------------------------

    def get_event(self, environment_id: str, event_id: str) -> WebhookEvent | None:
        statement = select(WebhookEvent).where(
            WebhookEvent.environment_id == environment_id, WebhookEvent.id == event_id
        )
        return self.session.scalars(statement).first()

    def was_delivered_to(self, endpoint_id: str, event_id: str) -> bool:
        """Whether the event ever had a delivery to this endpoint (sent, failed or pending)."""
        statement = select(
            exists().where(
                WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.event_id == event_id
            )
        )
        return bool(self.session.scalar(statement))

    def _endpoints_events(
        self,
        endpoint: WebhookEndpoint,
        *,
        since: datetime,
        until: datetime,
        failed_only: bool,
    ) -> Select[WebhookEvent]:
        """The events created in ``[since, until)`` that had a delivery to ``endpoint``; with
        ``failed_only``, those whose every delivery to it failed (none succeeded or waits)."""

        def delivered(*conditions: Any) -> Any:
            return exists().where(
                WebhookDelivery.event_id == WebhookEvent.id,
                WebhookDelivery.endpoint_id == endpoint.id,
                *conditions,
            )

        statement = select(WebhookEvent).where(
            WebhookEvent.environment_id == endpoint.environment_id,
            WebhookEvent.created_at >= since,
            WebhookEvent.created_at < until,
            delivered(),
        )
        if failed_only:
            statement = statement.where(~delivered(WebhookDelivery.status != DeliveryStatus.FAILED))
        return statement

    def count_endpoints_events(
        self, endpoint: WebhookEndpoint, *, since: datetime, until: datetime, failed_only: bool
    ) -> int:
        """How many events :meth:`endpoints_events` pages through."""
        inner = self._endpoints_events(
            endpoint, since=since, until=until, failed_only=failed_only
        ).subquery()
        return int(self.session.scalar(select(func.count()).select_from(inner)) or 0)

    def endpoints_events(
        self,
        endpoint: WebhookEndpoint,
        *,
        since: datetime,
        until: datetime,
        failed_only: bool,
        limit: int,
        cursor: str | None = None,
    ) -> Page[WebhookEvent]:
        """One page, oldest first, of the events in ``[since, until)`` that had a delivery to
        ``endpoint`` (with ``failed_only``: only failed ones)."""
        statement = self._endpoints_events(
            endpoint, since=since, until=until, failed_only=failed_only
        )
        return fetch_page(
            self.session,
            statement,
            WebhookEvent.created_at,
            WebhookEvent.id,
            limit=limit,
            cursor=cursor,
        )

    def pending_deliveries_of(
        self, endpoint_id: str, event_ids: Iterable[str]
    ) -> dict[str, WebhookDelivery]:
        """The pending delivery to ``endpoint_id`` of each of these events that has one."""
        ids = set(event_ids)
        if not ids:
            return {}
        statement = select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.event_id.in_(ids),
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        return {delivery.event_id: delivery for delivery in self.session.scalars(statement)}

    def redeliver(
        self, endpoint: WebhookEndpoint, event_ids: Iterable[str], *, now: datetime
    ) -> list[WebhookDelivery]:
        """A new pending delivery of each event to ``endpoint``, due at ``now`` and retried
        for :data:`RETRY_WINDOW` from then (the earlier deliveries stay as they are)."""
        added = [
            WebhookDelivery(
                id=new_id(),
                environment_id=endpoint.environment_id,
                event_id=event_id,
                endpoint_id=endpoint.id,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                retry_until=now + RETRY_WINDOW,
                created_at=now,
            )
            for event_id in event_ids
        ]
        self.session.add_all(added)
        self.session.flush()
        return added

    # -- what deliveries depend on -----------------------------------------------------------

    def warning_days_by_environment(self, event_type: str) -> dict[str, float]:
        """The widest ``expiry_warning_days`` of each environment's enabled endpoints that set
        one and receive ``event_type``."""
        statement = select(
            WebhookEndpoint.environment_id,
            WebhookEndpoint.event_types,
            WebhookEndpoint.expiry_warning_days,
        ).where(WebhookEndpoint.enabled.is_(True), WebhookEndpoint.expiry_warning_days.is_not(None))
        widest: dict[str, float] = {}
        for environment_id, event_types, days in self.session.execute(statement):
            if days is None or (event_types and event_type not in event_types):
                continue
            widest[environment_id] = max(days, widest.get(environment_id, 0.0))
        return widest

    def hard_expiries(self, auth_ids: Iterable[str]) -> dict[str, datetime | None]:
        """The current ``hard_expires_at`` of each authentication that still exists."""
        ids = set(auth_ids)
        if not ids:
            return {}
        statement = select(Authentication.id, Authentication.hard_expires_at).where(
            Authentication.id.in_(ids)
        )
        return {row.id: row.hard_expires_at for row in self.session.execute(statement)}
