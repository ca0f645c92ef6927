"""``GET /metrics``: this process's Prometheus metrics, in the text exposition format.

A master token is needed (``Authorization: Bearer abk_…``: Prometheus sends one with
``authorization: {credentials: …}`` in its scrape config), unless the server was started with
``AUTHBRIDGE_PUBLIC_METRICS=1`` (``make run`` does). The metrics hold counts only (no id, no
name, nothing secret), but how many accounts an installation holds and how they fail is still
not for anyone to read. The route is left out of the OpenAPI document.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from authbridge.api.deps import bearer_token, caller, get_bridge
from authbridge.services.metrics import REGISTRY

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    if not request.app.state.public_metrics:
        principal = await caller(get_bridge(request), bearer_token(request))
        principal.require_master()
    return Response(
        generate_latest(REGISTRY),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
