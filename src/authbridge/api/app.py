"""The authbridge web application: REST API under ``/v1``, connect pages, ``/healthz``.

``create_app(bridge)`` builds it around a :class:`~authbridge.services.bridge.Bridge`; the
OpenAPI document is at ``/openapi.json`` and the interactive reference at ``/docs``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authbridge import __version__
from authbridge.api import problems, rendering
from authbridge.api.deps import plain_params
from authbridge.api.limits import DEFAULT_LIMITS, BodyLimits, Limits
from authbridge.api.routes.docs import router as docs_router
from authbridge.api.routes.metrics import router as metrics_router
from authbridge.api.schemas import Health
from authbridge.authentications import endpoints as authentications
from authbridge.authentications.reads import CredentialReader
from authbridge.connect import endpoints as connect_sessions
from authbridge.connect import oauth_pages, pages
from authbridge.connector_configs import endpoints as connectors
from authbridge.proxy import endpoints as proxy
from authbridge.refresh.service import Refresher
from authbridge.refresh.worker import BackgroundWorker, Worker
from authbridge.services.audit_trail import AuditTrail
from authbridge.services.bridge import Bridge
from authbridge.solutions.endpoints import router as solutions_router
from authbridge.tenancy import endpoints as tenancy
from authbridge.themes import endpoints as themes
from authbridge.webhooks import endpoints as webhooks
from authbridge.wizard import endpoints as authorization_codes
from authbridge.wizard import pages as wizard_pages

DESCRIPTION = """\
The auth layer for integrations. Authenticate with `Authorization: Bearer <token>`: a master
token (`abk_…`, created with `authbridge tokens create`) sees the whole environment; a user
token (minted at `POST /v1/user-tokens`, or a JWT the host signs with the environment's key)
sees only its end user's data. Errors are RFC 9457 problem documents; lists are paginated with
an opaque `cursor`.
"""


def create_app(
    bridge: Bridge,
    *,
    worker: Worker | None = None,
    refresher: Refresher | None = None,
    graphiql: bool = False,
    introspection: bool = False,
    public_metrics: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> FastAPI:
    """The app around ``bridge``; with ``worker``, the app's lifespan runs it in the background
    (started at startup, stopped after the last request at shutdown). Credential reads refresh
    through ``refresher`` (default: the worker's, else a new one). ``graphiql``,
    ``introspection`` and ``public_metrics`` open what is closed by default (the settings of
    the same names, :class:`~authbridge.runtime.Settings`). Request bodies stay within
    ``limits`` (:mod:`authbridge.api.limits`)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        background = BackgroundWorker(worker).start() if worker is not None else None
        yield
        # After the last request: the worker's refreshes end and are stored, then every queued
        # audit row is written.
        if background is not None:
            await background.stop()
        await reader.refresher.stop()  # no-op when the worker's run stopped it already
        await reader.trail.close()
        await bridge.http.aclose()

    app = FastAPI(
        lifespan=lifespan,
        title="authbridge",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # routes/docs.py: Swagger UI pinned with SRI, under a strict CSP
        redoc_url=None,
    )
    app.state.bridge = bridge
    app.state.public_metrics = public_metrics
    # One refresher per process: credential reads and the worker share its single flight.
    if refresher is None:
        refresher = worker.refresher if worker is not None else Refresher(bridge)
    app.state.refresher = refresher
    reader = app.state.reader = CredentialReader(bridge, refresher, AuditTrail(bridge))
    # Inside the middleware problems.install adds, so that a bug of its own is answered too.
    app.add_middleware(BodyLimits, limits=limits)
    problems.install(app)

    # The hottest routes first, ahead of FastAPI's own (/openapi.json, /docs) and /healthz: a
    # request is matched against every route before it. Plain Starlette routes (FastAPI's
    # matching and dependency handling cost more than a credentials read); the FastAPI routes
    # below document them.
    hottest = [
        Route(
            "/v1/authentications/{auth_id}/credentials",
            authentications.credentials_endpoint,
            methods=["GET"],
            include_in_schema=False,
        ),
        Route(
            "/v1/proxy/{auth_id}/{path:path}",
            proxy.endpoint,
            methods=list(proxy.METHODS),
            include_in_schema=False,
        ),
    ]
    app.router.routes[:0] = hottest

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok")

    # polled often too: right after them
    app.router.routes.insert(len(hottest), app.router.routes.pop())

    for module in (
        authentications,
        authorization_codes,
        connect_sessions,
        connectors,
        proxy,
        tenancy,
        themes,
        webhooks,
    ):
        app.include_router(
            module.router, responses=problems.RESPONSES, dependencies=[Depends(plain_params)]
        )
    app.include_router(
        solutions_router, responses=problems.RESPONSES, dependencies=[Depends(plain_params)]
    )
    app.include_router(metrics_router)
    app.include_router(docs_router)
    app.router.routes.append(
        Route(
            "/graphql",
            LazyGraphQL(app, graphiql, introspection),
            methods=["GET", "POST"],
            include_in_schema=False,
        )
    )
    app.include_router(pages.router)
    app.include_router(oauth_pages.router)
    app.include_router(wizard_pages.router)
    app.mount("/static", rendering.static_files(), name="static")
    return app


class LazyGraphQL:
    """``/graphql``, built at its first request: Strawberry and graphql-core take a third of
    the API's import time, which every start would pay for an endpoint many hosts never call.

    The GraphQL app is a FastAPI app of its own sharing the main app's ``state`` (the bridge)
    and problem handlers; it is imported in a worker thread, once, while the first requests
    wait.
    """

    def __init__(
        self, parent: FastAPI, graphiql: bool = False, introspection: bool = False
    ) -> None:
        self.parent = parent
        self.graphiql = graphiql
        self.introspection = introspection
        self._app: ASGIApp | None = None
        self._building: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._building = self._building or asyncio.Lock()
            async with self._building:
                if self._app is None:
                    self._app = await run_in_threadpool(self._build)
        await self._app(scope, receive, send)

    def _build(self) -> ASGIApp:
        from authbridge.api import graphql

        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.state = self.parent.state
        problems.install(app)
        app.include_router(
            graphql.create_router(graphiql=self.graphiql, introspection=self.introspection)
        )
        return app
