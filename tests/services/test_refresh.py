"""Refreshing exactly once: concurrent callers in one process and across refreshers."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy import select

from authbridge.connectors.registry import Registry
from authbridge.services import events
from authbridge.services.bridge import Bridge
from authbridge.services.refresh import Refresher
from authbridge.storage.models import Authentication, AuthStatus, Environment, WebhookEvent
from authbridge.storage.repositories import (
    AuthenticationRepository,
    ConnectorConfigRepository,
    EndUserRepository,
)
from tests.api.conftest import CONNECTORS
from tests.support.connectors import render_connectors

pytestmark = pytest.mark.anyio

CLIENT = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}


def sandbox_tokens(sandbox: str) -> dict[str, Any]:
    """Tokens from the sandbox's authorization code flow (approved, without PKCE)."""
    with httpx.Client(base_url=sandbox, follow_redirects=False) as client:
        consent = client.post(
            "/oauth2/authorize",
            data={
                "client_id": CLIENT["client_id"],
                "redirect_uri": "http://127.0.0.1/callback",
                "response_type": "code",
                "scope": "profile",
                "state": "s",
                "decision": "approve",
            },
        )
        code = dict(parse_qsl(urlsplit(consent.headers["location"]).query))["code"]
        answer = client.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://127.0.0.1/callback",
            },
            auth=(CLIENT["client_id"], CLIENT["client_secret"]),
        )
        answer.raise_for_status()
        tokens: dict[str, Any] = answer.json()
        return tokens


def refresh_requests(sandbox: str) -> int:
    stats = httpx.get(sandbox + "/sandbox/stats").json()
    count: int = stats["token_requests"]["refresh_token"]
    return count


def due_oauth_auth(bridge: Bridge, environment: Environment, sandbox: str) -> Authentication:
    tokens = sandbox_tokens(sandbox)
    now = bridge.now()
    with bridge.session() as session:
        ConnectorConfigRepository(session, bridge.keyring).upsert(
            environment.id, "sandbox-oauth2", **CLIENT
        )
        user = EndUserRepository(session).get_or_create(environment.id, "user-1")
        return AuthenticationRepository(session, bridge.keyring).create(
            environment_id=environment.id,
            end_user_id=user.id,
            connector_key="sandbox-oauth2",
            connector_version="1",
            auth_type="oauth2",
            name="Sandbox",
            credentials={
                "access_token": tokens["access_token"],
                "refresh_token": tokens["refresh_token"],
                "token_type": "Bearer",
            },
            expires_at=now + timedelta(seconds=30),
            refresh_due_at=now - timedelta(seconds=1),
        )


def stored(bridge: Bridge, auth_id: str) -> tuple[Authentication, dict[str, Any]]:
    with bridge.session() as session:
        repo = AuthenticationRepository(session, bridge.keyring)
        auth = repo.get_any(auth_id)
        assert auth is not None
        return auth, repo.credentials(auth)


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
    _, credentials = stored(bridge, auth.id)
    with bridge.session() as session:
        repo = AuthenticationRepository(session, bridge.keyring)
        repo.update_credentials(
            repo.get_any(auth.id),  # type: ignore[arg-type]
            {**credentials, "refresh_token": "not-a-sandbox-token"},
            refresh_due_at=bridge.now(),
        )

    outcome = await Refresher(bridge).refresh(auth.id)

    assert outcome.kind == "invalid"
    after, _ = stored(bridge, auth.id)
    assert after.status is AuthStatus.INVALID
    assert after.last_error
    assert events.INVALID in event_types(bridge)


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
