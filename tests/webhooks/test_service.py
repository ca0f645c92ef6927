"""Delivering the webhook outbox: signatures, retries with backoff, giving up, claims, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from standardwebhooks import Webhook
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.errors import InvalidInput
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.services import metrics
from authbridge.services.bridge import Bridge
from authbridge.storage.models import (
    Authentication,
    DeliveryStatus,
    Environment,
    WebhookDelivery,
    WebhookEvent,
)
from authbridge.tenancy.repository import EndUserRepository
from authbridge.webhooks import delivery as webhook_delivery
from authbridge.webhooks import events
from authbridge.webhooks import service as webhooks
from authbridge.webhooks.repository import WebhookRepository, new_secret
from tests.support.loopback import Received, RecordingApp, serve

pytestmark = pytest.mark.anyio


# -- helpers -------------------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand (starting at the real time, so signatures verify)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def move(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock(bridge: Bridge) -> Clock:
    clock = Clock()
    bridge.clock = clock
    return clock


def add_endpoint(
    bridge: Bridge,
    environment: Environment,
    url: str,
    event_types: tuple[str, ...] = (),
    **options: Any,
) -> tuple[str, str]:
    """An endpoint; returns its id and its secret."""
    with bridge.session() as session:
        issued = webhooks.create_endpoint(
            bridge.keyring,
            session,
            environment.id,
            url=url,
            event_types=event_types,
            now=bridge.now(),
            policy=bridge.http.policy,
            **options,
        )
        return issued.record.id, issued.secret


def set_enabled(bridge: Bridge, environment: Environment, endpoint_id: str, enabled: bool) -> None:
    with bridge.session() as session:
        webhooks.update_endpoint(
            bridge.keyring, session, environment.id, endpoint_id, enabled=enabled, now=bridge.now()
        )


def new_auth(session: Any, bridge: Bridge, environment: Environment) -> Authentication:
    user = EndUserRepository(session).get_or_create(environment.id, "user-1")
    return AuthenticationRepository(session, bridge.keyring).create(
        environment_id=environment.id,
        end_user_id=user.id,
        connector_key="sandbox-apikey",
        connector_version="1",
        auth_type="api_key",
        name="Sandbox",
        credentials={"api_key": "sk_sandbox_0123456789"},
        now=bridge.now(),
    )


def auth_created(bridge: Bridge, environment: Environment) -> Authentication:
    """An authentication stored and its ``authentication.created`` emitted, in one transaction."""
    with bridge.session() as session:
        auth = new_auth(session, bridge, environment)
        events.emit(bridge, session, events.CREATED, auth)
        return auth


def deliveries(bridge: Bridge) -> list[WebhookDelivery]:
    with bridge.session() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


def only_delivery(bridge: Bridge) -> WebhookDelivery:
    [delivery] = deliveries(bridge)
    return delivery


def replies(*statuses: int) -> Callable[[Received], Response]:
    """Answer with these statuses in turn (the last one from then on)."""
    remaining = list(statuses)

    def reply(_received: Received) -> Response:
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return Response("{}", status_code=status, media_type="application/json")

    return reply


@contextmanager
def receiver(reply: Callable[[Received], Response] | None = None) -> Iterator[tuple[str, Any]]:
    app = RecordingApp(reply) if reply is not None else RecordingApp()
    with serve(app) as url:
        yield url + "/hooks?via=test", app


def delivered(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "authbridge_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


# -- delivering ----------------------------------------------------------------------------------


async def test_an_event_is_delivered_signed_with_standard_webhooks(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (url, app):
        _, secret = add_endpoint(bridge, environment, url)
        auth = auth_created(bridge, environment)
        succeeded_before = delivered("succeeded")

        assert await webhook_delivery.deliver_due(bridge) == 1

    [request] = app.requests
    assert request.method == "POST"
    assert request.path == "/hooks"
    assert request.query == "via=test"
    assert request.headers["content-type"] == "application/json"
    message = Webhook(secret).verify(request.body, request.headers)
    assert message["type"] == events.CREATED
    assert message["data"]["authId"] == auth.id
    assert message["data"]["external_user_id"] == "user-1"
    assert message["data"]["service_name"] == "sandbox-apikey"
    assert datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")) == auth.created_at
    with bridge.session() as session:
        [event] = session.scalars(select(WebhookEvent))
    assert request.headers["webhook-id"] == event.id
    assert int(request.headers["webhook-timestamp"]) == int(clock.now.timestamp())
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(request.body, request.headers)
    delivery = only_delivery(bridge)
    assert delivery.status is DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.last_error is None
    assert delivery.next_attempt_at is None
    assert delivered("succeeded") == succeeded_before + 1
    assert await webhook_delivery.deliver_due(bridge) == 0  # nothing left to send


async def test_an_endpoint_receives_only_the_events_it_asked_for(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (all_url, all_app), receiver() as (deleted_url, deleted_app):
        everything, _ = add_endpoint(bridge, environment, all_url)
        only_deleted, _ = add_endpoint(bridge, environment, deleted_url, (events.DELETED,))
        auth = auth_created(bridge, environment)
        with bridge.session() as session:
            stored = AuthenticationRepository(session, bridge.keyring).get_any(auth.id)
            assert stored is not None
            events.emit(bridge, session, events.DELETED, stored, reason="deleted")

        assert await webhook_delivery.deliver_due(bridge) == 3

    assert sorted(d.endpoint_id for d in deliveries(bridge)) == sorted(
        [everything, everything, only_deleted]
    )
    assert len(all_app.requests) == 2
    [request] = deleted_app.requests
    assert b'"type":"authentication.deleted"' in request.body


async def test_a_failed_attempt_is_retried_with_backoff_until_it_succeeds(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver(replies(500, 200)) as (url, app):
        add_endpoint(bridge, environment, url)
        auth_created(bridge, environment)
        retrying_before = delivered("retrying")

        assert await webhook_delivery.deliver_due(bridge) == 1
        first = only_delivery(bridge)
        assert first.status is DeliveryStatus.PENDING
        assert first.attempts == 1
        assert first.last_status_code == 500
        assert first.last_error == "the endpoint answered HTTP 500"
        assert first.next_attempt_at is not None
        # full jitter under a first ceiling of 5 seconds (at least 1 second)
        assert clock.now + timedelta(seconds=1) <= first.next_attempt_at
        assert first.next_attempt_at <= clock.now + timedelta(seconds=5)
        assert delivered("retrying") == retrying_before + 1

        assert await webhook_delivery.deliver_due(bridge) == 0  # not due yet
        clock.now = first.next_attempt_at
        assert await webhook_delivery.deliver_due(bridge) == 1

    assert len(app.requests) == 2
    assert app.requests[0].headers["webhook-id"] == app.requests[1].headers["webhook-id"]
    final = only_delivery(bridge)
    assert final.status is DeliveryStatus.SUCCEEDED
    assert final.attempts == 2
    assert final.last_status_code == 200
    assert final.last_error is None


async def test_a_delivery_fails_after_24_hours_of_failures(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver(replies(503)) as (url, app):
        add_endpoint(bridge, environment, url)
        auth = auth_created(bridge, environment)
        deadline = auth.created_at + timedelta(hours=24)
        failed_before = delivered("failed")

        attempts = 0
        while attempts < 500:  # ends well before; a delivery retried forever fails the test
            assert await webhook_delivery.deliver_due(bridge) == 1
            attempts += 1
            delivery = only_delivery(bridge)
            if delivery.status is not DeliveryStatus.PENDING:
                break
            assert delivery.next_attempt_at is not None
            assert delivery.next_attempt_at <= deadline  # the last retry is at the deadline
            clock.now = delivery.next_attempt_at

    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == attempts == len(app.requests)
    assert delivery.last_attempt_at == deadline
    assert delivery.last_status_code == 503
    assert delivery.next_attempt_at is None
    # 5 s doubling, capped at an hour, with full jitter: well over 20 attempts in a day
    assert 20 < attempts < 200
    assert delivered("failed") == failed_before + 1
    clock.move(timedelta(days=2))
    assert await webhook_delivery.deliver_due(bridge) == 0


async def test_a_hanging_endpoint_ends_in_a_retry_not_a_stuck_loop(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    hanging = Hanging()
    with serve(hanging) as base, receiver() as (fast_url, fast_app):
        add_endpoint(bridge, environment, base + "/slow")
        add_endpoint(bridge, environment, fast_url)
        auth_created(bridge, environment)

        started = time.monotonic()
        assert await webhook_delivery.deliver_due(bridge, send_timeout=0.5) == 2
        elapsed = time.monotonic() - started

    assert elapsed < 5
    assert hanging.requests == 1
    assert len(fast_app.requests) == 1  # the slow endpoint did not hold the other one up
    by_status = {d.status: d for d in deliveries(bridge)}
    slow = by_status[DeliveryStatus.PENDING]
    assert slow.attempts == 1
    assert slow.last_status_code is None
    assert slow.last_error == "the endpoint did not answer within 0.5 s"
    assert slow.next_attempt_at is not None
    assert slow.next_attempt_at > clock.now
    assert by_status[DeliveryStatus.SUCCEEDED].attempts == 1


async def test_an_endpoint_that_trickles_its_answer_is_cut_off_at_the_timeout(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):  # each byte well within a read timeout, the whole far beyond it
            yield b" "
            await asyncio.sleep(0.1)

    def slow_body(_received: Received) -> Response:
        return StreamingResponse(trickle(), media_type="application/json")

    with receiver(slow_body) as (url, app):
        add_endpoint(bridge, environment, url)
        auth_created(bridge, environment)

        started = time.monotonic()
        assert await webhook_delivery.deliver_due(bridge, send_timeout=0.5) == 1
        elapsed = time.monotonic() - started

    assert elapsed < 3
    assert len(app.requests) == 1
    delivery = only_delivery(bridge)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_error == "the endpoint did not answer within 0.5 s"


async def test_concurrent_workers_send_each_delivery_once(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (url, app):
        add_endpoint(bridge, environment, url)
        for _ in range(12):
            auth_created(bridge, environment)

        claimed = await asyncio.gather(
            *(webhook_delivery.deliver_due(bridge, limit=5) for _ in range(4))
        )

        assert sum(claimed) == 12
        assert await webhook_delivery.deliver_due(bridge) == 0

    ids = [request.headers["webhook-id"] for request in app.requests]
    assert len(ids) == len(set(ids)) == 12
    assert {d.status for d in deliveries(bridge)} == {DeliveryStatus.SUCCEEDED}


async def test_a_claimed_delivery_is_not_taken_by_another_worker_until_the_claim_ends(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    add_endpoint(bridge, environment, "http://127.0.0.1:9/never")
    auth_created(bridge, environment)
    claim_until = clock.now + timedelta(seconds=60)
    with bridge.session() as session:
        [job] = webhook_delivery.claim(
            bridge, session, now=clock.now, limit=10, claim_until=claim_until
        )
    with bridge.session() as session:
        second = webhook_delivery.claim(
            bridge, session, now=clock.now, limit=10, claim_until=claim_until
        )
    assert second == []
    # a worker that lost its claim (it ran out and another worker took it) stores nothing
    clock.move(timedelta(seconds=61))
    with bridge.session() as session:
        [again] = webhook_delivery.claim(
            bridge, session, now=clock.now, limit=10, claim_until=clock.now + timedelta(minutes=1)
        )
    with bridge.session() as session:
        ok = webhook_delivery.Attempt(200, None)
        assert webhook_delivery.record(bridge, session, job, ok, now=clock.now) == "succeeded"
    delivery = only_delivery(bridge)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.attempts == 0
    assert again.delivery_id == job.delivery_id


async def test_redirects_are_not_followed(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (target_url, target_app):

        def redirect(_received: Received) -> Response:
            return Response(status_code=307, headers={"location": target_url})

        with receiver(redirect) as (url, _):
            add_endpoint(bridge, environment, url)
            auth_created(bridge, environment)
            assert await webhook_delivery.deliver_due(bridge) == 1

    assert target_app.requests == []
    delivery = only_delivery(bridge)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_status_code == 307
    assert delivery.last_error == "the endpoint answered HTTP 307 (redirects are not followed)"


async def test_the_egress_policy_applies_to_webhooks(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (url, app):
        add_endpoint(bridge, environment, url)
        auth_created(bridge, environment)
        async with OutboundClient(EgressPolicy()) as strict:
            assert await webhook_delivery.deliver_due(replace(bridge, http=strict)) == 1

    assert app.requests == []
    delivery = only_delivery(bridge)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_error is not None
    assert "loopback address" in delivery.last_error


async def test_a_disabled_endpoints_pending_deliveries_end_as_failed(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (url, app):
        endpoint_id, _ = add_endpoint(bridge, environment, url)
        auth_created(bridge, environment)
        set_enabled(bridge, environment, endpoint_id, False)
        auth_created(bridge, environment)  # not sent either: failed at once, kept for later

        assert await webhook_delivery.deliver_due(bridge) == 1

    assert app.requests == []
    kept = deliveries(bridge)
    assert len(kept) == 2
    for delivery in kept:
        assert delivery.status is DeliveryStatus.FAILED
        assert delivery.attempts == 0
        assert delivery.next_attempt_at is None
        assert delivery.last_error == "the endpoint is disabled"


async def test_an_unreadable_secret_holds_up_only_its_own_endpoint(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (broken_url, broken_app), receiver() as (url, app):
        broken, _ = add_endpoint(bridge, environment, broken_url)
        add_endpoint(bridge, environment, url)
        with bridge.session() as session:
            endpoint = WebhookRepository(session, bridge.keyring).get_endpoint(
                environment.id, broken
            )
            assert endpoint is not None
            endpoint.secret_ct = endpoint.secret_ct[:-1] + bytes([endpoint.secret_ct[-1] ^ 1])
        auth_created(bridge, environment)

        assert await webhook_delivery.deliver_due(bridge) == 2

    assert broken_app.requests == []
    assert len(app.requests) == 1
    by_endpoint = {d.endpoint_id: d for d in deliveries(bridge)}
    stuck = by_endpoint.pop(broken)
    assert stuck.status is DeliveryStatus.PENDING
    assert stuck.last_error is not None
    assert stuck.last_error.startswith("the signing secret cannot be decrypted")
    [sent] = by_endpoint.values()
    assert sent.status is DeliveryStatus.SUCCEEDED


async def test_after_a_rotation_both_secrets_sign_for_a_while(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (url, app):
        endpoint_id, old = add_endpoint(bridge, environment, url)
        with bridge.session() as session:
            new = webhooks.rotate_secret(
                bridge.keyring, session, environment.id, endpoint_id, now=clock.now
            ).secret
        assert new != old
        auth_created(bridge, environment)
        assert await webhook_delivery.deliver_due(bridge) == 1
        clock.move(timedelta(hours=25))
        auth_created(bridge, environment)
        assert await webhook_delivery.deliver_due(bridge) == 1

    during, after = app.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert (
        after.headers["webhook-signature"]
        == webhook_delivery.signed_headers(
            [new], after.headers["webhook-id"], clock.now, after.body.decode()
        )["webhook-signature"]
    )


# -- the outbox ----------------------------------------------------------------------------------


async def test_a_rolled_back_change_leaves_no_event(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    add_endpoint(bridge, environment, "https://hooks.example.com/in")

    def failing_change() -> None:
        with bridge.session() as session:
            auth = new_auth(session, bridge, environment)
            events.emit(bridge, session, events.CREATED, auth)
            raise RuntimeError("the change fails after the event was written")

    with pytest.raises(RuntimeError, match="the change fails"):
        failing_change()

    with bridge.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
        assert session.scalar(select(func.count()).select_from(Authentication)) == 0

    auth_created(bridge, environment)
    with bridge.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 1
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


async def test_the_secret_is_stored_encrypted_and_never_logged(
    bridge: Bridge, environment: Environment, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiver(replies(500)) as (url, _):
        endpoint_id, secret = add_endpoint(bridge, environment, url)
        auth_created(bridge, environment)
        assert await webhook_delivery.deliver_due(bridge) == 1

    key = secret.removeprefix("whsec_")
    assert secret.startswith("whsec_")
    assert len(Webhook(secret)._whsecret) == 32  # 32 random bytes
    with bridge.session() as session:
        rows = [tuple(row) for row in session.execute(text("SELECT * FROM webhook_endpoints"))]
        rows += [tuple(row) for row in session.execute(text("SELECT * FROM webhook_deliveries"))]
        endpoint = WebhookRepository(session, bridge.keyring).get_endpoint(
            environment.id, endpoint_id
        )
        assert endpoint is not None
        assert "whsec_" not in repr(endpoint)
    dumped = repr(rows).encode() + b"".join(v for row in rows for v in row if isinstance(v, bytes))
    assert key.encode() not in dumped
    assert key[:16].encode() not in dumped
    assert key not in caplog.text


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/", "https://"),
        ("https://", "host"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com/#frag", "fragment"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com:99999/", "valid URL"),
        ("http://169.254.169.254/latest", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("", "empty"),
    ],
)
async def test_bad_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason) as raised:
        webhooks.check_url(url, EgressPolicy())
    assert raised.value.field == "url"


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "127.0.0.1 (written 'localhost'), a loopback address"),
        ("LOCALHOST.", "127.0.0.1 (written 'localhost.'), a loopback address"),
        ("hooks.localhost", "127.0.0.1 (written 'hooks.localhost'), a loopback address"),
        ("127.1", "127.0.0.1 (written '127.1'), a loopback address"),
        ("0", "0.0.0.0 (written '0'), an unspecified address"),
        ("2130706433", "127.0.0.1 (written '2130706433'), a loopback address"),
        ("0x7f000001", "127.0.0.1 (written '0x7f000001'), a loopback address"),
        ("0x7f.1", "127.0.0.1 (written '0x7f.1'), a loopback address"),
        ("[::1]", "::1, a loopback address"),
        ("[::ffff:127.0.0.1]", "127.0.0.1 (written '::ffff:127.0.0.1'), a loopback address"),
        ("10.1", "10.0.0.1 (written '10.1'), a private address"),
        ("2852039166", "169.254.169.254 (written '2852039166'), a link-local address"),
    ],
)
async def test_every_spelling_of_a_local_address_is_refused_when_registered(
    host: str, reason: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        webhooks.check_url(f"http://{host}:8080/hooks", EgressPolicy())
    assert raised.value.field == "url"
    assert reason in raised.value.message
    assert "egress policy does not allow" in raised.value.message


async def test_with_loopback_allowed_its_spellings_pass_and_the_rest_still_do_not() -> None:
    policy = EgressPolicy(allow_loopback=True)  # as the tests' and the sandbox's servers run
    for host in ("localhost", "127.1", "2130706433", "0x7f000001", "[::1]"):
        assert webhooks.check_url(f"http://{host}:8080/", policy) == f"http://{host}:8080/"
    for host, reason in (("0", "unspecified"), ("10.1", "private"), ("0.0.0.0", "unspecified")):
        with pytest.raises(InvalidInput, match=reason):
            webhooks.check_url(f"http://{host}:8080/", policy)
    assert webhooks.check_url("https://hooks.example.com/", EgressPolicy())  # names: when sent


# -- the Tray payload ----------------------------------------------------------------------------


async def test_a_tray_endpoint_gets_the_flat_expired_auth_body_signed(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver() as (tray_url, tray_app), receiver() as (url, app):
        tray_id, secret = add_endpoint(bridge, environment, tray_url, payload_format="tray")
        add_endpoint(bridge, environment, url)
        auth = auth_created(bridge, environment)  # a tray endpoint takes only expiry events
        with bridge.session() as session:
            stored = AuthenticationRepository(session, bridge.keyring).get_any(auth.id)
            assert stored is not None
            hard_expiry = clock.now + timedelta(days=8)
            stored = AuthenticationRepository(session, bridge.keyring).update_credentials(
                stored, {"api_key": "sk_sandbox_0123456789"}, hard_expires_at=hard_expiry
            )
            events.emit(
                bridge, session, events.EXPIRING, stored, hard_expires_at=hard_expiry.isoformat()
            )

        assert await webhook_delivery.deliver_due(bridge) == 3

    [request] = tray_app.requests
    body = Webhook(secret).verify(request.body, request.headers)  # Standard Webhooks headers
    user_id = auth.end_user_id
    assert body == {
        "authentication_name": "Sandbox",
        "service_name": "sandbox-apikey",
        "user_id": user_id,
        "authId": auth.id,
        "external_user_id": "user-1",
    }
    assert list(json.loads(request.body)) == [
        "authentication_name",
        "service_name",
        "user_id",
        "authId",
        "external_user_id",
    ]
    with bridge.session() as session:
        [event] = session.scalars(select(WebhookEvent).where(WebhookEvent.type == events.EXPIRING))
    assert request.headers["webhook-id"] == event.id
    standard = {message["type"]: message for message in (json.loads(r.body) for r in app.requests)}
    assert sorted(standard) == [events.CREATED, events.EXPIRING]
    assert standard[events.EXPIRING]["data"]["hard_expires_at"] == hard_expiry.isoformat()
    with bridge.session() as session:
        endpoint = webhooks.get_endpoint(bridge.keyring, session, environment.id, tray_id)
        assert endpoint.event_types == [events.EXPIRING]


async def test_a_tray_endpoint_takes_only_the_expiry_events(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with pytest.raises(InvalidInput, match="'tray' carries only") as raised:
        add_endpoint(
            bridge, environment, "https://a.example/", (events.CREATED,), payload_format="tray"
        )
    assert raised.value.field == "event_types"
    both = (events.EXPIRING, events.EXPIRED)
    tray_id, _ = add_endpoint(
        bridge, environment, "https://a.example/", both, payload_format="tray"
    )
    plain_id, _ = add_endpoint(bridge, environment, "https://b.example/")

    def change(endpoint_id: str, **fields: Any) -> Any:
        with bridge.session() as session:
            return webhooks.update_endpoint(
                bridge.keyring, session, environment.id, endpoint_id, now=clock.now, **fields
            )

    with pytest.raises(InvalidInput, match=r"not authentication\.created"):
        change(tray_id, event_types=[events.CREATED])
    assert change(plain_id, payload_format="tray").event_types == [events.EXPIRING]
    with pytest.raises(InvalidInput, match="payload_format must be one of standard, tray"):
        change(plain_id, payload_format="xml")
    assert change(tray_id, payload_format="standard").event_types == list(both)
    with pytest.raises(InvalidInput, match="expiry_warning_days") as raised:
        change(tray_id, expiry_warning_days=0)
    assert change(tray_id, expiry_warning_days=10).expiry_warning_days == 10
    assert change(tray_id, expiry_warning_days=None).expiry_warning_days is None


async def test_retry_delays_use_full_jitter_under_a_doubling_ceiling() -> None:
    top = [webhook_delivery.retry_delay(n, rng=lambda _low, high: high) for n in range(1, 14)]
    assert [delay.total_seconds() for delay in top[:5]] == [5, 10, 20, 40, 80]
    assert max(top) == timedelta(hours=1)
    assert webhook_delivery.retry_delay(3, rng=lambda low, _high: low) == timedelta(seconds=1)
    spread = {webhook_delivery.retry_delay(4).total_seconds() for _ in range(50)}
    assert len(spread) > 10
    assert all(1 <= delay <= 40 for delay in spread)


# -- a receiver that never answers ---------------------------------------------------------------


class Hanging:
    """Reads the request, then waits (without answering) until the client goes away."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.requests += 1
        while True:
            message = await asyncio.wait_for(receive(), timeout=30)
            if message["type"] == "http.disconnect":
                return


# -- retention -----------------------------------------------------------------------------------


async def test_old_events_are_pruned_once_no_delivery_waits_on_them(
    bridge: Bridge, environment: Environment, clock: Clock
) -> None:
    with receiver(replies(200, 500)) as (url, _app):
        add_endpoint(bridge, environment, url)
        delivered_event = auth_created(bridge, environment)
        assert await webhook_delivery.deliver_due(bridge) == 1  # 200: succeeded
        failing_event = auth_created(bridge, environment)
        assert await webhook_delivery.deliver_due(bridge) == 1  # 500: pending, retried later
    clock.move(timedelta(days=31))
    recent = auth_created(bridge, environment)

    assert await webhook_delivery.prune_events(bridge, retention=timedelta(days=30)) == 1

    with bridge.session() as session:
        left = {event.payload["authId"] for event in session.scalars(select(WebhookEvent))}
        statuses = {delivery.status for delivery in session.scalars(select(WebhookDelivery))}
    assert delivered_event.id not in left
    assert {failing_event.id, recent.id} <= left
    assert DeliveryStatus.SUCCEEDED not in statuses  # the delivery went with its event
    assert await webhook_delivery.prune_events(bridge, retention=timedelta(days=30)) == 0
