"""Refreshing exactly once: concurrent callers in one process and across refreshers."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connectors.registry import Registry
from authbridge.refresh.repository import RefreshRepository
from authbridge.refresh.service import Refresher
from authbridge.services.bridge import Bridge
from authbridge.storage.models import AuthStatus, Environment, WebhookEvent
from authbridge.webhooks import events
from tests.support.app import CONNECTORS
from tests.support.connectors import render_connectors
from tests.support.faults import failing_refresh_failures, failing_refresh_stores
from tests.support.sandbox_grants import CLIENT, due_oauth_auth, refresh_requests, stored

pytestmark = pytest.mark.anyio


def store_a_refused_refresh_token(bridge: Bridge, auth_id: str) -> None:
    """Replace the refresh token with one the sandbox never issued (it answers invalid_grant)."""
    _, credentials = stored(bridge, auth_id)
    with bridge.session() as session:
        repo = AuthenticationRepository(session, bridge.keyring)
        repo.update_credentials(
            repo.get_any(auth_id),  # type: ignore[arg-type]
            {**credentials, "refresh_token": "not-a-sandbox-token"},
            refresh_due_at=bridge.now(),
        )


def event_types(bridge: Bridge) -> list[str]:
    with bridge.session() as session:
        return [event.type for event in session.scalars(select(WebhookEvent))]


async def test_concurrent_callers_in_one_process_share_one_refresh(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    _, before = stored(bridge, auth.id)
    refresher = Refresher(bridge)

    outcomes = await asyncio.gather(*(refresher.refresh(auth.id) for _ in range(50)))

    assert refresh_requests(sandbox) == 1
    assert {outcome.kind for outcome in outcomes} == {"refreshed"}
    after_auth, after = stored(bridge, auth.id)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # the sandbox rotates it
    assert after_auth.lease_owner is None
    assert after_auth.refresh_due_at is not None
    assert after_auth.refresh_due_at > bridge.now()


async def test_refreshers_of_several_processes_refresh_once(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    refreshers = [Refresher(bridge) for _ in range(4)]  # four lease owners, as four processes

    outcomes = await asyncio.gather(*(r.refresh(auth.id) for r in refreshers for _ in range(10)))

    assert refresh_requests(sandbox) == 1
    kinds = {outcome.kind for outcome in outcomes}
    assert "refreshed" in kinds
    assert kinds <= {"refreshed", "shared", "not_due"}  # late callers find it fresh
    assert stored(bridge, auth.id)[0].status is AuthStatus.ACTIVE


async def test_a_refused_refresh_token_makes_the_auth_invalid_and_says_so(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    store_a_refused_refresh_token(bridge, auth.id)

    outcome = await Refresher(bridge).refresh(auth.id)

    assert outcome.kind == "invalid"
    after, _ = stored(bridge, auth.id)
    assert after.status is AuthStatus.INVALID
    assert after.last_error
    assert events.INVALID in event_types(bridge)


async def test_a_refusal_the_database_fails_to_record_is_retried_and_releases_the_lease(
    bridge: Bridge, environment: Environment, sandbox: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Left unrecorded, the failure would hold the lease until it ran out, and the refresher
    # taking it over would present the refused token again and call the refresh interrupted.
    auth = due_oauth_auth(bridge, environment, sandbox)
    store_a_refused_refresh_token(bridge, auth.id)

    with failing_refresh_failures(bridge.database, times=2) as faults:
        outcome = await Refresher(bridge).refresh(auth.id)

    assert faults.injected == 2
    assert outcome.kind == "invalid"
    assert "interrupted" not in (outcome.message or "")
    after, _ = stored(bridge, auth.id)
    assert after.status is AuthStatus.INVALID
    assert after.lease_owner is None
    retries = [r for r in caplog.records if "recording its failure failed" in r.message]
    assert len(retries) == 2
    assert all(r.levelname == "WARNING" and auth.id in r.getMessage() for r in retries)
    invalid = [r for r in caplog.records if "is now invalid" in r.getMessage()]
    assert len(invalid) == 1
    assert event_types(bridge).count(events.INVALID) == 1


async def test_a_provider_outage_backs_off_without_changing_the_status(
    bridge: Bridge, environment: Environment, sandbox: str, tmp_path: Path
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    with socket.socket() as unused:  # a port nothing listens on: the provider is down
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    dead = render_connectors(CONNECTORS, tmp_path / "dead", PORT=dead_port)
    outage = replace(bridge, registry=Registry.load([dead], include_catalog=False))

    outcome = await Refresher(outage).refresh(auth.id)

    assert outcome.kind == "failed"
    after, _ = stored(bridge, auth.id)
    assert after.status is AuthStatus.ACTIVE
    assert after.refresh_failures == 1
    assert after.refresh_due_at is not None
    assert after.refresh_due_at > bridge.now()
    assert after.lease_owner is None

    recovered = await Refresher(bridge).refresh(auth.id, force=True)
    assert recovered.kind == "refreshed"
    assert events.RECOVERED in event_types(bridge)


async def test_an_uninstalled_connector_backs_off_instead_of_failing_every_tick(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    removed = replace(bridge, registry=Registry.load([], include_catalog=False))

    outcome = await Refresher(removed).refresh(auth.id)

    assert outcome.kind == "failed"
    assert outcome.message is not None
    assert "no connector named 'sandbox-oauth2'" in outcome.message
    after, _ = stored(bridge, auth.id)
    assert after.status is AuthStatus.ACTIVE  # reinstalling the connector is enough
    assert after.refresh_failures == 1
    assert after.refresh_due_at is not None
    assert after.refresh_due_at > bridge.now()  # not due again at the next tick
    assert after.lease_owner is None
    assert (await Refresher(removed).refresh(auth.id)).kind == "not_due"


def reuse_detected(sandbox: str) -> int:
    count: int = httpx.get(sandbox + "/sandbox/stats").json()["refresh_reuse_detected"]
    return count


async def test_a_store_the_database_refuses_is_retried_until_the_rotated_token_is_kept(
    bridge: Bridge, environment: Environment, sandbox: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    _, before = stored(bridge, auth.id)

    with failing_refresh_stores(bridge.database, times=3) as faults:
        outcome = await Refresher(bridge).refresh(auth.id)

    assert faults.injected == 3
    assert outcome.kind == "refreshed"
    assert refresh_requests(sandbox) == 1  # the provider was asked once, the store tried 4 times
    after_auth, after = stored(bridge, auth.id)
    assert after["refresh_token"] != before["refresh_token"]
    assert after_auth.status is AuthStatus.ACTIVE
    assert after_auth.lease_owner is None
    retries = [r for r in caplog.records if "storing the new credentials failed" in r.message]
    assert len(retries) == 3
    assert all(auth.id in r.getMessage() and r.exc_info is None for r in retries)
    # What was kept is the token the provider issued last: the next refresh is accepted.
    assert (await Refresher(bridge).refresh(auth.id, force=True)).kind == "refreshed"
    assert reuse_detected(sandbox) == 0


async def test_a_refusal_after_a_lease_taken_over_says_the_refresh_was_interrupted(
    bridge: Bridge, environment: Environment, sandbox: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    _, credentials = stored(bridge, auth.id)
    dead = "0f0f0f0f-dead-4000-8000-000000000000"
    with bridge.session() as session:  # a refresher took the lease, then died ...
        repo = RefreshRepository(session, bridge.keyring)
        taken = repo.acquire_lease(auth.id, dead, now=bridge.now(), duration=timedelta(0))
        assert taken is not None
    # ... after the provider had rotated the refresh token: its answer died with it.
    async with httpx.AsyncClient() as client:
        rotated = await client.post(
            sandbox + "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": credentials["refresh_token"]},
            auth=(CLIENT["client_id"], CLIENT["client_secret"]),
        )
    assert rotated.status_code == 200

    outcome = await Refresher(bridge).refresh(auth.id)

    assert outcome.kind == "invalid"
    after, _ = stored(bridge, auth.id)
    assert after.status is AuthStatus.INVALID
    assert after.last_error is not None
    assert "a refresh was interrupted" in after.last_error
    assert dead in after.last_error
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"takes over the lease of refresher {dead}" in m for m in messages)
    invalid = [m for m in messages if m.startswith(f"authentication {auth.id} (sandbox-oauth2)")]
    assert len(invalid) == 1
    assert "is now invalid" in invalid[0]
    assert "interrupted" in invalid[0]
    with bridge.session() as session:
        event = session.scalars(select(WebhookEvent).where(WebhookEvent.type == events.INVALID))
        assert "a refresh was interrupted" in str(event.one().payload)


async def test_stopping_waits_for_the_refresh_under_way_and_starts_no_other(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    other = due_oauth_auth(bridge, environment, sandbox)
    refresher = Refresher(bridge)

    under_way = asyncio.ensure_future(refresher.refresh(auth.id))
    await asyncio.sleep(0)  # it has started
    await refresher.stop()

    assert under_way.done()
    assert under_way.result().kind == "refreshed"
    assert stored(bridge, auth.id)[0].lease_owner is None
    assert (await refresher.refresh(other.id)).kind == "busy"
    assert refresh_requests(sandbox) == 1
