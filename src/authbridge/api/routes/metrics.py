"""``GET /metrics``: this process's Prometheus metrics, in the text exposition format.

No token is needed (scrapers rarely carry one, and the metrics hold counts only: no id, no
name, nothing secret); the route is left out of the OpenAPI document.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from authbridge.services.metrics import REGISTRY

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(
        generate_latest(REGISTRY),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
