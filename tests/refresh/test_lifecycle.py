"""Hard expiry and scheduled deletion, as the worker carries them out."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.connectors.registry import CATALOG, Registry
from authbridge.refresh.repository import RefreshRepository
from authbridge.refresh.service import Refresher
from authbridge.refresh.worker import Worker, WorkerSettings
from authbridge.services.bridge import Bridge
from authbridge.storage.models import (
    AuditEvent,
    Authentication,
    AuthStatus,
    DeliveryStatus,
    Environment,
    WebhookDelivery,
    WebhookEvent,
)
from authbridge.tenancy.repository import EndUserRepository
from authbridge.webhooks import delivery as webhook_delivery
from authbridge.webhooks import events
from authbridge.webhooks import service as webhooks
from tests.support.loopback import Received, RecordingApp, serve
from tests.support.sandbox_grants import due_oauth_auth, refresh_requests, stored

pytestmark = pytest.mark.anyio

REVOKING = "revoking-oauth2"
CLIENT_ID = "rev-client"
CLIENT_SECRET = "rev secret:x"  # shows the form-encoding of HTTP Basic


@pytest.fixture
def now(bridge: Bridge) -> datetime:
    """A fixed time for the bridge's clock (tests move it with ``bridge.clock``)."""
    moment = bridge.now().replace(microsecond=0)
    bridge.clock = lambda: moment
    return moment


def make_auth(
    bridge: Bridge,
    environment: Environment,
    *,
    connector_key: str = "sandbox-apikey",
    auth_type: str = "api_key",
    credentials: dict[str, Any] | None = None,
    hard_expires_at: datetime | None = None,
    delete_at: datetime | None = None,
    external_user_id: str = "user-1",
) -> Authentication:
    with bridge.session() as session:
        user = EndUserRepository(session).get_or_create(environment.id, external_user_id)
        return AuthenticationRepository(session, bridge.keyring).create(
            environment_id=environment.id,
            end_user_id=user.id,
            connector_key=connector_key,
            connector_version="1",
            auth_type=auth_type,
            name=f"{connector_key} of {external_user_id}",
            credentials=credentials or {"api_key": "sk_sandbox_0123456789"},
            hard_expires_at=hard_expires_at,
            delete_at=delete_at,
            now=bridge.now(),
        )


def change_hard_expiry(bridge: Bridge, auth_id: str, hard_expires_at: datetime) -> None:
    with bridge.session() as session:
        repo = AuthenticationRepository(session, bridge.keyring)
        auth = repo.get_any(auth_id)
        assert auth is not None
        repo.update_credentials(auth, repo.credentials(auth), hard_expires_at=hard_expires_at)


def sent(bridge: Bridge, event_type: str) -> list[dict[str, Any]]:
    with bridge.session() as session:
        statement = select(WebhookEvent).where(WebhookEvent.type == event_type)
        return [dict(event.payload) for event in session.scalars(statement)]


def external_and_user_id(bridge: Bridge, auth: Authentication) -> tuple[str, str | None]:
    with bridge.session() as session:
        external = EndUserRepository(session).external_ids([auth.end_user_id])
    return external[auth.end_user_id or ""], auth.end_user_id


def get(bridge: Bridge, auth_id: str) -> Authentication | None:
    with bridge.session() as session:
        return AuthenticationRepository(session, bridge.keyring).get_any(auth_id)


def worker(bridge: Bridge, **settings: Any) -> Worker:
    return Worker(bridge, settings=WorkerSettings(**settings))


# -- hard expiry ------------------------------------------------------------------------------


