"""Webhooks: managing endpoints, and delivering the outbox with Standard Webhooks signatures.

Events are written to the outbox by :func:`authbridge.webhooks.events.emit` in the transaction
of the change they report. :func:`deliver_due` sends what is due; the worker runs it in a loop
of its own, so a slow or failing endpoint never delays a refresh. One call:

1. claims due deliveries in a short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and
   pushes their ``next_attempt_at`` past the time it needs to send them, so another worker does
   not take them meanwhile; the transaction commits before anything is sent;
2. sends them concurrently (at most ``concurrency`` at a time) through the outbound client, so
   the egress policy applies; redirects are not followed, and each send has a hard timeout;
3. records each outcome in its own short transaction: a 2xx answer succeeds; anything else is
   retried with exponential backoff and full jitter (5 s doubling, at most 1 h) until 24 hours
   after the delivery was first due, and then the delivery has failed.

A message is ``{"type", "timestamp", "data"}`` (an endpoint whose ``payload_format`` is
``tray`` gets Tray Embedded's flat expired-auth body instead) with the headers ``webhook-id``
(the event's id, the same for every attempt and redelivery so receivers can deduplicate),
``webhook-timestamp`` and ``webhook-signature``, signed by the ``standardwebhooks`` library.
Secrets are never logged or stored in clear; an attempt's error is a short description that
never holds the response body.

A failed delivery is not the end: :mod:`authbridge.webhooks.redelivery` queues an event (or
every event of an endpoint in a time range, optionally only the failed ones) again, as new
pending deliveries that :func:`deliver_due` sends like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from authbridge import errors
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.redaction import redact
from authbridge.services import metrics
from authbridge.services.bridge import Bridge
from authbridge.storage.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from authbridge.storage.pagination import Page
from authbridge.vault import Keyring
from authbridge.webhooks.events import EVENT_TYPES, EXPIRED, EXPIRING
from authbridge.webhooks.repository import (
    DISABLED,
    STANDARD,
    WebhookRepository,
    _Unset,
)
from authbridge.webhooks.repository import RETRY_WINDOW as RETRY_WINDOW
from authbridge.webhooks.repository import UNSET as UNSET
from authbridge.webhooks.repository import IssuedEndpoint as IssuedEndpoint  # results

log = logging.getLogger("authbridge.webhooks")

#: A hard limit on one send (connecting, sending and reading the answer together).
SEND_TIMEOUT: Final = 10.0
DEFAULT_CONCURRENCY: Final = 10
BASE_BACKOFF: Final = timedelta(seconds=5)
MAX_BACKOFF: Final = timedelta(hours=1)
MIN_BACKOFF: Final = timedelta(seconds=1)
#: Extra time a claim lasts beyond the sends it covers.
CLAIM_MARGIN: Final = timedelta(seconds=30)
#: After a rotation, the previous secret keeps signing beside the new one this long.
ROTATION_GRACE: Final = timedelta(hours=24)
TEST_EVENT: Final = "webhook.test"
MAX_URL_LENGTH: Final = 2048
MAX_DESCRIPTION: Final = 255
MAX_ERROR_LENGTH: Final = 200
TRAY: Final = "tray"
PAYLOAD_FORMATS: Final = (STANDARD, TRAY)
#: The body Tray Embedded's expired-auth receivers expect, key for key.
TRAY_FIELDS: Final = (
    "authentication_name",
    "service_name",
    "user_id",
    "authId",
    "external_user_id",
)
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


# -- messages ------------------------------------------------------------------------------------


def message_body(
    event_type: str, created_at: datetime, payload: Any, payload_format: str = STANDARD
) -> str:
    """The JSON text sent (and signed): ``{"type", "timestamp", "data"}``; for ``tray``, an
    authentication's event is the flat ``{authentication_name, service_name, user_id, authId,
    external_user_id}`` alone, and any other event (a test) its data."""
    if payload_format == TRAY:
        about_an_auth = isinstance(payload, dict) and "authId" in payload
        document = {key: payload.get(key) for key in TRAY_FIELDS} if about_an_auth else payload
    else:
        timestamp = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        document = {"type": event_type, "timestamp": timestamp, "data": payload}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def signed_headers(
    secrets: Sequence[str], msg_id: str, sent_at: datetime, body: str
) -> dict[str, str]:
    """The Standard Webhooks headers, one ``v1,`` signature per secret (several after a
    rotation, space-separated)."""
    sent_at = sent_at.astimezone(UTC).replace(microsecond=0)
    signatures = [Webhook(secret).sign(msg_id, sent_at, body) for secret in secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(sent_at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


def retry_delay(
    attempts: int, *, rng: Callable[[float, float], float] = random.uniform
) -> timedelta:
    """How long to wait after ``attempts`` failed attempts: full jitter under a ceiling that
    doubles from :data:`BASE_BACKOFF` up to :data:`MAX_BACKOFF` (at least :data:`MIN_BACKOFF`)."""
    ceiling = min(MAX_BACKOFF, BASE_BACKOFF * (2 ** min(max(attempts - 1, 0), 20)))
    delay = timedelta(seconds=rng(0, ceiling.total_seconds()))
    return max(delay, MIN_BACKOFF)


def next_attempt_at(attempts: int, deadline: datetime, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or ``None`` to give up.

    The last retry is at ``deadline``, the end of the delivery's retry window; after it, none.
    """
    if now >= deadline:
        return None
    return min(now + retry_delay(attempts), deadline)


