"""Webhooks: delivering the outbox with Standard Webhooks signatures.

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
from typing import Any, Final

import httpx
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from authbridge import errors
from authbridge.http import OutboundClient
from authbridge.redaction import redact
from authbridge.services import metrics
from authbridge.services.bridge import Bridge
from authbridge.storage.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from authbridge.webhooks.events import EXPIRING
from authbridge.webhooks.repository import (
    DISABLED,
    STANDARD,
    WebhookRepository,
)
from authbridge.webhooks.repository import RETRY_WINDOW as RETRY_WINDOW

log = logging.getLogger("authbridge.webhooks")

#: A hard limit on one send (connecting, sending and reading the answer together).
SEND_TIMEOUT: Final = 10.0
DEFAULT_CONCURRENCY: Final = 10
BASE_BACKOFF: Final = timedelta(seconds=5)
MAX_BACKOFF: Final = timedelta(hours=1)
MIN_BACKOFF: Final = timedelta(seconds=1)
#: Extra time a claim lasts beyond the sends it covers.
CLAIM_MARGIN: Final = timedelta(seconds=30)
MAX_ERROR_LENGTH: Final = 200
TRAY: Final = "tray"
#: The body Tray Embedded's expired-auth receivers expect, key for key.
TRAY_FIELDS: Final = (
    "authentication_name",
    "service_name",
    "user_id",
    "authId",
    "external_user_id",
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
