"""Redelivery: one event, or an endpoint's events in a time range, queued again and sent by
the worker with a retry window of their own; what a disabled endpoint missed is kept for it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from authbridge.errors import Conflict, InvalidInput, NotFound
from authbridge.services.bridge import Bridge
from authbridge.storage.models import DeliveryStatus, Environment, WebhookDelivery, WebhookEvent
from authbridge.webhooks import delivery as webhooks
from authbridge.webhooks import events, redelivery
from tests.webhooks.test_service import (
    Clock,
    add_endpoint,
    auth_created,
    clock,
    deliveries,
    only_delivery,
    receiver,
    replies,
    set_enabled,
)

pytestmark = pytest.mark.anyio
__all__ = ["clock"]  # the fixture, shared with the delivery tests


async def test_events_written_while_an_endpoint_is_disabled_are_kept_for_redelivery(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (url, app):
        endpoint_id, secret = add_endpoint(bridge, environment, url)
        set_enabled(bridge, environment, endpoint_id, False)
        missed = [auth_created(bridge, environment) for _ in range(2)]
        assert await webhooks.deliver_due(bridge) == 0
        clock.move(timedelta(days=3))  # long after the retry window
        set_enabled(bridge, environment, endpoint_id, True)
        assert await webhooks.deliver_due(bridge) == 0  # enabling resends nothing by itself

        with bridge.session() as session:
            queued = redelivery.redeliver_range(
                bridge.keyring,
                session,
                environment.id,
                endpoint_id,
                since=clock.now - timedelta(days=4),
                until=clock.now,
                failed_only=True,
                now=clock.now,
            )
        assert (queued.queued, queued.already_pending, queued.next_cursor) == (2, 0, None)
        assert await webhooks.deliver_due(bridge) == 2

    received = sorted(json.loads(request.body)["data"]["authId"] for request in app.requests)
    assert received == sorted(auth.id for auth in missed)
    assert {request.headers["webhook-signature"] for request in app.requests}  # signed
    assert secret not in repr([request.headers for request in app.requests])
    statuses = sorted(d.status.value for d in deliveries(bridge))
    assert statuses == ["failed", "failed", "succeeded", "succeeded"]  # the history stays


async def fail_for_a_day(bridge: Bridge, clock: Clock) -> WebhookDelivery:
    """Send until the only pending delivery has given up (its 24 hours are over)."""
    for _ in range(500):
        assert await webhooks.deliver_due(bridge) == 1
        [pending] = [d for d in deliveries(bridge) if d.status is DeliveryStatus.PENDING] or [None]
        if pending is None:
            break
        assert pending.next_attempt_at is not None
        clock.now = pending.next_attempt_at
    [failed] = [d for d in deliveries(bridge) if d.status is DeliveryStatus.FAILED]
    return failed


async def test_a_given_up_delivery_is_redelivered_with_a_retry_window_of_its_own(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver(replies(503)) as (url, app):
        endpoint_id, _ = add_endpoint(bridge, environment, url)
        auth_created(bridge, environment)
        failed = await fail_for_a_day(bridge, clock)
        attempts = len(app.requests)
        clock.move(timedelta(days=3))
        assert await webhooks.deliver_due(bridge) == 0  # nothing more to send by itself

        with bridge.session() as session:
            again, queued = redelivery.redeliver_event(
                bridge.keyring, session, environment.id, endpoint_id, failed.event_id, now=clock.now
            )
        assert queued
        with bridge.session() as session:  # asking twice queues it once
            same, queued = redelivery.redeliver_event(
                bridge.keyring, session, environment.id, endpoint_id, failed.event_id, now=clock.now
            )
        assert (same.id, queued) == (again.id, False)
        assert await webhooks.deliver_due(bridge) == 1

    assert len(app.requests) == attempts + 1
    assert app.requests[-1].headers["webhook-id"] == failed.event_id  # the same message
    by_id = {d.id: d for d in deliveries(bridge)}
    assert by_id[failed.id].status is DeliveryStatus.FAILED  # the earlier one is kept as it was
    retried = by_id[again.id]
    assert retried.status is DeliveryStatus.PENDING  # retried, not given up at once
    assert retried.attempts == 1
    assert retried.next_attempt_at is not None
    assert clock.now < retried.next_attempt_at <= clock.now + timedelta(seconds=5)
    assert retried.retry_until == clock.now + timedelta(hours=24)


async def test_a_time_range_is_redelivered_page_by_page(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver(replies(200, 500)) as (url, _app):
        endpoint_id, _ = add_endpoint(bridge, environment, url)
        start = clock.now
        sent = auth_created(bridge, environment)
        assert await webhooks.deliver_due(bridge) == 1  # 200: succeeded
        clock.move(timedelta(minutes=1))
        failing = [auth_created(bridge, environment) for _ in range(3)]
        assert await webhooks.deliver_due(bridge) == 3  # 500: pending
    with bridge.session() as session:  # two of them gave up
        waiting = select(WebhookDelivery).where(WebhookDelivery.status == DeliveryStatus.PENDING)
        for delivery in session.scalars(waiting.order_by(WebhookDelivery.id)).all()[:2]:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    clock.move(timedelta(days=2))
    later = auth_created(bridge, environment)  # after the range: pending, never sent

    def redeliver(failed_only: bool, cursor: str | None) -> redelivery.Redelivery:
        with bridge.session() as session:
            return redelivery.redeliver_range(
                bridge.keyring,
                session,
                environment.id,
                endpoint_id,
                since=start,
                until=start + timedelta(days=1),
                failed_only=failed_only,
                now=clock.now,
                limit=1,
                cursor=cursor,
            )

    with bridge.session() as session:
        counted = redelivery.count_redeliverable(
            bridge.keyring,
            session,
            environment.id,
            endpoint_id,
            since=start,
            until=start + timedelta(days=1),
            failed_only=True,
        )
    assert counted == 2
    pages, cursor = [], None
    while True:
        page = redeliver(True, cursor)
        pages.append((page.queued, page.already_pending))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sum(queued for queued, _ in pages) == 2
    assert all(queued + pending <= 1 for queued, pending in pages)
    everything = redeliver(False, None)
    while everything.next_cursor is not None:  # the rest of the range, every event of it
        more = redeliver(False, everything.next_cursor)
        everything = redelivery.Redelivery(
            everything.queued + more.queued,
            everything.already_pending + more.already_pending,
            more.next_cursor,
        )
    # the succeeded one is queued again; the three failing ones already wait for a delivery
    assert (everything.queued, everything.already_pending) == (1, 3)
    with bridge.session() as session:
        pending = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.status == DeliveryStatus.PENDING)
        ).all()
        events_pending = sorted(
            event.payload["authId"]
            for event in session.scalars(
                select(WebhookEvent).where(WebhookEvent.id.in_([d.event_id for d in pending]))
            )
        )
    assert events_pending == sorted([sent.id, later.id, *(auth.id for auth in failing)])


async def test_redelivery_refuses_what_it_cannot_do(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    endpoint_id, _ = add_endpoint(bridge, environment, "https://hooks.example.com/in")
    only_deleted, _ = add_endpoint(
        bridge, environment, "https://hooks.example.com/d", (events.DELETED,)
    )
    auth_created(bridge, environment)
    event_id = only_delivery(bridge).event_id

    def redeliver(endpoint: str, event: str) -> None:
        with bridge.session() as session:
            redelivery.redeliver_event(
                bridge.keyring, session, environment.id, endpoint, event, now=clock.now
            )

    with pytest.raises(NotFound, match="webhook event 'nope'"):
        redeliver(endpoint_id, "nope")
    with pytest.raises(NotFound, match="webhook endpoint 'nope'"):
        redeliver("nope", event_id)
    with pytest.raises(Conflict, match=r"does not receive authentication\.created"):
        redeliver(only_deleted, event_id)
    set_enabled(bridge, environment, endpoint_id, False)
    with pytest.raises(Conflict, match="disabled; enable it first"):
        redeliver(endpoint_id, event_id)
    with bridge.session() as session, pytest.raises(InvalidInput, match="earlier") as raised:
        redelivery.redeliver_range(
            bridge.keyring,
            session,
            environment.id,
            only_deleted,
            since=clock.now,
            until=clock.now - timedelta(hours=1),
            now=clock.now,
        )
    assert raised.value.field == "since"
    assert len(deliveries(bridge)) == 1  # nothing was queued
