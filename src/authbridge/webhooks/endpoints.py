"""``/v1/webhook-endpoints``, ``/v1/webhook-deliveries``, ``/v1/webhook-events`` (master token).

An endpoint's signing secret is in the answer that creates it (or rotates it) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.api.schemas import PageOut
from authbridge.services.bridge import Bridge
from authbridge.storage.models import DeliveryStatus, WebhookDelivery
from authbridge.storage.pagination import MAX_PAGE_SIZE
from authbridge.webhooks import delivery as webhook_delivery
from authbridge.webhooks import redelivery
from authbridge.webhooks import service as webhooks
from authbridge.webhooks.schemas import (
    IssuedWebhookEndpointOut,
    RedeliveryIn,
    RedeliveryOut,
    WebhookDeliveryOut,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
    WebhookEventOut,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=512)]
Id = Annotated[str | None, Query(max_length=64)]


def _issued(issued: webhooks.IssuedEndpoint) -> IssuedWebhookEndpointOut:
    shown = WebhookEndpointOut.of(issued.record).model_dump()
    return IssuedWebhookEndpointOut(**shown, secret=issued.secret)


def _deliveries(
    bridge: Bridge, session: Session, deliveries: Sequence[WebhookDelivery]
) -> list[WebhookDeliveryOut]:
    types = webhooks.event_types_of(bridge.keyring, session, deliveries)
    return [WebhookDeliveryOut.of(d, types.get(d.event_id, "")) for d in deliveries]


@router.post("/webhook-endpoints", status_code=201, summary="Add a webhook endpoint")
def create_endpoint(
    body: WebhookEndpointIn, bridge: BridgeDep, token: TokenDep
) -> IssuedWebhookEndpointOut:
    """The answer holds the endpoint's signing secret, this once; store it safely.

    Messages are signed with the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
    `webhook-signature`); verify them with any Standard Webhooks library and this secret.
    """
    with transaction(bridge, token, master=True) as (session, principal):
        issued = webhooks.create_endpoint(
            bridge.keyring,
            session,
            principal.environment_id,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            payload_format=body.payload_format,
            expiry_warning_days=body.expiry_warning_days,
            now=bridge.now(),
            policy=bridge.http.policy,
        )
        return _issued(issued)


@router.get("/webhook-endpoints", summary="List webhook endpoints")
def list_endpoints(
    bridge: BridgeDep, token: TokenDep, limit: Limit = 50, cursor: Cursor = None
) -> PageOut[WebhookEndpointOut]:
    with transaction(bridge, token, master=True) as (session, principal):
        page = webhooks.endpoints_page(
            bridge.keyring, session, principal.environment_id, limit=limit, cursor=cursor
        )
        return PageOut(
            items=[WebhookEndpointOut.of(item) for item in page.items],
            next_cursor=page.next_cursor,
        )


@router.get("/webhook-endpoints/{endpoint_id}", summary="Get a webhook endpoint")
def get_endpoint(endpoint_id: str, bridge: BridgeDep, token: TokenDep) -> WebhookEndpointOut:
    with transaction(bridge, token, master=True) as (session, principal):
        endpoint = webhooks.get_endpoint(
            bridge.keyring, session, principal.environment_id, endpoint_id
        )
        return WebhookEndpointOut.of(endpoint)


@router.patch("/webhook-endpoints/{endpoint_id}", summary="Change a webhook endpoint")
def update_endpoint(
    endpoint_id: str, body: WebhookEndpointUpdate, bridge: BridgeDep, token: TokenDep
) -> WebhookEndpointOut:
    """Only the fields sent change. `event_types: []` subscribes to every event; an empty
    `description` removes it; `expiry_warning_days: null` goes back to the connector's window.

    A disabled endpoint's pending deliveries end as failed, and events written while it is
    disabled get a failed delivery: enabling it again sends none of them by itself; redeliver
    them with `POST /v1/webhook-endpoints/{endpoint_id}/redeliver` (`failed_only`)."""
    with transaction(bridge, token, master=True) as (session, principal):
        endpoint = webhooks.update_endpoint(
            bridge.keyring,
            session,
            principal.environment_id,
            endpoint_id,
            url=body.url,
            event_types=body.event_types,
            enabled=body.enabled,
            description=body.description,
            payload_format=body.payload_format,
            expiry_warning_days=(
                body.expiry_warning_days
                if "expiry_warning_days" in body.model_fields_set
                else webhooks.UNSET
            ),
            now=bridge.now(),
            policy=bridge.http.policy,
        )
        return WebhookEndpointOut.of(endpoint)


@router.delete(
    "/webhook-endpoints/{endpoint_id}", status_code=204, summary="Delete a webhook endpoint"
)
def delete_endpoint(endpoint_id: str, bridge: BridgeDep, token: TokenDep) -> Response:
    """Its pending deliveries are dropped with it."""
    with transaction(bridge, token, master=True) as (session, principal):
        webhooks.delete_endpoint(bridge.keyring, session, principal.environment_id, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    summary="Rotate a webhook endpoint's signing secret",
)
def rotate_secret(endpoint_id: str, bridge: BridgeDep, token: TokenDep) -> IssuedWebhookEndpointOut:
    """The answer holds the new secret, this once. For 24 hours messages carry a signature
    with the old secret as well, so receivers can switch over."""
    with transaction(bridge, token, master=True) as (session, principal):
        issued = webhooks.rotate_secret(
            bridge.keyring, session, principal.environment_id, endpoint_id, now=bridge.now()
        )
        return _issued(issued)


@router.post("/webhook-endpoints/{endpoint_id}/test", summary="Send a test event")
async def send_test_event(
    endpoint_id: str, bridge: BridgeDep, token: TokenDep
) -> WebhookDeliveryOut:
    """Send a `webhook.test` event to this endpoint now (whatever its event filter) and answer
    with the delivery; when the attempt fails it is retried like any other delivery."""

    def start() -> webhook_delivery.Job:
        with transaction(bridge, token, master=True) as (session, principal):
            return webhooks.start_test(bridge, session, principal.environment_id, endpoint_id)

    job = await run_in_threadpool(start)
    await webhook_delivery.run_job(bridge, job)

    def read() -> WebhookDeliveryOut:
        with transaction(bridge, token, master=True) as (session, principal):
            delivery = webhooks.get_delivery(
                bridge.keyring, session, principal.environment_id, job.delivery_id
            )
            if delivery is None:
                raise errors.NotFound(f"webhook endpoint '{endpoint_id}' not found")
            return _deliveries(bridge, session, [delivery])[0]

    return await run_in_threadpool(read)


@router.post(
    "/webhook-endpoints/{endpoint_id}/events/{event_id}/redeliver",
    status_code=202,
    summary="Redeliver one event to a webhook endpoint",
)
def redeliver_event(
    endpoint_id: str, event_id: str, bridge: BridgeDep, token: TokenDep
) -> WebhookDeliveryOut:
    """Queue the event again for this endpoint, whatever became of it before (also long after
    its 24 hours of retries): a new pending delivery, sent by the worker and retried for 24
    hours from now, with the same `webhook-id`. An event already waiting for a delivery to the
    endpoint is answered with that delivery. The endpoint must be enabled (409)."""
    with transaction(bridge, token, master=True) as (session, principal):
        delivery, _ = redelivery.redeliver_event(
            bridge.keyring,
            session,
            principal.environment_id,
            endpoint_id,
            event_id,
            now=bridge.now(),
        )
        return _deliveries(bridge, session, [delivery])[0]


@router.post(
    "/webhook-endpoints/{endpoint_id}/redeliver",
    status_code=202,
    summary="Redeliver a webhook endpoint's events in a time range",
)
def redeliver_range(
    endpoint_id: str, body: RedeliveryIn, bridge: BridgeDep, token: TokenDep
) -> RedeliveryOut:
    """Queue again the events created in `[since, until)` that were for this endpoint (sent,
    failed or waiting; with `failed_only`, those whose every delivery to it failed, including
    those written while it was disabled), oldest first, at most `limit` per call: while
    `next_cursor` is not null, call again with it. The worker sends them; events already
    waiting for a delivery are left alone (`already_pending`). Events are kept 30 days."""
    with transaction(bridge, token, master=True) as (session, principal):
        now = bridge.now()
        result = redelivery.redeliver_range(
            bridge.keyring,
            session,
            principal.environment_id,
            endpoint_id,
            since=body.since,
            until=body.until or now,
            failed_only=body.failed_only,
            now=now,
            limit=body.limit,
            cursor=body.cursor,
        )
        return RedeliveryOut(
            queued=result.queued,
            already_pending=result.already_pending,
            next_cursor=result.next_cursor,
        )


@router.get("/webhook-deliveries", summary="List webhook deliveries")
def list_deliveries(
    bridge: BridgeDep,
    token: TokenDep,
    endpoint_id: Id = None,
    event_id: Id = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    status: DeliveryStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PageOut[WebhookDeliveryOut]:
    """Each event to each endpoint, with its attempts and outcome, oldest first."""
    with transaction(bridge, token, master=True) as (session, principal):
        page = webhooks.deliveries_page(
            bridge.keyring,
            session,
            principal.environment_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            status=status,
            limit=limit,
            cursor=cursor,
        )
        return PageOut(items=_deliveries(bridge, session, page.items), next_cursor=page.next_cursor)


@router.get("/webhook-events", summary="List webhook events")
def list_events(
    bridge: BridgeDep,
    token: TokenDep,
    type: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PageOut[WebhookEventOut]:
    """The outbox: every event recorded, whether or not an endpoint received it, oldest first."""
    with transaction(bridge, token, master=True) as (session, principal):
        page = webhooks.events_page(
            bridge.keyring,
            session,
            principal.environment_id,
            event_type=type,
            limit=limit,
            cursor=cursor,
        )
        return PageOut(
            items=[WebhookEventOut.of(event) for event in page.items],
            next_cursor=page.next_cursor,
        )
