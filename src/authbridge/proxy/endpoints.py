"""``/v1/proxy/{auth_id}/{path}``: a request forwarded to the connector's API, authenticated.

Bodies stream both ways (the request body is copied to a spool as it passes, to be sent again
after a 401); status and headers pass through minus hop-by-hop headers and our own
``Authorization``. A 401 from upstream forces one refresh of renewable credentials and one
retry; every proxied request is audited when its response ends.

The database is read once per request, in one read-only transaction (the token, the
authentication, the connector configuration; see :class:`_Reader` for where it runs);
rendered rules come from the process's :class:`proxy.RuleCache`, and audit rows are written in
batches by the app's :class:`~authbridge.services.audit_trail.AuditTrail`, so neither costs
the request a thread hop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from authbridge.api.deps import BridgeDep, TokenDep, bearer_token, caller, plain_params
from authbridge.authentications import freshness
from authbridge.authentications.reads import CredentialReader
from authbridge.proxy import service as proxy
from authbridge.refresh.service import Refresher
from authbridge.services import read_transactions
from authbridge.services.audit_trail import AuditTrail
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal

log = logging.getLogger("authbridge.proxy")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: What the audit log records when the caller disconnected before the upstream answered.
CLIENT_CLOSED = 499
#: Proxied requests reading the database at once: fewer than the connections a database pool
#: keeps (SQLite's keeps 5 and opens and closes any beyond), and plenty for reads this short.
CONCURRENT_READS = 4


class ProxyState:
    """What the proxy keeps per app: the rendered-rules cache, and the app's audit trail."""

    def __init__(self, audit: AuditTrail) -> None:
        self.rules = proxy.RuleCache()
        self.audit = audit
        self.reads = anyio.CapacityLimiter(CONCURRENT_READS)

    @classmethod
    def of(cls, app: Any) -> ProxyState:
        state: ProxyState | None = getattr(app.state, "proxy", None)
        if state is None:
            reader: CredentialReader = app.state.reader
            state = app.state.proxy = cls(reader.trail)
        return state


router = APIRouter(prefix="/v1/proxy", tags=["proxy"])


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


class BufferedResponse(Response):
    """A small upstream answer read whole (:func:`proxy.small_body`), sent in one piece; then
    the upstream response is closed and the request audited."""

    def __init__(self, upstream: httpx.Response, body: bytes, on_end: AuditCall) -> None:
        super().__init__(body, status_code=upstream.status_code)
        self.raw_headers = proxy.response_headers(upstream.headers.raw)
        self._upstream = upstream
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()
                await self._on_end(self.status_code)


class AuditCall:
    """The audit row of one proxied request, queued when it ends."""

    def __init__(self, writer: AuditTrail, request: Request, auth_id: str) -> None:
        self.writer = writer
        self.auth_id, self.method = auth_id, request.method
        self.started = time.perf_counter()
        self.principal: Principal | None = None  # the caller, once the token was checked
        self.url = ""
        self.retried = False
        self.secrets: tuple[str, ...] = ()

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
        await self.writer.add(proxy.audit_entry(call))


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
    state = ProxyState.of(request.app)
    audit = AuditCall(state.audit, request, auth_id)
    reader = _Reader(bridge, refresher, state, token, auth_id, audit)
    target = await reader.read()
    rest = request.scope["raw_path"].decode("latin-1").split("/", 4)[4:]
    attempt = _Attempt(bridge, state.rules, request, audit, rest[0] if rest else "")
    spool = proxy.BodySpool(request.stream()) if _has_body(request) else None
    try:
        prepared = await attempt.prepare(target)
        upstream = await attempt.send(prepared, spool.stream() if spool else None)
        if upstream.status_code == 401 and prepared.renewable:
            try:
                renewed = await _renewed(refresher, reader, target)
            except BaseException:
                await upstream.aclose()
                raise
            if renewed is not None:
                await upstream.aclose()
                audit.retried = True
                prepared = await attempt.prepare(renewed)
                upstream = await attempt.send(prepared, spool.replay() if spool else None)
        try:
            body = await proxy.small_body(upstream)
        except BaseException:
            await upstream.aclose()
            raise
    except ClientDisconnect as exc:
        # The caller went away while sending its body, or its body passed the limit and was
        # answered 413 (api.limits.BodyTooLarge): nobody is left to answer.
        status = getattr(exc, "status", CLIENT_CLOSED)
        with anyio.CancelScope(shield=True):
            await audit(status)
        return Response(status_code=status)
    except Exception as exc:
        with anyio.CancelScope(shield=True):
            await audit(getattr(exc, "status", 500))
        raise
    finally:
        if spool is not None:
            spool.close()
    if body is not None:
        return BufferedResponse(upstream, body, audit)
    return ProxiedResponse(upstream, audit)


