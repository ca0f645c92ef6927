"""``/v1/proxy/{auth_id}/{path}``: a request forwarded to the connector's API, authenticated.

Bodies stream both ways (the request body is copied to a spool as it passes, to be sent again
after a 401); status and headers pass through minus hop-by-hop headers and our own
``Authorization``. A 401 from upstream forces one refresh of renewable credentials and one
retry; every proxied request is audited when its response ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.services import authentications, proxy
from authbridge.services.authentications import RequestCredentials
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.services.refresh import Refresher

router = APIRouter(prefix="/v1/proxy", tags=["proxy"])
log = logging.getLogger("authbridge.proxy")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Refresh outcomes after which the new credentials are worth a second attempt.
RENEWED = frozenset({"refreshed", "shared"})
#: What the audit log records when the caller disconnected before the upstream answered.
CLIENT_CLOSED = 499


class ProxiedResponse(StreamingResponse):
    """The upstream's answer streamed to the caller; when it ends (or the caller goes away),
    the upstream response is closed and the request audited."""

    def __init__(self, upstream: httpx.Response, on_end: AuditCall) -> None:
        super().__init__(self._body(upstream), status_code=upstream.status_code)
        self.raw_headers = proxy.response_headers(upstream.headers.raw)
        self._upstream = upstream
        self._on_end = on_end

    @staticmethod
    async def _body(upstream: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.TransportError as exc:
            # Headers are gone already: all that is left is to cut the connection, so the
            # caller does not take a truncated body for a whole one.
            log.warning("upstream body broke off: %s", type(exc).__name__)
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()
                await self._on_end(self.status_code)


class AuditCall:
    """The audit row of one proxied request, written when it ends."""

    def __init__(self, request: Request, auth_id: str) -> None:
        self.writer = AuditWriter.of(request.app)
        self.auth_id, self.method = auth_id, request.method
        self.started = time.perf_counter()
        self.principal: Principal | None = None  # the caller, once the token was checked
        self.url = ""
        self.retried = False
        self.secrets: list[str] = []

    async def __call__(self, status: int) -> None:
        if self.principal is None:
            return
        call = proxy.proxied_call(
            self.principal,
            self.auth_id,
            method=self.method,
            url=self.url,
            status=status,
            seconds=time.perf_counter() - self.started,
            retried=self.retried,
            secrets=self.secrets,
            at=self.writer.bridge.now(),
        )
        try:
            await self.writer.write(call)
        except Exception:
            # The answer is decided (often sent) already; the failure is the database's.
            log.exception("the audit row of a proxied request could not be written")


class AuditWriter:
    """Writes the audit rows of proxied requests, one transaction for the rows of requests
    that end together (group commit): under load that is one write transaction for many
    requests instead of one each, and each request still waits until its row is stored.

    One per app, made on first use.
    """

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._open: list[proxy.ProxiedCall] = []
        self._stored: asyncio.Future[None] | None = None
        self._turn = asyncio.Lock()

    @classmethod
    def of(cls, app: Any) -> AuditWriter:
        writer: AuditWriter | None = getattr(app.state, "proxy_audit", None)
        if writer is None:
            writer = app.state.proxy_audit = cls(app.state.bridge)
        return writer

    async def write(self, call: proxy.ProxiedCall) -> None:
        self._open.append(call)
        if self._stored is not None:  # a batch is gathering: join it
            await asyncio.shield(self._stored)
            return
        stored = self._stored = asyncio.get_running_loop().create_future()
        try:
            async with self._turn:  # rows keep joining while the previous batch is written
                batch, self._open, self._stored = self._open, [], None
                await run_in_threadpool(self._store, batch)
            stored.set_result(None)
        except BaseException as exc:
            if self._stored is stored:  # cancelled before its turn: the next batch takes its rows
                self._stored = None
            stored.set_exception(exc)
            stored.exception()  # retrieved: the joiners raise it
            raise

    def _store(self, batch: list[proxy.ProxiedCall]) -> None:
        with self.bridge.session() as session:
            proxy.record(session, batch)


async def forward(
    auth_id: str, path: str, request: Request, bridge: BridgeDep, token: TokenDep
) -> Response:
    """Forward the request to the connector's API with the credentials applied.

    The upstream URL is the base URL of the connector's request rules, then the path and query
    string as sent. A 401 from upstream forces one refresh of renewable credentials (OAuth 2,
    password logins) and one retry with the same body; API keys are answered as they are.
    Errors before any upstream answer are problems: 409 without a base URL, 504 when the
    upstream did not answer in time, 502 when it could not be reached or the egress policy
    refused its address.
    """
    refresher: Refresher = request.app.state.refresher
    audit = AuditCall(request, auth_id)
    target = await _read(refresher, bridge, token, auth_id, audit)
    rest = request.scope["raw_path"].decode("latin-1").split("/", 4)[4:]
    attempt = _Attempt(bridge, request, audit, rest[0] if rest else "")
    spool = proxy.BodySpool(request.stream()) if _has_body(request) else None
    try:
        upstream = await attempt.send(target, spool.stream() if spool else None)
        if upstream.status_code == 401 and authentications.can_refresh(
            target.setup.definition, target.credentials
        ):
            try:
                renewed = await _renewed(refresher, bridge, token, auth_id, audit, target)
            except BaseException:
                await upstream.aclose()
                raise
            if renewed is not None:
                await upstream.aclose()
                audit.retried = True
                upstream = await attempt.send(renewed, spool.replay() if spool else None)
    except ClientDisconnect:
        # The caller went away while sending its body: nobody is left to answer.
        with anyio.CancelScope(shield=True):
            await audit(CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    except Exception as exc:
        with anyio.CancelScope(shield=True):
            await audit(getattr(exc, "status", 500))
        raise
    finally:
        if spool is not None:
            spool.close()
    return ProxiedResponse(upstream, audit)


class _Attempt:
    """Sends the caller's request upstream with one set of credentials."""

    def __init__(self, bridge: Bridge, request: Request, audit: AuditCall, path: str) -> None:
        self.bridge, self.request, self.audit, self.path = bridge, request, audit, path
        self.headers = proxy.request_headers(request.scope["headers"])

    async def send(
        self, target: RequestCredentials, body: AsyncIterator[bytes] | None
    ) -> httpx.Response:
        rules = await authentications.request_auth(self.bridge, target)
        url = proxy.upstream_url(rules, self.path, self.request.url.query)
        self.audit.url, self.audit.secrets = url, proxy.secret_values(target.credentials)
        return await proxy.send(
            self.bridge.http, self.request.method, url, self.headers, body, rules
        )


