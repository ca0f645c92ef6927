"""Webhooks: managing endpoints (their URL, event types, payload format, signing secret) and
reading the outbox (events and deliveries, a page at a time).

Events are written to the outbox by :func:`authbridge.webhooks.events.emit` in the transaction
of the change they report; :mod:`authbridge.webhooks.delivery` sends them, and
:mod:`authbridge.webhooks.redelivery` queues them again. :func:`start_test` writes a test event
for one endpoint, claimed for the caller to send with :func:`authbridge.webhooks.delivery.run_job`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final, TypeVar
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.http import EgressPolicy
from authbridge.services.bridge import Bridge
from authbridge.storage.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from authbridge.storage.pagination import Page
from authbridge.vault import Keyring
from authbridge.webhooks.delivery import SEND_TIMEOUT, TRAY, Job, _jobs, claim_duration
from authbridge.webhooks.events import EVENT_TYPES, EXPIRED, EXPIRING
from authbridge.webhooks.repository import (
    STANDARD,
    WebhookRepository,
    _Unset,
)
from authbridge.webhooks.repository import UNSET as UNSET
from authbridge.webhooks.repository import IssuedEndpoint as IssuedEndpoint  # results

#: After a rotation, the previous secret keeps signing beside the new one this long.
ROTATION_GRACE: Final = timedelta(hours=24)
TEST_EVENT: Final = "webhook.test"
MAX_URL_LENGTH: Final = 2048
MAX_DESCRIPTION: Final = 255
PAYLOAD_FORMATS: Final = (STANDARD, TRAY)
#: The events a ``tray`` endpoint may receive (the first one when it names none).
TRAY_EVENT_TYPES: Final = (EXPIRING, EXPIRED)
MAX_WARNING_DAYS: Final = 365.0

T = TypeVar("T")


# -- endpoints -----------------------------------------------------------------------------------


def check_url(url: str, policy: EgressPolicy | None = None) -> str:
    """Return ``url`` (trimmed) when it is an absolute http(s) URL an endpoint may have.

    It may not hold credentials or a fragment. With ``policy``, an IP address the egress policy
    refuses is refused here already (host names are checked when each message is sent).
    """

    def invalid(reason: str) -> errors.InvalidInput:
        return errors.InvalidInput(f"url {reason}", field="url")

    url = url.strip()
    if not url:
        raise invalid("must not be empty")
    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise invalid("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise invalid("is not a valid URL") from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise invalid("must start with https:// or http://")
    if not parts.hostname:
        raise invalid("must name a host")
    if parts.username is not None or parts.password is not None:
        raise invalid("must not hold a user name or password")
    if parts.fragment or url.endswith("#"):
        raise invalid("must not have a fragment (#...)")
    if port == 0:
        raise invalid("has an invalid port")
    if policy is not None:
        # Any spelling of an address (127.1, 0x7f000001, 2130706433) and localhost are judged
        # as the policy judges them when sending; other names are resolved when each is sent.
        reason = policy.host_denial_reason(parts.hostname)
        if reason is not None:
            raise invalid(f"points at {reason}, which the egress policy does not allow")
    return url


def check_event_types(event_types: Iterable[str], payload_format: str = STANDARD) -> list[str]:
    """The event types (deduplicated, in the order of :data:`EVENT_TYPES`); empty means all.

    A ``tray`` endpoint receives only :data:`TRAY_EVENT_TYPES` (its body cannot say which
    event it is): none named means ``authentication.expiring``.
    """
    given = set(event_types)
    unknown = sorted(given.difference(EVENT_TYPES))
    if unknown:
        raise errors.InvalidInput(
            f"unknown event type {', '.join(repr(name) for name in unknown)}; known: "
            + ", ".join(EVENT_TYPES),
            field="event_types",
        )
    if payload_format == TRAY:
        other = [name for name in EVENT_TYPES if name in given and name not in TRAY_EVENT_TYPES]
        if other:
            raise errors.InvalidInput(
                f"payload_format 'tray' carries only {' and '.join(TRAY_EVENT_TYPES)} (the "
                f"Tray expired-auth notification), not {', '.join(other)}",
                field="event_types",
            )
        given = given or {TRAY_EVENT_TYPES[0]}
    return [name for name in EVENT_TYPES if name in given]


def check_payload_format(payload_format: str) -> str:
    if payload_format not in PAYLOAD_FORMATS:
        raise errors.InvalidInput(
            f"payload_format must be one of {', '.join(PAYLOAD_FORMATS)}, not {payload_format!r}",
            field="payload_format",
        )
    return payload_format


def check_warning_days(days: float | None) -> float | None:
    """``None`` (the connector's window, else the worker's) or more than 0 and at most 365."""
    if days is None:
        return None
    if not 0 < days <= MAX_WARNING_DAYS or math.isnan(days):
        raise errors.InvalidInput(
            f"expiry_warning_days must be more than 0 and at most {MAX_WARNING_DAYS:g}",
            field="expiry_warning_days",
        )
    return float(days)


def check_description(description: str | None) -> str | None:
    if description is None:
        return None
    cleaned = description.strip()
    if len(cleaned) > MAX_DESCRIPTION:
        raise errors.InvalidInput(
            f"description is longer than {MAX_DESCRIPTION} characters", field="description"
        )
    if any(ord(char) < 32 or 0x7F <= ord(char) <= 0x9F for char in cleaned):
        raise errors.InvalidInput(
            "description must not contain control characters", field="description"
        )
    return cleaned or None


def create_endpoint(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    *,
    url: str,
    event_types: Iterable[str] = (),
    description: str | None = None,
    payload_format: str = STANDARD,
    expiry_warning_days: float | None = None,
    now: datetime,
    policy: EgressPolicy | None = None,
) -> IssuedEndpoint:
    """Add an endpoint with a new signing secret, which only the result holds in clear."""
    payload_format = check_payload_format(payload_format)
    return WebhookRepository(session, keyring).create_endpoint(
        environment_id,
        check_url(url, policy),
        event_types=check_event_types(event_types, payload_format),
        description=check_description(description),
        payload_format=payload_format,
        expiry_warning_days=check_warning_days(expiry_warning_days),
        now=now,
    )


def get_endpoint(
    keyring: Keyring, session: Session, environment_id: str, endpoint_id: str
) -> WebhookEndpoint:
    endpoint = WebhookRepository(session, keyring).get_endpoint(environment_id, endpoint_id)
    if endpoint is None:
        raise errors.NotFound(f"webhook endpoint '{endpoint_id}' not found")
    return endpoint


def update_endpoint(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    payload_format: str | None = None,
    expiry_warning_days: float | _Unset | None = UNSET,
    now: datetime,
    policy: EgressPolicy | None = None,
) -> WebhookEndpoint:
    """Change the given fields; ``description=""`` clears it, ``event_types=[]`` means all,
    ``expiry_warning_days=None`` goes back to the connector's (or the worker's) window.

    Disabling an endpoint ends its pending deliveries as failed when they come due, and the
    events written while it is disabled get a failed delivery to it: they are listed, and
    :mod:`authbridge.webhooks.redelivery` sends them once it is enabled again (nothing is
    resent by itself)."""
    endpoint = get_endpoint(keyring, session, environment_id, endpoint_id)
    final_format = check_payload_format(payload_format or endpoint.payload_format)
    changes_types = event_types is not None or payload_format is not None
    types = endpoint.event_types if event_types is None else event_types
    return WebhookRepository(session, keyring).update_endpoint(
        endpoint,
        url=UNSET if url is None else check_url(url, policy),
        event_types=check_event_types(types, final_format) if changes_types else UNSET,
        enabled=UNSET if enabled is None else enabled,
        description=UNSET if description is None else check_description(description),
        payload_format=UNSET if payload_format is None else final_format,
        expiry_warning_days=(
            expiry_warning_days
            if isinstance(expiry_warning_days, _Unset)
            else check_warning_days(expiry_warning_days)
        ),
        now=now,
    )


def delete_endpoint(
    keyring: Keyring, session: Session, environment_id: str, endpoint_id: str
) -> None:
    """Delete the endpoint and its deliveries (the events stay in the outbox)."""
    if not WebhookRepository(session, keyring).delete_endpoint(environment_id, endpoint_id):
        raise errors.NotFound(f"webhook endpoint '{endpoint_id}' not found")


def rotate_secret(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    endpoint_id: str,
    *,
    now: datetime,
    grace: timedelta = ROTATION_GRACE,
) -> IssuedEndpoint:
    """Give the endpoint a new secret; messages are signed with both for ``grace``."""
    endpoint = get_endpoint(keyring, session, environment_id, endpoint_id)
    return WebhookRepository(session, keyring).rotate_secret(
        endpoint, keep_previous_until=now + grace if grace > timedelta(0) else None, now=now
    )


def endpoints_page(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    *,
    limit: int,
    cursor: str | None = None,
) -> Page[WebhookEndpoint]:
    """One page of the environment's endpoints, oldest first."""
    return WebhookRepository(session, keyring).list_endpoints(
        environment_id, limit=limit, cursor=cursor
    )