# -- delivering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One claimed delivery, with all it needs to be sent without the database."""

    delivery_id: str
    claimed_until: datetime
    attempts: int
    event_id: str
    event_type: str
    event_created_at: datetime
    endpoint_id: str
    enabled: bool
    payload: dict[str, Any] = field(repr=False)
    url: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    #: Why it cannot be signed now (its secret cannot be decrypted): retried without sending.
    unsendable: str | None = None
    payload_format: str = STANDARD
    #: The end of its retry window (``None``: a row from before, 24 hours after the event).
    retry_until: datetime | None = None
    #: Why it is no longer worth sending (a warning of an expiry that changed): not sent.
    obsolete: str | None = None

    @property
    def deadline(self) -> datetime:
        """When the last retry is due."""
        return self.retry_until or self.event_created_at + RETRY_WINDOW


@dataclass(frozen=True)
class Attempt:
    """How one send went: the status code answered (if any) and, on failure, why."""

    status_code: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def claim_duration(count: int, concurrency: int, timeout: float) -> timedelta:
    """How long a claim of ``count`` deliveries must last to send them all, with a margin."""
    waves = max(1, math.ceil(count / max(1, concurrency)))
    return timedelta(seconds=waves * timeout) + CLAIM_MARGIN


def claim(
    bridge: Bridge, session: Session, *, now: datetime, limit: int, claim_until: datetime
) -> list[Job]:
    """Claim the deliveries due at ``now`` (until ``claim_until``) and load what sending needs."""
    repo = WebhookRepository(session, bridge.keyring)
    deliveries = repo.due_deliveries(now, limit, claim_until=claim_until)
    return _jobs(repo, deliveries, now)


def _jobs(
    repo: WebhookRepository, deliveries: Sequence[WebhookDelivery], now: datetime
) -> list[Job]:
    events = repo.events_by_id(delivery.event_id for delivery in deliveries)
    endpoints = repo.endpoints_by_id(delivery.endpoint_id for delivery in deliveries)
    warned = [event for event in events.values() if event.type == EXPIRING]
    expiries = repo.hard_expiries(str(event.payload.get("authId")) for event in warned)
    jobs = []
    for delivery in deliveries:
        event, endpoint = events[delivery.event_id], endpoints[delivery.endpoint_id]
        assert delivery.next_attempt_at is not None
        secrets: tuple[str, ...] = ()
        unsendable = None
        if endpoint.enabled:
            try:
                secrets = tuple(repo.signing_secrets(endpoint, now=now))
            except errors.VaultError as exc:  # one endpoint's secret must not stop the others
                unsendable = f"the signing secret cannot be decrypted: {exc.message}"
        jobs.append(
            Job(
                delivery_id=delivery.id,
                claimed_until=delivery.next_attempt_at,
                attempts=delivery.attempts,
                event_id=event.id,
                event_type=event.type,
                event_created_at=event.created_at,
                endpoint_id=endpoint.id,
                enabled=endpoint.enabled,
                payload=dict(event.payload),
                url=endpoint.url,
                secrets=secrets,
                unsendable=_short(unsendable, ()) if unsendable else None,
                payload_format=endpoint.payload_format,
                retry_until=delivery.retry_until,
                obsolete=_obsolete(event, expiries, now),
            )
        )
    return jobs


def _obsolete(
    event: WebhookEvent, expiries: dict[str, datetime | None], now: datetime
) -> str | None:
    """Why a warning of a hard expiry is no longer true (it may have waited for its endpoint's
    window, or been redelivered): the authentication is gone, reconnected or expired."""
    if event.type != EXPIRING:
        return None
    warned_for = event.payload.get("hard_expires_at")
    auth_id = str(event.payload.get("authId"))
    if auth_id not in expiries:
        return "not sent: the authentication no longer exists"
    current = expiries[auth_id]
    try:
        same = current is not None and current == datetime.fromisoformat(str(warned_for))
    except ValueError:
        same = False
    if not same or current is None:
        return "not sent: the authentication's hard expiry changed since the warning"
    if current <= now:
        return "not sent: the authentication has expired (authentication.expired is sent)"
    return None


def _short(message: str, secrets: Iterable[str]) -> str:
    text = redact(message, secrets)
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


