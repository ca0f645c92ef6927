"""The server's app as ``authbridge serve`` builds it, in its own process or in each of N.

``authbridge serve`` resolves its options (:class:`~authbridge.runtime.ServeOptions`),
bootstraps the data once (migrations, the default environment, the first master token) and
builds the app with :func:`build_app`. With ``--workers N`` it hands uvicorn the import string of
:func:`app_from_environment` instead, and the options as JSON in ``AUTHBRIDGE_SERVE_OPTIONS``:
uvicorn starts N processes sharing the listening socket, and each opens its own keyring, database
and bridge from the same settings. Each process runs its own background worker unless
``--no-worker`` (the worker is made to run in several processes at once: a refresh still happens
once).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from authbridge.api.app import create_app
from authbridge.api.limits import Limits
from authbridge.refresh.worker import Worker, WorkerSettings
from authbridge.runtime import (
    ServeOptions,
    Settings,
    configure_logging,
    open_bridge,
    open_database,
    open_keyring,
    open_refresher,
)
from authbridge.services.bridge import Bridge
from authbridge.storage import Database


def build_app(settings: Settings, bridge: Bridge, options: ServeOptions) -> FastAPI:
    """The app around ``bridge``, with the process's refresher and, unless turned off, the
    background worker in its lifespan."""
    refresher = open_refresher(settings, bridge)
    worker_settings = WorkerSettings(warn_days=options.warn_days)
    worker = Worker(bridge, refresher, settings=worker_settings) if options.worker else None
    return create_app(
        bridge,
        worker=worker,
        refresher=refresher,
        graphiql=settings.graphiql,
        introspection=settings.graphql_introspection,
        public_metrics=settings.public_metrics,
        limits=Limits(proxy=settings.proxy_max_body),
    )


def app_from_environment() -> ASGIApp:
    """uvicorn's app factory in each ``authbridge serve --workers N`` process.

    Reads the options from ``AUTHBRIDGE_SERVE_OPTIONS`` and the settings as every command does;
    the database is already migrated and bootstrapped by the parent, so this only checks the
    schema (one cheap query) and opens a pool. Broken connectors are left out without a word
    (the parent logged them once). The database is disposed when the app's lifespan ends.
    """
    options = ServeOptions.from_env()
    configure_logging(options.log_level)
    settings = Settings.from_env()
    keyring, _ = open_keyring(settings)
    database = open_database(settings)
    try:
        bridge = open_bridge(
            settings,
            keyring,
            database,
            public_url=options.public_url,
            connector_folders=[Path(folder) for folder in options.connector_folders],
            allow_loopback=options.allow_loopback,
            broken_connectors="ignore",  # the parent logged them
        )
        app = build_app(settings, bridge, options)
    except BaseException:
        database.dispose()
        raise
    return DisposesDatabase(app, database)


class DisposesDatabase:
    """``app``, and ``database`` disposed once the app's lifespan has ended (after shutdown)."""

    def __init__(self, app: ASGIApp, database: Database) -> None:
        self.app = app
        self.database = database

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.database.dispose()
