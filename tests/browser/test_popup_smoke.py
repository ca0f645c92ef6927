"""Smoke test of the machinery the connect-popup tests need.

A host page on one origin opens a popup on another; the popup posts a message to its opener,
addressed to the host's origin, and closes itself; the host page accepts the message only from
the popup's origin and shows it. Both origins are real loopback servers.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.support.loopback import serve

pytestmark = pytest.mark.browser

HOST_PAGE = """<!doctype html>
<title>host</title>
<button id="connect">Connect</button>
<pre id="received"></pre>
<script>
  const popupUrl = %(popup_url)s;
  const popupOrigin = new URL(popupUrl).origin;
  document.getElementById("connect").addEventListener("click", () => {
    window.connectPopup = window.open(popupUrl, "connect", "popup,width=480,height=640");
  });
  window.addEventListener("message", (event) => {
    if (event.origin !== popupOrigin) return;
    document.getElementById("received").textContent =
      JSON.stringify({origin: event.origin, data: event.data});
  });
</script>
"""

POPUP_PAGE = """<!doctype html>
<title>popup</title>
<script>
  window.opener.postMessage({authId: "x"}, %(host_origin)s);
  window.close();
</script>
"""


def host_app(origins: dict[str, str]) -> Starlette:
    async def host(request: Request) -> HTMLResponse:
        return HTMLResponse(HOST_PAGE % {"popup_url": json.dumps(origins["popup"] + "/popup")})

    return Starlette(routes=[Route("/", host)])


def popup_app(origins: dict[str, str]) -> Starlette:
    async def popup(request: Request) -> HTMLResponse:
        return HTMLResponse(POPUP_PAGE % {"host_origin": json.dumps(origins["host"])})

    return Starlette(routes=[Route("/popup", popup)])


def test_popup_posts_to_its_opener_across_origins(page: Page) -> None:
    origins: dict[str, str] = {}
    with serve(host_app(origins)) as host, serve(popup_app(origins)) as popup:
        origins.update(host=host, popup=popup)
        assert host != popup

        page.goto(host + "/")
        with page.expect_popup() as opened:
            page.click("#connect")
        popup_page = opened.value
        if not popup_page.is_closed():
            popup_page.wait_for_event("close")

        page.wait_for_function("document.getElementById('received').textContent !== ''")
        assert json.loads(page.text_content("#received") or "") == {
            "origin": popup,
            "data": {"authId": "x"},
        }
        assert page.evaluate("window.connectPopup.closed") is True