async def test_expiring_is_sent_once_per_auth_and_expiry_date(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    soon = make_auth(bridge, environment, hard_expires_at=now + timedelta(days=3))
    make_auth(bridge, environment, hard_expires_at=now + timedelta(days=10), external_user_id="u2")
    make_auth(bridge, environment)  # no hard expiry

    first = await worker(bridge).tick()
    second = await worker(bridge).tick()

    assert (first.warned, second.warned) == (1, 0)
    warnings = sent(bridge, events.EXPIRING)
    external_user_id, user_id = external_and_user_id(bridge, soon)
    assert warnings == [
        {
            "authId": soon.id,
            "authentication_name": "sandbox-apikey of user-1",
            "service_name": "sandbox-apikey",
            "user_id": user_id,
            "external_user_id": external_user_id,
            "status": "active",
            "hard_expires_at": (now + timedelta(days=3)).isoformat(),
        }
    ]
    assert external_user_id == "user-1"
    warned = get(bridge, soon.id)
    assert warned is not None
    assert warned.expiry_warned_for == now + timedelta(days=3)

    change_hard_expiry(bridge, soon.id, now + timedelta(days=5))  # a new date: a new warning
    third = await worker(bridge).tick()
    fourth = await worker(bridge).tick()

    assert (third.warned, fourth.warned) == (1, 0)
    dates = [warning["hard_expires_at"] for warning in sent(bridge, events.EXPIRING)]
    assert sorted(dates) == [(now + timedelta(days=d)).isoformat() for d in (3, 5)]


async def test_the_warning_window_is_configurable(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    later = make_auth(bridge, environment, hard_expires_at=now + timedelta(days=10))

    assert (await worker(bridge).tick()).warned == 0
    assert (await worker(bridge, warn_days=14).tick()).warned == 1
    assert [warning["authId"] for warning in sent(bridge, events.EXPIRING)] == [later.id]


@pytest.fixture
def ten_day_warning(bridge: Bridge, tmp_path: Path, now: datetime) -> Bridge:
    """The bridge with the sandbox API-key connector replaced by a copy whose manifest warns
    ten days ahead, as a provider with strict expiry would (the other connectors: seven)."""
    target = tmp_path / "host" / "sandbox" / "apikey"
    shutil.copytree(CATALOG / "sandbox" / "apikey", target)
    manifest = target / "manifest.yaml"
    manifest.write_text(manifest.read_text("utf-8") + "expiry_warning_days: 10\n", "utf-8")
    warned = replace(bridge, registry=Registry.load([tmp_path / "host"]))
    warned.clock = lambda: now
    return warned


async def test_a_connector_sets_its_own_warning_window(
    ten_day_warning: Bridge, environment: Environment, now: datetime
) -> None:
    bridge = ten_day_warning
    strict = make_auth(bridge, environment, hard_expires_at=now + timedelta(days=9))
    make_auth(
        bridge,
        environment,
        connector_key="sandbox-pwd",
        auth_type="pwd",
        credentials={"username": "u", "password": "sandbox"},
        hard_expires_at=now + timedelta(days=9),
        external_user_id="u2",
    )

    assert (await worker(bridge).tick()).warned == 1
    assert [warning["authId"] for warning in sent(bridge, events.EXPIRING)] == [strict.id]


def add_endpoint(bridge: Bridge, environment: Environment, url: str, **options: Any) -> str:
    with bridge.session() as session:
        return webhooks.create_endpoint(
            bridge.keyring, session, environment.id, url=url, now=bridge.now(), **options
        ).record.id


async def test_each_endpoint_hears_of_an_expiry_when_its_own_window_opens(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    apps = {"wide": RecordingApp(), "plain": RecordingApp(), "narrow": RecordingApp()}
    with (
        serve(apps["wide"]) as wide_url,
        serve(apps["plain"]) as plain_url,
        serve(apps["narrow"]) as narrow_url,
    ):
        add_endpoint(bridge, environment, wide_url, expiry_warning_days=10)
        add_endpoint(bridge, environment, plain_url)  # the worker's seven days
        add_endpoint(bridge, environment, narrow_url, expiry_warning_days=2)
        make_auth(bridge, environment, hard_expires_at=now + timedelta(days=9))

        def received() -> tuple[int, ...]:
            return tuple(len(app.requests) for app in apps.values())

        assert (await worker(bridge).tick()).warned == 1  # the widest window is open
        await webhook_delivery.deliver_due(bridge)
        assert received() == (1, 0, 0)
        bridge.clock = lambda: now + timedelta(days=2)  # seven days left
        assert (await worker(bridge).tick()).warned == 0  # one event, not one per window
        await webhook_delivery.deliver_due(bridge)
        assert received() == (1, 1, 0)
        bridge.clock = lambda: now + timedelta(days=7)  # two days left
        await webhook_delivery.deliver_due(bridge)
        assert received() == (1, 1, 1)

    assert len(sent(bridge, events.EXPIRING)) == 1
    assert len({app.requests[0].headers["webhook-id"] for app in apps.values()}) == 1


async def test_a_held_back_warning_is_not_sent_once_the_expiry_changed(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    wide, plain = RecordingApp(), RecordingApp()
    with serve(wide) as wide_url, serve(plain) as plain_url:
        add_endpoint(bridge, environment, wide_url, expiry_warning_days=10)
        plain_id = add_endpoint(bridge, environment, plain_url)
        auth = make_auth(bridge, environment, hard_expires_at=now + timedelta(days=9))
        assert (await worker(bridge).tick()).warned == 1
        await webhook_delivery.deliver_due(bridge)
        change_hard_expiry(bridge, auth.id, now + timedelta(days=60))  # reconnected meanwhile
        bridge.clock = lambda: now + timedelta(days=2)
        assert await webhook_delivery.deliver_due(bridge) == 1

    assert (len(wide.requests), len(plain.requests)) == (1, 0)
    with bridge.session() as session:
        [held] = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == plain_id)
        )
    assert held.status is DeliveryStatus.FAILED
    assert held.last_error == "not sent: the authentication's hard expiry changed since the warning"


async def test_two_workers_warn_once(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    auths = [
        make_auth(bridge, environment, hard_expires_at=now + timedelta(days=1, minutes=n))
        for n in range(8)
    ]

    reports = await asyncio.gather(worker(bridge).tick(), worker(bridge).tick())

    assert sum(report.warned for report in reports) == len(auths)
    assert sorted(w["authId"] for w in sent(bridge, events.EXPIRING)) == sorted(
        auth.id for auth in auths
    )


async def test_an_auth_past_its_hard_expiry_becomes_expired_once(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    auth = make_auth(bridge, environment, hard_expires_at=now + timedelta(days=1))
    assert (await worker(bridge).tick()).warned == 1

    bridge.clock = lambda: now + timedelta(days=1, seconds=1)
    report = await worker(bridge).tick()
    again = await worker(bridge).tick()

    assert (report.expired, again.expired) == (1, 0)
    expired = get(bridge, auth.id)
    assert expired is not None
    assert expired.status is AuthStatus.EXPIRED
    assert expired.last_error is not None
    assert "expired" in expired.last_error
    (payload,) = sent(bridge, events.EXPIRED)
    assert payload["authId"] == auth.id
    assert payload["status"] == "expired"
    assert payload["external_user_id"] == "user-1"
    assert payload["service_name"] == "sandbox-apikey"
    assert payload["authentication_name"] == "sandbox-apikey of user-1"
    assert payload["user_id"] == auth.end_user_id
    assert len(sent(bridge, events.EXPIRING)) == 1  # not warned again once expired


async def test_an_auth_found_past_its_hard_expiry_is_expired_without_a_warning(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    auth = make_auth(bridge, environment, hard_expires_at=now - timedelta(hours=1))

    report = await worker(bridge).tick()

    assert (report.warned, report.expired) == (0, 1)
    assert sent(bridge, events.EXPIRING) == []
    assert [payload["authId"] for payload in sent(bridge, events.EXPIRED)] == [auth.id]


async def test_a_due_auth_past_its_hard_expiry_is_expired_not_refreshed(
    bridge: Bridge, environment: Environment, sandbox: str
) -> None:
    auth = due_oauth_auth(bridge, environment, sandbox)
    change_hard_expiry(bridge, auth.id, bridge.now() - timedelta(seconds=1))

    report = await worker(bridge).tick()

    assert report.expired == 1
    assert report.outcomes == {}
    assert refresh_requests(sandbox) == 0
    assert stored(bridge, auth.id)[0].status is AuthStatus.EXPIRED


async def test_an_auth_under_a_refresh_lease_is_expired_after_the_refresh(
    bridge: Bridge, environment: Environment, now: datetime
) -> None:
    auth = make_auth(bridge, environment, hard_expires_at=now - timedelta(seconds=1))
    with bridge.session() as session:
        taken = RefreshRepository(session, bridge.keyring).acquire_lease(
            auth.id,
            "another-process",
            now=now - timedelta(seconds=2),
            duration=timedelta(minutes=1),
        )
        assert taken is not None

    assert (await worker(bridge).tick()).expired == 0
    bridge.clock = lambda: now + timedelta(minutes=2)  # the lease ran out
    assert (await worker(bridge).tick()).expired == 1


# -- scheduled deletion -----------------------------------------------------------------------


@pytest.fixture
def recorder() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def revoke_url(recorder: RecordingApp) -> Iterator[str]:
    with serve(recorder) as url:
        yield url + "/oauth/revoke"


@pytest.fixture
def revoking(bridge: Bridge, environment: Environment, tmp_path: Path, revoke_url: str) -> Bridge:
    """The bridge with one OAuth 2 connector that declares an RFC 7009 ``revoke_url``."""
    folder = tmp_path / "revoking" / "test" / REVOKING
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text(
        "type: oauth2\n"
        "definition:\n"
        "  auth_url: http://127.0.0.1:9/authorize\n"
        "  request_access_token: http://127.0.0.1:9/token\n"
        f"  revoke_url: {revoke_url}\n"
        "  client_authentication: basic\n",
        encoding="utf-8",
    )
    (folder / "manifest.yaml").write_text(f"key: {REVOKING}\nlabel: Revoking\n", "utf-8")
    with bridge.session() as session:
        ConnectorConfigRepository(session, bridge.keyring).upsert(
            environment.id, REVOKING, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
    registry = Registry.load([tmp_path / "revoking"], include_catalog=False)
    revoking = replace(bridge, registry=registry)
    moment = bridge.now().replace(microsecond=0)
    revoking.clock = lambda: moment
    return revoking


def oauth_auth(
    bridge: Bridge, environment: Environment, *, delete_at: datetime, refresh_token: bool = True
) -> Authentication:
    credentials = {"access_token": "at-1", "token_type": "Bearer"}
    if refresh_token:
        credentials["refresh_token"] = "rt-1"
    return make_auth(
        bridge,
        environment,
        connector_key=REVOKING,
        auth_type="oauth2",
        credentials=credentials,
        delete_at=delete_at,
    )


def form(received: Received) -> dict[str, str]:
    return dict(parse_qsl(received.body.decode("ascii")))


async def test_a_scheduled_deletion_revokes_the_token_then_deletes_on_time(
    revoking: Bridge, environment: Environment, recorder: RecordingApp
) -> None:
    now = revoking.now()
    auth = oauth_auth(revoking, environment, delete_at=now + timedelta(hours=1))

    early = await worker(revoking).tick()
    assert early.deleted == 0
    assert recorder.requests == []
    assert get(revoking, auth.id) is not None

    revoking.clock = lambda: now + timedelta(hours=1)
    report = await worker(revoking).tick()

    assert (report.deleted, report.revoked, report.revocation_failed) == (1, 1, 0)
    assert get(revoking, auth.id) is None
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.path == "/oauth/revoke"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {"token": "rt-1", "token_type_hint": "refresh_token"}
    scheme, encoded = request.headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "rev-client:rev+secret%3Ax"  # RFC 6749 §2.3.1
    (payload,) = sent(revoking, events.DELETED)
    assert payload["authId"] == auth.id
    assert payload["service_name"] == REVOKING
    assert payload["authentication_name"] == f"{REVOKING} of user-1"
    assert payload["external_user_id"] == "user-1"
    assert payload["user_id"] == auth.end_user_id
    assert payload["reason"] == "scheduled"
    with revoking.session() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.target_id == auth.id)).all()
    assert [(event.actor, event.action) for event in audit] == [
        ("worker", "authentication.deleted")
    ]


async def test_a_failed_revocation_does_not_stop_the_deletion(
    revoking: Bridge, environment: Environment, recorder: RecordingApp
) -> None:
    recorder.reply = lambda received: JSONResponse({"error": "unavailable"}, status_code=503)
    auth = oauth_auth(revoking, environment, delete_at=revoking.now(), refresh_token=False)

    report = await worker(revoking).tick()

    assert (report.deleted, report.revoked, report.revocation_failed) == (1, 0, 1)
    assert get(revoking, auth.id) is None
    (request,) = recorder.requests
    assert form(request) == {"token": "at-1", "token_type_hint": "access_token"}
    assert len(sent(revoking, events.DELETED)) == 1


async def test_auths_without_a_revocation_endpoint_are_deleted_too(
    revoking: Bridge, environment: Environment, recorder: RecordingApp
) -> None:
    # One of a connector without revoke_url, one of a connector no longer installed.
    unknown = make_auth(revoking, environment, delete_at=revoking.now())
    unconfigured = oauth_auth(revoking, environment, delete_at=revoking.now())
    with revoking.session() as session:
        ConnectorConfigRepository(session, revoking.keyring).upsert(environment.id, REVOKING)

    report = await worker(revoking).tick()

    assert (report.deleted, report.revoked, report.revocation_failed) == (2, 0, 0)
    assert get(revoking, unknown.id) is None
    assert get(revoking, unconfigured.id) is None
    assert recorder.requests == []  # no client id configured: nothing to authenticate with
    assert len(sent(revoking, events.DELETED)) == 2


async def test_two_workers_delete_and_revoke_each_auth_once(
    revoking: Bridge, environment: Environment, recorder: RecordingApp
) -> None:
    auths = [
        oauth_auth(revoking, environment, delete_at=revoking.now() - timedelta(minutes=n))
        for n in range(6)
    ]
    workers = [
        Worker(revoking, Refresher(revoking), settings=WorkerSettings(deletion_concurrency=2))
        for _ in range(2)
    ]

    reports = await asyncio.gather(*(w.tick() for w in workers))

    assert sum(report.deleted for report in reports) == len(auths)
    assert len(recorder.requests) == len(auths)
    assert sorted(payload["authId"] for payload in sent(revoking, events.DELETED)) == sorted(
        auth.id for auth in auths
    )
    assert all(get(revoking, auth.id) is None for auth in auths)


async def test_an_auth_scheduled_for_later_is_served_until_then(
    revoking: Bridge, environment: Environment
) -> None:
    now = revoking.now()
    auth = make_auth(revoking, environment, delete_at=now + timedelta(seconds=30))

    assert (await worker(revoking).tick()).deleted == 0
    revoking.clock = lambda: now + timedelta(seconds=29)
    assert (await worker(revoking).tick()).deleted == 0
    revoking.clock = lambda: now + timedelta(seconds=30)
    assert (await worker(revoking).tick()).deleted == 1
    assert get(revoking, auth.id) is None


# -- revocation as the provider describes it (issue 13: GitHub's DELETE …/grant) --------------

GITHUB_TOKEN = "gho_revoke_me_123"


@pytest.fixture
def github(
    bridge: Bridge, environment: Environment, tmp_path: Path, recorder: RecordingApp
) -> Iterator[Bridge]:
    """The bridge with the catalog's GitHub connector, its api.github.com aimed at a loopback
    server that records the revocation and answers 204."""
    recorder.reply = lambda received: Response(status_code=204)
    with serve(recorder) as url:
        folder = tmp_path / "gh" / "authbridge" / "github"
        shutil.copytree(CATALOG / "authbridge" / "github", folder)
        auth_yaml = folder / "auth.yaml"
        original = auth_yaml.read_text("utf-8")
        assert "https://api.github.com/applications/{{client_id}}/grant" in original
        auth_yaml.write_text(original.replace("https://api.github.com", url), "utf-8")
        with bridge.session() as session:
            ConnectorConfigRepository(session, bridge.keyring).upsert(
                environment.id, "github", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
            )
        registry = Registry.load([tmp_path / "gh"], include_catalog=False)
        yield replace(bridge, registry=registry)


def github_auth(bridge: Bridge, environment: Environment) -> Authentication:
    return make_auth(
        bridge,
        environment,
        connector_key="github",
        auth_type="oauth2",
        credentials={"access_token": GITHUB_TOKEN, "token_type": "bearer"},
        delete_at=bridge.now(),
    )


async def test_a_github_deletion_revokes_the_grant_with_delete_basic_auth_and_json(
    github: Bridge, environment: Environment, recorder: RecordingApp
) -> None:
    auth = github_auth(github, environment)

    report = await worker(github).tick()

    assert (report.deleted, report.revoked, report.revocation_failed) == (1, 1, 0)
    assert get(github, auth.id) is None
    (request,) = recorder.requests
    assert request.method == "DELETE"
    assert request.path == f"/applications/{CLIENT_ID}/grant"
    scheme, encoded = request.headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"access_token": GITHUB_TOKEN}
    assert len(sent(github, events.DELETED)) == 1


async def test_a_refused_github_revocation_is_logged_with_its_reason_and_the_auth_deleted(
    github: Bridge,
    environment: Environment,
    recorder: RecordingApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder.reply = lambda received: JSONResponse({"message": "Bad credentials"}, status_code=422)
    auth = github_auth(github, environment)

    with caplog.at_level(logging.WARNING, logger="authbridge"):
        report = await worker(github).tick()

    assert (report.deleted, report.revoked, report.revocation_failed) == (1, 0, 1)
    assert get(github, auth.id) is None
    assert len(recorder.requests) == 1
    (line,) = [r.getMessage() for r in caplog.records if "revocation failed" in r.getMessage()]
    assert f"auth_id={auth.id}" in line
    assert "422" in line
    assert "Bad credentials" in line
    assert GITHUB_TOKEN not in caplog.text
    assert CLIENT_SECRET not in caplog.text
    assert len(sent(github, events.DELETED)) == 1


async def test_a_revocation_in_code_is_given_the_context_and_its_failure_does_not_stop_deletion(
    bridge: Bridge,
    environment: Environment,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "coded" / "test" / REVOKING
    folder.mkdir(parents=True)
    (folder / "auth.py").write_text(
        "revoked = []\n"
        "\n"
        "async def revocation(context):\n"
        "    if context.access_token == 'at-bad':\n"
        "        raise RuntimeError('provider said no to ' + context.access_token)\n"
        "    revoked.append((context.client_id, context.access_token))\n"
        "\n"
        "type = 'oauth2'\n"
        "definition = {\n"
        "    'auth_url': 'http://127.0.0.1:9/authorize',\n"
        "    'request_access_token': 'http://127.0.0.1:9/token',\n"
        "    'revocation': revocation,\n"
        "}\n",
        encoding="utf-8",
    )
    (folder / "manifest.yaml").write_text(f"key: {REVOKING}\nlabel: Coded\n", "utf-8")
    with bridge.session() as session:
        ConnectorConfigRepository(session, bridge.keyring).upsert(
            environment.id, REVOKING, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
    coded = replace(bridge, registry=Registry.load([tmp_path / "coded"], include_catalog=False))
    definition = coded.registry.get(REVOKING).definition()
    revoked = definition.revocation.__globals__["revoked"]
    good = oauth_auth(coded, environment, delete_at=coded.now(), refresh_token=False)
    bad = make_auth(
        coded,
        environment,
        connector_key=REVOKING,
        auth_type="oauth2",
        credentials={"access_token": "at-bad"},
        delete_at=coded.now(),
        external_user_id="user-2",
    )

    with caplog.at_level(logging.WARNING, logger="authbridge"):
        report = await worker(coded).tick()

    assert (report.deleted, report.revoked, report.revocation_failed) == (2, 1, 1)
    assert revoked == [(CLIENT_ID, "at-1")]
    assert get(coded, good.id) is None
    assert get(coded, bad.id) is None
    (line,) = [r.getMessage() for r in caplog.records if "revocation failed" in r.getMessage()]
    assert f"auth_id={bad.id}" in line
    assert "provider said no" in line
    assert "at-bad" not in line
