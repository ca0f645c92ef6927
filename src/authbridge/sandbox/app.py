"""The sandbox provider as a Starlette app: OAuth 2, OAuth 1.0a, API key and password.

OAuth 2 is :mod:`authbridge.sandbox.oauth2` (``/oauth2/*``, the authorization server's
metadata and ``GET /sandbox/stats``), OAuth 1.0a :mod:`authbridge.sandbox.oauth1`
(``/oauth1/*``). The other services are here: ``GET /apikey/me``
(``X-API-Key: sk_sandbox_...``), ``POST /pwd/login`` and ``GET /pwd/me``.

All state is in memory and guarded by one lock per service.
"""

from __future__ import annotations

import html
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from authbridge.sandbox.oauth1 import PROFILE, OAuth1Sandbox
from authbridge.sandbox.oauth2 import NO_STORE, OAuth2Sandbox, bearer_token
from authbridge.sandbox.settings import SandboxSettings

__all__ = ["API_KEY_PREFIX", "PASSWORD", "PROFILE", "create_app"]

API_KEY_PREFIX = "sk_sandbox_"
PASSWORD = "sandbox"
_PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.5rem}"
)


def page(title: str, body: str) -> HTMLResponse:
    """A self-contained HTML page (``body`` is trusted markup; escape what goes into it)."""
    markup = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · authbridge sandbox</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        "<p><small>authbridge sandbox — a local test provider.</small></p></body></html>"
    )
    return HTMLResponse(markup, headers=_PAGE_HEADERS)


def is_local_url(url: str) -> bool:
    """``url`` is an absolute http(s) URL on localhost or a loopback IP, without a fragment."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.fragment or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class _SimpleServices:
    """The API-key and username/password services."""

    def __init__(self, settings: SandboxSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/apikey/me", self._apikey_me, methods=["GET"]),
            Route("/pwd/login", self._login, methods=["POST"]),
            Route("/pwd/me", self._pwd_me, methods=["GET"]),
        ]

    async def _apikey_me(self, request: Request) -> Response:
        key = request.headers.get("x-api-key", "")
        if not key.startswith(API_KEY_PREFIX) or len(key) == len(API_KEY_PREFIX):
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        return JSONResponse(PROFILE)

    async def _login(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"message": "Expected a JSON body"}, status_code=400)
        username = body.get("username") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(username, str) or not username or not isinstance(password, str):
            return JSONResponse({"message": "username and password are required"}, 400)
        if not secrets.compare_digest(password.encode(), PASSWORD.encode()):
            return JSONResponse({"message": "Invalid username or password"}, status_code=401)
        token = secrets.token_urlsafe(32)
        lifetime = self._settings.token_lifetime
        with self._lock:
            self._sessions[token] = (username, self._clock() + lifetime)
        return JSONResponse({"token": token, "expires": lifetime}, headers=NO_STORE)

    async def _pwd_me(self, request: Request) -> Response:
        token = bearer_token(request)
        with self._lock:
            session = self._sessions.get(token) if token else None
        if session is None or session[1] <= self._clock():
            return JSONResponse({"message": "Invalid or expired token"}, status_code=401)
        username = session[0]
        return JSONResponse(
            {"id": f"pwd-{username}", "username": username, "name": username.title()}
        )


def create_app(
    settings: SandboxSettings | None = None, *, clock: Callable[[], float] = time.time
) -> Starlette:
    """The sandbox provider; ``clock`` (seconds) lets tests move time forward."""
    settings = settings or SandboxSettings()
    oauth2 = OAuth2Sandbox(settings, page, is_local_url, clock)
    oauth1 = OAuth1Sandbox(settings, page, is_local_url, clock)
    services = _SimpleServices(settings, clock)
    return Starlette(routes=[*oauth2.routes(), *oauth1.routes(), *services.routes()])