async def send(http: OutboundClient, job: Job, *, now: datetime, send_timeout: float) -> Attempt:
    """POST one signed message; never raises for what the endpoint or the network does."""
    body = message_body(job.event_type, job.event_created_at, job.payload, job.payload_format)
    headers = signed_headers(job.secrets, job.event_id, now, body)
    too_slow = f"the endpoint did not answer within {send_timeout:g} s"
    try:
        async with asyncio.timeout(send_timeout):
            response = await http.request(
                "POST",
                job.url,
                content=body.encode("utf-8"),
                headers=headers,
                timeout=send_timeout,
                follow_redirects=False,
            )
    except TimeoutError:
        return Attempt(None, too_slow)
    except errors.ProviderUnavailable as exc:
        if isinstance(exc.__cause__, httpx.TimeoutException):
            return Attempt(None, too_slow)
        return Attempt(None, "could not connect to the endpoint")
    except errors.AuthBridgeError as exc:  # egress denied, an insecure redirect, a bad answer
        return Attempt(None, _short(exc.message, job.secrets))
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        return Attempt(None, f"could not send the message ({type(exc).__name__})")
    if response.is_success:
        return Attempt(response.status_code, None)
    note = " (redirects are not followed)" if response.is_redirect else ""
    return Attempt(response.status_code, f"the endpoint answered HTTP {response.status_code}{note}")


def record(bridge: Bridge, session: Session, job: Job, attempt: Attempt, *, now: datetime) -> str:
    """Store the outcome of ``attempt``; return ``succeeded``, ``retrying`` or ``failed``."""
    retry_at = None
    if attempt.succeeded:
        outcome, status = "succeeded", DeliveryStatus.SUCCEEDED
    else:
        retry_at = next_attempt_at(job.attempts + 1, job.deadline, now)
        if retry_at is None:
            outcome, status = "failed", DeliveryStatus.FAILED
        else:
            outcome, status = "retrying", DeliveryStatus.PENDING
    stored = WebhookRepository(session, bridge.keyring).record_attempt(
        job.delivery_id,
        claimed_until=job.claimed_until,
        status=status,
        next_attempt_at=retry_at,
        status_code=attempt.status_code,
        error=attempt.error,
        now=now,
    )
    if not stored:
        log.info("webhook delivery %s: outcome not stored (claim lost)", job.delivery_id)
    return outcome


def _give_up(bridge: Bridge, session: Session, job: Job, reason: str, *, now: datetime) -> None:
    WebhookRepository(session, bridge.keyring).record_attempt(
        job.delivery_id,
        claimed_until=job.claimed_until,
        status=DeliveryStatus.FAILED,
        next_attempt_at=None,
        status_code=None,
        error=reason,
        now=now,
        count_attempt=False,
    )


async def run_job(bridge: Bridge, job: Job, *, send_timeout: float = SEND_TIMEOUT) -> str:
    """Send one claimed delivery and record the outcome (``succeeded``, ``retrying``,
    ``failed``, or ``skipped`` when its claim ran out before it could be sent)."""
    now = bridge.now()
    reason = DISABLED if not job.enabled else job.obsolete
    if reason is not None:
        await bridge.run(lambda session: _give_up(bridge, session, job, reason, now=now))
        metrics.DELIVERIES.labels("failed").inc()
        log.info("webhook delivery %s to endpoint %s: %s", job.delivery_id, job.endpoint_id, reason)
        return "failed"
    if now + timedelta(seconds=send_timeout) > job.claimed_until:
        return "skipped"  # another worker may take it from now on; it is retried then
    if job.unsendable is not None:
        attempt = Attempt(None, job.unsendable)
    else:
        attempt = await send(bridge.http, job, now=now, send_timeout=send_timeout)
    done = bridge.now()
    outcome = await bridge.run(lambda session: record(bridge, session, job, attempt, now=done))
    metrics.DELIVERIES.labels(outcome).inc()
    if outcome == "succeeded":
        log.debug("webhook delivery %s succeeded", job.delivery_id)
    else:
        log.info(
            "webhook delivery %s of event %s to endpoint %s: %s (%s)",
            job.delivery_id,
            job.event_type,
            job.endpoint_id,
            outcome,
            attempt.error,
        )
    return outcome


async def deliver_due(
    bridge: Bridge,
    *,
    limit: int = 100,
    concurrency: int = DEFAULT_CONCURRENCY,
    send_timeout: float = SEND_TIMEOUT,
) -> int:
    """Send up to ``limit`` deliveries due at ``bridge.now()``; return how many were claimed.

    Call it in a loop (sleeping a little when it returns 0); several workers, in one process
    or many, may run it at once. It raises only when the database fails.
    """
    now = bridge.now()
    claim_until = now + claim_duration(limit, concurrency, send_timeout)
    jobs = await bridge.run(
        lambda session: claim(bridge, session, now=now, limit=limit, claim_until=claim_until),
    )
    if not jobs:
        return 0
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Job) -> None:
        async with gate:
            try:
                await run_job(bridge, job, send_timeout=send_timeout)
            except Exception:
                # A database failure while recording: the claim runs out and it is sent again.
                log.exception("webhook delivery %s could not be recorded", job.delivery_id)

    await asyncio.gather(*(one(job) for job in jobs))
    return len(jobs)


async def prune_events(bridge: Bridge, *, retention: timedelta, limit: int = 500) -> int:
    """Delete up to ``limit`` events older than ``retention`` that no delivery waits on any
    more (with their deliveries): the outbox and its history do not grow without end."""
    before = bridge.now() - retention
    return await bridge.run(
        lambda session: WebhookRepository(session, bridge.keyring).prune_events(
            before=before, limit=limit
        ),
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
