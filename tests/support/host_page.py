"""The host's page for browser tests: another origin that opens authbridge pages in a popup.

The page loads ``/static/authbridge.js`` from authbridge and, on a click of ``#connect``, calls
``AuthBridge.connect(url)`` (or the method the test set, :attr:`HostPage.method`: ``configure``
opens the configuration wizard) with the URL the test set last (:attr:`HostPage.url_to_open`);
the promise's result lands in ``#result`` as JSON, its error in ``#error``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.support.loopback import serve

PAGE = """<!doctype html>
<title>host</title>
<script src="%(script)s"></script>
<button id="connect">Connect an account</button>
<pre id="result"></pre>
<pre id="error"></pre>
<script>
  document.getElementById("connect").addEventListener("click", () => {
    AuthBridge[%(method)s](%(url)s, {width: 520, height: 640}).then(
      (result) => { document.getElementById("result").textContent = JSON.stringify(result); },
      (error) => { document.getElementById("error").textContent = error.message; },
    );
  });
</script>
"""


@dataclass
class HostPage:
    """The running host page: its origin, and the authbridge URL its button opens next with
    which ``AuthBridge`` method."""

    url: str
    url_to_open: str = field(default="", repr=False)
    method: Literal["connect", "configure"] = "connect"


@contextmanager
def host_page(authbridge_url: str) -> Iterator[HostPage]:
    """Serve the host page on a loopback origin of its own, next to authbridge at
    ``authbridge_url``."""
    state = HostPage(url="")

    async def page(request: Request) -> HTMLResponse:
        values = {
            "script": f"{authbridge_url}/static/authbridge.js",
            "method": json.dumps(state.method),
            "url": json.dumps(state.url_to_open),
        }
        return HTMLResponse(PAGE % values)

    with serve(Starlette(routes=[Route("/", page)])) as url:
        assert url != authbridge_url
        state.url = url
        yield state
