"""Real HTTP servers on loopback for tests of outbound requests.

``serve(app)`` runs an ASGI app under uvicorn in a background thread, bound to an ephemeral port
on 127.0.0.1 (or another loopback address), and yields its base URL once it accepts
connections. The :func:`loopback` fixture starts as many as a test needs and stops them after.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

STARTUP_TIMEOUT = 10.0


@contextmanager
def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    *,
    lifespan: Literal["auto", "on", "off"] = "off",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[str]:
    """Serve ``app`` on ``host`` and an ephemeral port; yield ``http://host:port``.

    ``lifespan="on"`` runs the app's startup and shutdown (which may close its clients);
    ``tls`` (a certificate and key file, :class:`tests.support.tls.TestCA`) serves HTTPS and
    yields ``https://host:port``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    files = {} if tls is None else {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])}
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False, **files)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.01)
        yield f"{'http' if tls is None else 'https'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
        sock.close()


def port_of(base_url: str) -> int:
    """The port of a base URL ``serve`` yielded."""
    return int(base_url.rsplit(":", 1)[1])


@pytest.fixture
def loopback() -> Iterator[Callable[..., str]]:
    """Start loopback servers: ``base_url = loopback(app)`` (``host=`` another loopback IP)."""
    with ExitStack() as stack:

        def start(app: ASGIApp, host: str = "127.0.0.1") -> str:
            return stack.enter_context(serve(app, host))

        yield start


@dataclass(frozen=True)
class Received:
    """One request as a loopback server saw it (``path`` and ``query`` exactly as sent)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def _default_reply(received: Received) -> Response:
    return JSONResponse({"ok": True})


class RecordingApp:
    """An ASGI app that records every request and answers with ``reply(received)``."""

    def __init__(self, reply: Callable[[Received], Response] = _default_reply) -> None:
        self.reply = reply
        self.requests: list[Received] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        request = Request(scope, receive)
        received = Received(
            method=request.method,
            path=scope["raw_path"].decode("latin-1"),
            query=scope["query_string"].decode("latin-1"),
            headers={
                key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
            },
            body=await request.body(),
        )
        self.requests.append(received)
        await self.reply(received)(scope, receive, send)