async def endpoint(request: Request) -> Response:
    """:func:`forward` as a plain Starlette endpoint, routed before the API's routes (see
    :func:`authbridge.api.app.create_app`); the FastAPI routes document it."""
    await plain_params(request)
    params = request.path_params
    return await forward(
        params["auth_id"], params["path"], request, request.app.state.bridge, bearer_token(request)
    )


class _Reader:
    """Reads the target of one proxied request: the caller (from the principal cache), the
    authentication and connector configuration in one read-only transaction, refreshing due
    credentials first (:func:`freshness.read_fresh`).

    On SQLite the read runs on the event loop: a read in WAL mode waits for no lock, and its
    few statements cost less than handing the work to a thread and the GIL back and forth
    (each statement releases and takes it again). A read that must write (an end user seen for
    the first time) and every PostgreSQL read (a network round trip per statement) run in a
    worker thread, at most :data:`CONCURRENT_READS` at once.
    """

    def __init__(
        self,
        bridge: Bridge,
        refresher: Refresher,
        state: ProxyState,
        token: str,
        auth_id: str,
        audit: AuditCall,
    ) -> None:
        self.bridge, self.refresher, self.state = bridge, refresher, state
        self.token, self.auth_id, self.audit = token, auth_id, audit

    async def read(self) -> proxy.Target:
        principal = await caller(self.bridge, self.token)
        self.audit.principal = principal
        bridge, rules = self.bridge, self.state.rules

        def work(session: Session) -> proxy.Target:
            return proxy.read_target(bridge, session, principal, self.auth_id, rules)

        def quick() -> proxy.Target | None:
            return proxy.cached_target(bridge, principal, self.auth_id, rules)

        async def read() -> proxy.Target:
            if bridge.database.is_sqlite:
                found = quick()
                if found is not None:
                    return found
                try:
                    return read_transactions.read_only(bridge, work)
                except read_transactions.WriteNeeded:
                    pass
            else:
                found = await anyio.to_thread.run_sync(quick, limiter=self.state.reads)
                if found is not None:
                    return found
            return await anyio.to_thread.run_sync(
                read_transactions.read_first, bridge, work, limiter=self.state.reads
            )

        return await freshness.read_fresh(self.refresher, read, lambda target: target.auth)


class _Attempt:
    """Sends the caller's request upstream with one set of credentials."""

    def __init__(
        self,
        bridge: Bridge,
        cache: proxy.RuleCache,
        request: Request,
        audit: AuditCall,
        path: str,
    ) -> None:
        self.bridge, self.cache, self.request, self.audit = bridge, cache, request, audit
        self.path = path
        self.headers = proxy.request_headers(request.scope["headers"])

    async def prepare(self, target: proxy.Target) -> proxy.Prepared:
        prepared = await proxy.prepare(self.bridge, self.cache, target)
        self.audit.secrets = prepared.secrets
        return prepared

    async def send(
        self, prepared: proxy.Prepared, body: AsyncIterator[bytes] | None
    ) -> httpx.Response:
        url = proxy.upstream_url(prepared.rules, self.path, self.request.url.query)
        self.audit.url = url
        return await proxy.send(
            self.bridge.http, self.request.method, url, self.headers, body, prepared.rules
        )


async def _renewed(
    refresher: Refresher, reader: _Reader, used: proxy.Target
) -> proxy.Target | None:
    """Fresh credentials after a 401, or ``None`` when there are none (answer the 401).

    When the stored credentials changed since they were read (another request refreshed
    them meanwhile), those are used without refreshing again.
    """
    current = await reader.read()
    if current.stamp != used.stamp:
        return current
    outcome = await refresher.refresh(reader.auth_id, force=True)
    if outcome.kind not in freshness.RENEWED:
        return None
    return await reader.read()


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
