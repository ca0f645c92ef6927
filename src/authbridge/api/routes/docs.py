"""``GET /docs``: the API reference (Swagger UI) over ``/openapi.json``.

Swagger UI is loaded from jsDelivr at one pinned version, each file with its Subresource
Integrity hash (computed from the npm package ``swagger-ui-dist``, which jsDelivr serves byte
for byte): a changed file is refused by the browser instead of run. The page's Content Security
Policy allows scripts from there and from us only (the start-up script is ``/static/docs.js``,
no inline script), and calls to this server only.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from authbridge.api.deps import get_bridge

router = APIRouter()

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0"
#: ``sha384`` of each file of swagger-ui-dist 5.36.0 (``openssl dgst -sha384 -binary | base64``).
SCRIPT_SRI = "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"
STYLE_SRI = "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc"
CDN = "https://cdn.jsdelivr.net"
CSP = (
    f"default-src 'none'; script-src 'self' {CDN}; style-src 'self' {CDN} 'unsafe-inline'; "
    "img-src 'self' data: https:; connect-src 'self'; font-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/docs", include_in_schema=False)
async def reference(request: Request) -> HTMLResponse:
    prefix = urlsplit(get_bridge(request).public_url).path.rstrip("/")
    openapi = escape(f"{prefix}/openapi.json")
    script = escape(f"{prefix}/static/docs.js")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>authbridge API reference</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css"
      integrity="{STYLE_SRI}" crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"
        integrity="{SCRIPT_SRI}" crossorigin="anonymous"></script>
<script src="{script}"></script>
</body>
</html>
"""
    return HTMLResponse(page, headers=HEADERS)
