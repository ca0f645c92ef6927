"""The worker: refreshing due authentications once across workers, running, metrics."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from authbridge.api import create_app
from authbridge.authentications.repository import AuthenticationRepository
from authbridge.refresh.repository import RefreshRepository
from authbridge.refresh.service import Refresher
from authbridge.refresh.worker import Worker, WorkerSettings
from authbridge.services import metrics
from authbridge.services.bridge import Bridge
from authbridge.storage import Database
from authbridge.storage.models import Authentication, Environment
from authbridge.webhooks import delivery as webhooks
from tests.support.loopback import serve
from tests.support.sandbox_grants import due_oauth_auth, refresh_requests, stored

pytestmark = pytest.mark.anyio

FAST = WorkerSettings(interval=0.05)


def postpone(bridge: Bridge, auth: Authentication, delay: timedelta) -> None:
    """Make ``auth`` due for refresh only after ``delay``."""
    with bridge.session() as session:
        repo = AuthenticationRepository(session, bridge.keyring)
        current = repo.get_any(auth.id)
        assert current is not None
        repo.update_credentials(
            current, repo.credentials(current), refresh_due_at=bridge.now() + delay
        )


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def refreshes_seen(sandbox: str) -> int:
    return await asyncio.to_thread(refresh_requests, sandbox)


async def eventually(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        await asyncio.sleep(0.05)


async def test_a_tick_refreshes_due_auths_and_leaves_the_others(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    due = due_oauth_auth(bridge, environment, sandbox)
    not_due = due_oauth_auth(bridge, environment, sandbox)
    postpone(bridge, not_due, timedelta(hours=1))
    _, due_before = stored(bridge, due.id)
    _, not_due_before = stored(bridge, not_due.id)

    report = await Worker(bridge).tick()

    assert refresh_requests(sandbox) == 1
    assert report.due == 1
    assert report.outcomes == {"refreshed": 1}
    assert report.errors == ()
    after, credentials = stored(bridge, due.id)
    assert credentials["access_token"] != due_before["access_token"]
    assert after.refresh_due_at is not None
    assert after.refresh_due_at > bridge.now()
    assert stored(bridge, not_due.id)[1] == not_due_before

    again = await Worker(bridge).tick()
    assert again.due == 0
    assert refresh_requests(sandbox) == 1


async def test_two_workers_ticking_together_refresh_each_auth_once(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auths = [due_oauth_auth(bridge, environment, sandbox) for _ in range(12)]
    # Two workers as two processes: each with its own refresher (its own lease owner).
    workers = [
        Worker(bridge, Refresher(bridge), settings=WorkerSettings(concurrency=4)) for _ in range(2)
    ]

    reports = await asyncio.gather(*(worker.tick() for worker in workers))

    assert refresh_requests(sandbox) == len(auths)
    assert sum(report.refreshed for report in reports) == len(auths)
    assert all(set(report.outcomes) <= {"refreshed", "busy", "not_due"} for report in reports)
    await asyncio.gather(*(worker.tick() for worker in workers))
    assert refresh_requests(sandbox) == len(auths)
    for auth in auths:
        after, _ = stored(bridge, auth.id)
        assert after.last_error is None
        assert after.refresh_due_at is not None
        assert after.refresh_due_at > bridge.now()


async def test_the_due_gauge_and_the_refresh_counter_are_served_at_metrics(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    due_oauth_auth(bridge, environment, sandbox)
    before = sample("authbridge_refreshes_total", outcome="refreshed")

    await Worker(bridge).tick()

    with serve(create_app(bridge, public_metrics=True)) as url:
        answer = await asyncio.to_thread(httpx.get, url + "/metrics")
        schema = await asyncio.to_thread(httpx.get, url + "/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    served = {
        (one.name, tuple(sorted(one.labels.items()))): one.value
        for family in text_string_to_metric_families(answer.text)
        for one in family.samples
    }
    assert served[("authbridge_refreshes_total", (("outcome", "refreshed"),))] == before + 1
    assert served[("authbridge_due_authentications", ())] == 1
    assert "/metrics" not in schema.json()["paths"]

    await Worker(bridge).tick()
    assert sample("authbridge_due_authentications") == 0


async def test_run_keeps_refreshing_while_a_webhook_round_is_slow_and_stops_cleanly(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    release = asyncio.Event()
    calls: list[int] = []

    async def slow_delivery(_bridge: Bridge, *, limit: int) -> int:
        calls.append(limit)
        await release.wait()  # an endpoint that does not answer
        return 0

    worker = Worker(bridge, settings=FAST, deliver=slow_delivery)
    stop = asyncio.Event()
    due_oauth_auth(bridge, environment, sandbox)
    running = asyncio.create_task(worker.run(stop))

    await eventually(lambda: _count_is(sandbox, 1))
    due_oauth_auth(bridge, environment, sandbox)  # due later: a later tick picks it up
    await eventually(lambda: _count_is(sandbox, 2))
    assert calls == [FAST.webhook_batch]  # still in its first round

    stop.set()
    release.set()
    await asyncio.wait_for(running, timeout=10)
    assert await refreshes_seen(sandbox) == 2


async def _count_is(sandbox: str, expected: int) -> bool:
    return await refreshes_seen(sandbox) == expected


async def test_the_app_lifespan_runs_the_worker(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)

    with serve(create_app(bridge, worker=Worker(bridge, settings=FAST)), lifespan="on"):
        await eventually(lambda: _count_is(sandbox, 1))

    after, _ = stored(bridge, auth.id)
    assert after.refresh_due_at is not None
    assert after.refresh_due_at > bridge.now()
    assert after.lease_owner is None


async def test_webhook_delivery_is_the_webhooks_service(bridge: Bridge) -> None:
    assert Worker(bridge).delivery() is webhooks.deliver_due


async def test_webhook_delivery_can_be_turned_off(bridge: Bridge) -> None:
    async def deliver(_bridge: Bridge, *, limit: int) -> int:
        return 0

    assert Worker(bridge, deliver=deliver).delivery() is deliver
    off = Worker(bridge, settings=WorkerSettings(webhooks=False), deliver=deliver)
    assert off.delivery() is None


@pytest.mark.parametrize(
    "values",
    [
        {"interval": 0},
        {"warn_days": -1},
        {"concurrency": 0},
        {"batch": 0},
        {"event_retention_days": 0},
    ],
)
async def test_worker_settings_refuse_values_that_cannot_work(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        WorkerSettings(**values)


async def test_a_lease_taken_with_due_by_needs_the_refresh_still_due(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    # What keeps a refresher whose "due" read went stale (another process stored a refresh
    # between its read and its UPDATE) from refreshing a second time.
    auth = due_oauth_auth(bridge, environment, sandbox)
    postpone(bridge, auth, timedelta(minutes=10))
    now = bridge.now()
    with bridge.session() as session:
        repo = RefreshRepository(session, bridge.keyring)
        lease = timedelta(minutes=1)
        assert repo.acquire_lease(auth.id, "late", now=now, duration=lease, due_by=now) is None
        forced = repo.acquire_lease(auth.id, "forced", now=now, duration=lease)
        assert forced is not None
        assert forced.lease_owner == "forced"


async def test_a_tick_during_a_database_outage_logs_a_line_per_part_without_a_traceback(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        nowhere = Database(f"postgresql://authbridge:pw-4242@127.0.0.1:{port}/authbridge")
        try:
            report = await Worker(replace(bridge, database=nowhere)).tick()
        finally:
            nowhere.dispose()

    assert report.errors  # every part that reads the database
    lines = [r for r in caplog.records if "worker part failed" in r.getMessage()]
    assert len(lines) == len(report.errors)
    assert all(r.levelname == "WARNING" and r.exc_info is None for r in lines)
    assert all("database trouble (unreachable" in r.getMessage() for r in lines)
    assert "pw-4242" not in caplog.text
    assert "Traceback" not in caplog.text
