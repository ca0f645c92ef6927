"""``/docs`` loads Swagger UI at one pinned version, each file checked by its SRI hash."""

from __future__ import annotations

import re

import httpx

from tests.support.app import Api


def test_the_reference_pins_every_external_file_with_its_hash(api: Api) -> None:
    page = httpx.get(f"{api.url}/docs")
    assert page.status_code == 200, page.text
    external = re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=\"https://[^>]*>", page.text)
    assert len(external) == 2, page.text
    for tag in external:
        assert "swagger-ui-dist@5.36.0/" in tag, tag
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/]{64}"', tag), tag
        assert 'crossorigin="anonymous"' in tag, tag
    assert "<script>" not in page.text  # no inline script: the CSP allows none
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' https://cdn.jsdelivr.net;" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "connect-src 'self'" in csp
    starter = httpx.get(f"{api.url}/static/docs.js")
    assert starter.status_code == 200
    assert "SwaggerUIBundle" in starter.text
    assert "/openapi.json" in page.text