async def _read(
    refresher: Refresher,
    bridge: Bridge,
    token: str,
    auth_id: str,
    audit: AuditCall,
    *,
    after: bool = False,
) -> RequestCredentials:
    def read(after_refresh: bool) -> RequestCredentials:
        with transaction(bridge, token) as (session, principal):
            audit.principal = principal
            return proxy.read_target(
                bridge, session, principal, auth_id, after_refresh=after_refresh or after
            )

    return await authentications.read_fresh(refresher, auth_id, read)


async def _renewed(
    refresher: Refresher,
    bridge: Bridge,
    token: str,
    auth_id: str,
    audit: AuditCall,
    used: RequestCredentials,
) -> RequestCredentials | None:
    """Fresh credentials after a 401, or ``None`` when there are none (answer the 401).

    When the stored credentials changed since they were read (another request refreshed
    them meanwhile), those are used without refreshing again.
    """
    current = await _read(refresher, bridge, token, auth_id, audit, after=True)
    if current.credentials != used.credentials:
        return current
    outcome = await refresher.refresh(auth_id, force=True)
    if outcome.kind not in RENEWED:
        return None
    return await _read(refresher, bridge, token, auth_id, audit, after=True)


def _has_body(request: Request) -> bool:
    headers = request.headers
    return "transfer-encoding" in headers or headers.get("content-length", "0") != "0"


for _method in METHODS:
    router.add_api_route(
        "/{auth_id}/{path:path}",
        forward,
        methods=[_method],
        operation_id=f"proxy_{_method.lower()}",
        summary=f"Proxy a {_method} request to the connector's API",
        response_class=Response,
    )
