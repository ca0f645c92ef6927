"""Redelivery: queueing events for an endpoint again, one or a time range of them.

A redelivery is a new pending delivery of the same event to the same endpoint (the earlier
ones stay listed, the ``webhook-id`` stays the event's), due at once and retried for 24 hours
from then; :func:`authbridge.webhooks.delivery.deliver_due` sends it like any other, so the
caller (a request, a command) sends nothing itself. An endpoint must be enabled; an event
already waiting for a delivery to it is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.storage.models import WebhookDelivery, WebhookEndpoint
from authbridge.storage.pagination import MAX_PAGE_SIZE
from authbridge.vault import Keyring
from authbridge.webhooks.repository import WebhookRepository
from authbridge.webhooks.service import get_endpoint

#: Events queued in one call (one transaction) at most: a page of them.
MAX_REDELIVERY_BATCH: Final = MAX_PAGE_SIZE


@dataclass(frozen=True)
class Redelivery:
    """What one call queued: ``queued`` new deliveries, ``already_pending`` events that were
    waiting for a delivery already (left as they are); ``next_cursor`` continues the range."""

    queued: int
    already_pending: int
    next_cursor: str | None = None


def _enabled_endpoint(
    keyring: Keyring, session: Session, environment_id: str, endpoint_id: str
) -> WebhookEndpoint:
    endpoint = get_endpoint(keyring, session, environment_id, endpoint_id)
    if not endpoint.enabled:
        raise errors.Conflict(f"webhook endpoint '{endpoint_id}' is disabled; enable it first")
    return endpoint


def redeliver_event(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    endpoint_id: str,
    event_id: str,
    *,
    now: datetime,
) -> tuple[WebhookDelivery, bool]:
    """Queue the event for the endpoint again (a new pending delivery, retried for 24 hours
    from ``now``), or return its pending delivery if it has one; and whether it was queued now.
    The event must have been for this endpoint (delivered, failed or waiting) or be of a type
    the endpoint receives."""
    endpoint = _enabled_endpoint(keyring, session, environment_id, endpoint_id)
    repo = WebhookRepository(session, keyring)
    event = repo.get_event(environment_id, event_id)
    if event is None:
        raise errors.NotFound(f"webhook event '{event_id}' not found")
    receives = not endpoint.event_types or event.type in endpoint.event_types
    if not receives and not repo.was_delivered_to(endpoint.id, event.id):
        raise errors.Conflict(
            f"webhook endpoint '{endpoint_id}' does not receive {event.type} events"
        )
    pending = repo.pending_deliveries_of(endpoint.id, [event.id]).get(event.id)
    if pending is not None:
        return pending, False
    [delivery] = repo.redeliver(endpoint, [event.id], now=now)
    return delivery, True


def check_range(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise errors.InvalidInput(f"{name} must have a time zone (Z or +hh:mm)", field=name)
    if since >= until:
        raise errors.InvalidInput("since must be earlier than until", field="since")
    return since, until


def count_redeliverable(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    endpoint_id: str,
    *,
    since: datetime,
    until: datetime,
    failed_only: bool = False,
) -> int:
    """How many events :func:`redeliver_range` goes through (for a progress bar)."""
    since, until = check_range(since, until)
    endpoint = get_endpoint(keyring, session, environment_id, endpoint_id)
    return WebhookRepository(session, keyring).count_endpoints_events(
        endpoint, since=since, until=until, failed_only=failed_only
    )


def redeliver_range(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    endpoint_id: str,
    *,
    since: datetime,
    until: datetime,
    failed_only: bool = False,
    now: datetime,
    limit: int = MAX_REDELIVERY_BATCH,
    cursor: str | None = None,
) -> Redelivery:
    """Queue again, oldest first, up to ``limit`` of the events created in ``[since, until)``
    that were for this endpoint (with ``failed_only``: those it never received, every delivery
    having failed). An event already waiting for a delivery is left as it is. Call again with
    ``next_cursor`` until it is ``None``; each call is one short transaction of the caller's.
    """
    since, until = check_range(since, until)
    endpoint = _enabled_endpoint(keyring, session, environment_id, endpoint_id)
    repo = WebhookRepository(session, keyring)
    page = repo.endpoints_events(
        endpoint,
        since=since,
        until=until,
        failed_only=failed_only,
        limit=max(1, min(limit, MAX_REDELIVERY_BATCH)),
        cursor=cursor,
    )
    ids = [event.id for event in page.items]
    pending = repo.pending_deliveries_of(endpoint.id, ids)
    added = repo.redeliver(
        endpoint, [event_id for event_id in ids if event_id not in pending], now=now
    )
    return Redelivery(queued=len(added), already_pending=len(pending), next_cursor=page.next_cursor)
