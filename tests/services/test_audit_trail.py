"""The audit trail of credential reads: queued by the request, written in batches, never lost
at a graceful stop, durable within a fraction of a second otherwise, retried when refused."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from authbridge.services.audit_trail import MAX_BATCH, AuditTrail
from authbridge.services.bridge import Bridge
from authbridge.storage.models import AuditEvent, Environment, utcnow
from authbridge.tenancy.repository import AuditEntry
from tests.support.faults import failing_audit_batches

pytestmark = pytest.mark.anyio

READ = "authentication.credentials_read"


def entry(environment: Environment, number: int) -> AuditEntry:
    return AuditEntry(
        environment_id=environment.id,
        actor="master:test",
        action=READ,
        target_type="authentication",
        target_id=f"auth-{number:04d}",
        at=utcnow() + timedelta(microseconds=number),
    )


def written(bridge: Bridge, environment: Environment) -> list[str]:
    """The targets of the environment's read events in the database, oldest first."""
    statement = (
        select(AuditEvent.target_id)
        .where(AuditEvent.environment_id == environment.id, AuditEvent.action == READ)
        .order_by(AuditEvent.created_at)
    )
    with bridge.session() as session:
        return [target or "" for target in session.scalars(statement)]


async def test_a_graceful_stop_writes_every_queued_row(
    bridge: Bridge, environment: Environment
) -> None:
    trail = AuditTrail(bridge, interval=10.0)  # nothing would be written before the stop
    for number in range(300):
        await trail.add(entry(environment, number))
    await trail.close()
    assert written(bridge, environment) == [f"auth-{n:04d}" for n in range(300)]


async def test_rows_are_written_within_a_fraction_of_a_second_without_a_stop(
    bridge: Bridge, environment: Environment
) -> None:
    """What a crash can lose: rows not yet written. Every row is in the database well within
    a second of its request, with nobody flushing or stopping the trail."""
    trail = AuditTrail(bridge)
    try:
        for number in range(50):
            await trail.add(entry(environment, number))
        queued = time.monotonic()
        while len(written(bridge, environment)) < 50:
            assert time.monotonic() - queued < 1.0, "audit rows still unwritten after 1 s"
            await asyncio.sleep(0.02)
    finally:
        await trail.close()


async def test_a_backlog_of_full_batches_is_written_without_waiting_between_them(
    bridge: Bridge, environment: Environment
) -> None:
    """Reads faster than a batch per interval must not outrun the writer: full batches go at
    once, only a partial one waits for the interval (here 4 s; waiting after each of the three
    full batches would take 12)."""
    interval = 4.0
    trail = AuditTrail(bridge, interval=interval)
    await trail.add(entry(environment, 0))
    await asyncio.wait_for(trail.flush(), 10)  # the first row, at once: the writer had rested
    started = time.monotonic()
    count = 3 * MAX_BATCH + 7
    for number in range(1, count):
        await trail.add(entry(environment, number))
    while len(written(bridge, environment)) < 1 + 3 * MAX_BATCH:
        assert time.monotonic() - started < interval, "full batches waited for the interval"
        await asyncio.sleep(0.05)
    assert len(written(bridge, environment)) == 1 + 3 * MAX_BATCH  # the partial batch waits
    await trail.close()
    assert len(written(bridge, environment)) == count


async def test_a_detail_named_like_a_secret_is_refused_by_the_request_that_queues_it(
    bridge: Bridge, environment: Environment
) -> None:
    trail = AuditTrail(bridge)
    secret = AuditEntry(
        environment_id=environment.id,
        actor="master:test",
        action=READ,
        target_type="authentication",
        target_id="auth-1",
        at=utcnow(),
        detail={"access_token": "sk-live-1234"},
    )
    with pytest.raises(ValueError, match="access_token looks like a secret"):
        await trail.add(secret)
    await trail.add(entry(environment, 2))
    await trail.close()
    assert written(bridge, environment) == ["auth-0002"]


async def test_a_batch_the_database_refuses_is_written_on_a_later_try(
    bridge: Bridge, environment: Environment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authbridge.audit")
    with failing_audit_batches(bridge.database, 2) as faults:
        trail = AuditTrail(bridge, interval=0.01)
        for number in range(20):
            await trail.add(entry(environment, number))
        await trail.close()
    assert faults.injected == 2
    assert written(bridge, environment) == [f"auth-{n:04d}" for n in range(20)]
    retries = [r for r in caplog.records if "could not be written" in r.getMessage()]
    assert len(retries) == 2
    assert all("trying again" in r.getMessage() for r in retries)
