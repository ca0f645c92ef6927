"""The server's app as ``authbridge serve`` builds it, in its own process or in each of N.

``authbridge serve`` resolves its options, bootstraps the data once (migrations, the default
environment, the first master token) and builds the app with :func:`build_app`. With
``--workers N`` it hands uvicorn the import string :data:`FACTORY` instead, and the options as
JSON in ``AUTHBRIDGE_SERVE_OPTIONS``: uvicorn starts N processes sharing the listening socket, and
each calls :func:`app_from_environment`, which opens its own keyring, database and bridge from the
same settings. Each process runs its own background worker unless ``--no-worker`` (the worker
is made to run in several processes at once: a refresh still happens once).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from authbridge.api.app import create_app
from authbridge.errors import InvalidInput
from authbridge.runtime import (
    Settings,
    configure_logging,
    open_bridge,
    open_database,
    open_keyring,
    open_refresher,
)
from authbridge.services.bridge import Bridge
from authbridge.services.worker import Worker, WorkerSettings
from authbridge.storage import Database

SERVE_OPTIONS_ENV_VAR = "AUTHBRIDGE_SERVE_OPTIONS"
FACTORY = "authbridge.api.factory:app_from_environment"


@dataclass(frozen=True)
class ServeOptions:
    """What ``authbridge serve`` resolved from its command line, for every server process."""

    public_url: str
    connector_folders: tuple[str, ...] = ()
    allow_loopback: bool = False
    worker: bool = True
    warn_days: float = 7.0
    log_level: str = "info"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        """Parse :meth:`to_json`'s output; :class:`InvalidInput` for anything else."""
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            data["connector_folders"] = tuple(data.get("connector_folders", ()))
            return cls(**data)
        except (ValueError, TypeError) as error:
            raise InvalidInput(
                f"{SERVE_OPTIONS_ENV_VAR} is not what authbridge serve writes: {error}",
                field=SERVE_OPTIONS_ENV_VAR,
            ) from None


def build_app(settings: Settings, bridge: Bridge, options: ServeOptions) -> FastAPI:
    """The app around ``bridge``, with the process's refresher and, unless turned off, the
    background worker in its lifespan."""
    refresher = open_refresher(settings, bridge)
    worker_settings = WorkerSettings(warn_days=options.warn_days)
    worker = Worker(bridge, refresher, settings=worker_settings) if options.worker else None
    return create_app(bridge, worker=worker, refresher=refresher)


def app_from_environment() -> ASGIApp:
    """uvicorn's app factory in each ``authbridge serve --workers N`` process.

    Reads the options from ``AUTHBRIDGE_SERVE_OPTIONS`` and the settings as every command does;
    the database is already migrated and bootstrapped by the parent, so this only checks the
    schema (one cheap query) and opens a pool. The database is disposed when the app's lifespan
    ends.
    """
    options = ServeOptions.from_json(os.environ.get(SERVE_OPTIONS_ENV_VAR, ""))
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