def deliveries_page(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
    status: DeliveryStatus | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[WebhookDelivery]:
    """One page of deliveries (each event to each endpoint), oldest first."""
    return WebhookRepository(session, keyring).list_deliveries(
        environment_id,
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        status=status,
        limit=limit,
        cursor=cursor,
    )


def get_delivery(
    keyring: Keyring, session: Session, environment_id: str, delivery_id: str
) -> WebhookDelivery | None:
    """The environment's delivery with this id, read afresh."""
    return WebhookRepository(session, keyring).get_delivery(environment_id, delivery_id)


def event_types_of(
    keyring: Keyring, session: Session, deliveries: Iterable[WebhookDelivery]
) -> dict[str, str]:
    """The event type of each delivery's event, by event id (one query)."""
    repository = WebhookRepository(session, keyring)
    return repository.event_types_of(delivery.event_id for delivery in deliveries)


def events_page(
    keyring: Keyring,
    session: Session,
    environment_id: str,
    *,
    event_type: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[WebhookEvent]:
    """One page of the outbox (every event recorded), oldest first."""
    return WebhookRepository(session, keyring).list_events(
        environment_id, event_type=event_type, limit=limit, cursor=cursor
    )


# -- test events ---------------------------------------------------------------------------------


def start_test(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    endpoint_id: str,
    *,
    send_timeout: float = SEND_TIMEOUT,
) -> Job:
    """Write a ``webhook.test`` event for this endpoint alone, its delivery already claimed by
    the caller, who sends it with :func:`run_job` (the worker retries it if that fails)."""
    endpoint = get_endpoint(bridge.keyring, session, environment_id, endpoint_id)
    if not endpoint.enabled:
        raise errors.Conflict(f"webhook endpoint '{endpoint_id}' is disabled; enable it first")
    now = bridge.now()
    repo = WebhookRepository(session, bridge.keyring)
    _, delivery = repo.add_direct_event(
        endpoint,
        TEST_EVENT,
        {"endpoint_id": endpoint.id, "message": "A test event sent by authbridge."},
        now=now,
        next_attempt_at=now + claim_duration(1, 1, send_timeout),
    )
    return _jobs(repo, [delivery], now)[0]
