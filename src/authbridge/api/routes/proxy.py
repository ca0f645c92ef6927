"""``/v1/proxy/{auth_id}/{path}``: a request forwarded to the connector's API, authenticated.

Bodies stream both ways (the request body is copied to a spool as it passes, to be sent again
after a 401); status and headers pass through minus hop-by-hop headers and our own
``Authorization``. A 401 from upstream forces one refresh of renewable credentials and one
retry; every proxied request is audited when its response ends.

The database is read once per request, in one read-only transaction (the token, the
authentication, the connector configuration; see :class:`_Reader` for where it runs);
rendered rules come from the process's :class:`proxy.RuleCache`, and audit rows are written by
a background task (:class:`AuditWriter`), so neither costs the request a thread hop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from authbridge.api.deps import BridgeDep, TokenDep
from authbridge.services import authentications, proxy
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal, authenticate
from authbridge.services.refresh import Refresher

log = logging.getLogger("authbridge.proxy")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Refresh outcomes after which the new credentials are worth a second attempt.
RENEWED = frozenset({"refreshed", "shared"})
#: What the audit log records when the caller disconnected before the upstream answered.
CLIENT_CLOSED = 499
#: Audit rows waiting to be written at most; a request ending beyond that waits for room.
MAX_QUEUED_ROWS = 10_000
#: Rows written in one transaction at most.
MAX_BATCH = 500
#: Seconds between the starts of two audit transactions at least: what a crash may lose.
FLUSH_INTERVAL = 0.02
#: Proxied requests reading the database at once: fewer than the connections a database pool
#: keeps (SQLite's keeps 5 and opens and closes any beyond), and plenty for reads this short.
CONCURRENT_READS = 4


class ProxyState:
    """What the proxy keeps per app: the rendered-rules cache and the audit writer."""

    def __init__(self, bridge: Bridge) -> None:
        self.rules = proxy.RuleCache()
        self.audit = AuditWriter(bridge)
        self.reads = anyio.CapacityLimiter(CONCURRENT_READS)

    @classmethod
    def of(cls, app: Any) -> ProxyState:
        state: ProxyState | None = getattr(app.state, "proxy", None)
        if state is None:
            state = app.state.proxy = cls(app.state.bridge)
        return state


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At shutdown, after the last request, write the audit rows still queued."""
    yield
    state: ProxyState | None = getattr(app.state, "proxy", None)
    if state is not None:
        await state.audit.close()


router = APIRouter(prefix="/v1/proxy", tags=["proxy"], lifespan=lifespan)


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

    def __init__(self, writer: AuditWriter, request: Request, auth_id: str) -> None:
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
        await self.writer.write(call)


class AuditWriter:
    """Writes the audit rows of proxied requests from a queue, off the requests' path.

    A request queues its row when it ends; one task takes every row queued so far and writes
    them in one transaction in a worker thread (group commit), at most one transaction per
    :data:`FLUSH_INTERVAL`. No request waits for a thread or a commit, and the writer's thread
    takes the GIL from the event loop 50 times a second at most, not once per request. The
    queue is bounded: when it is full a request waits for room, a row is never dropped. At
    shutdown the queue is written out; a crash loses the rows not written yet: those of the
    requests that ended in the last 20 ms or so, and during the write under way.
    """

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._queue: asyncio.Queue[proxy.ProxiedCall] = asyncio.Queue(MAX_QUEUED_ROWS)
        self._task: asyncio.Task[None] | None = None

    async def write(self, call: proxy.ProxiedCall) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="proxy audit writer")
        await self._queue.put(call)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        if self._task.done():  # it never stops by itself, but never leave rows behind
            self._task = asyncio.create_task(self._run(), name="proxy audit writer")
        await self._queue.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        flushed = 0.0
        while True:
            batch = [await self._queue.get()]
            wait = flushed + FLUSH_INTERVAL - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            flushed = time.monotonic()
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await run_in_threadpool(self._store, batch)
            except Exception:
                # The answers were sent already; the failure is the database's.
                log.exception("%d audit rows of proxied requests could not be written", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

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
    if body is not None:
        return BufferedResponse(upstream, body, audit)
    return ProxiedResponse(upstream, audit)


class _Reader:
    """Reads the target of one proxied request: token, authentication and connector
    configuration in one read-only transaction, refreshing due credentials first.

    On SQLite the read runs on the event loop: a read in WAL mode waits for no lock, and its
    few statements cost less than handing the work to a thread and the GIL back and forth
    (each statement releases and takes it again). A read that must write (a token's last use,
    once a minute) and every PostgreSQL read (a network round trip per statement) run in a
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

    async def read(self, *, after: bool = False) -> proxy.Target:
        async def read(after_refresh: bool) -> proxy.Target:
            work = self._work(after_refresh or after)
            if self.bridge.database.is_sqlite:
                try:
                    return proxy.read_only(self.bridge, work)
                except proxy.WriteNeeded:
                    pass
            return await anyio.to_thread.run_sync(
                proxy.read_first, self.bridge, work, limiter=self.state.reads
            )

        return await authentications.read_fresh_with(self.refresher, self.auth_id, read)

    def _work(self, after_refresh: bool) -> Callable[[Session], proxy.Target]:
        bridge = self.bridge

        def work(session: Session) -> proxy.Target:
            principal = authenticate(session, bridge.keyring, self.token, now=bridge.now())
            self.audit.principal = principal
            return proxy.read_target(
                bridge,
                session,
                principal,
                self.auth_id,
                self.state.rules,
                after_refresh=after_refresh,
            )

        return work


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
    current = await reader.read(after=True)
    if current.stamp != used.stamp:
        return current
    outcome = await refresher.refresh(reader.auth_id, force=True)
    if outcome.kind not in RENEWED:
        return None
    return await reader.read(after=True)


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
