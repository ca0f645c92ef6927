"""``authbridge serve``: the API, the connect pages and ``authbridge.js`` on one port.

With ``--workers N`` (N > 1), uvicorn runs N server processes sharing the port; this process
bootstraps the data once, then supervises them (see :mod:`authbridge.api.factory`) without
importing the app itself.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import cast

import typer

from authbridge.cli.common import (
    DEFAULT_ENVIRONMENT,
    AllowLoopbackOption,
    ConnectorsOption,
    configure_logging,
    err,
    open_keys,
    out,
    reported_errors,
    settings_from_env,
)

#: uvicorn's app factory in each ``--workers`` process.
FACTORY = "authbridge.api.factory:app_from_environment"


def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every one)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    connectors: ConnectorsOption = None,
    allow_loopback: bool = AllowLoopbackOption,
    log_level: str = typer.Option(
        "info", help="Log level of authbridge and uvicorn: debug, info, warning or error."
    ),
    no_worker: bool = typer.Option(
        False,
        "--no-worker",
        help="Do not run the background worker in this process (run `authbridge worker`).",
    ),
    warn_days: float = typer.Option(
        7.0,
        "--warn-days",
        min=0,
        help="The worker sends authentication.expiring this many days before a hard expiry.",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Server processes sharing the port, each with its own background worker unless "
        "--no-worker (best on PostgreSQL; on SQLite they share one file's write lock).",
    ),
) -> None:
    """Serve the REST API (/v1, reference at /docs), the connect pages and /healthz.

    The data folder (./.authbridge, or AUTHBRIDGE_HOME) and its key file are created on the
    first run, and a master token for the 'default' environment is printed once. A missing key
    file is not replaced when the database already holds secrets: serve says how to restore it. Set
    AUTHBRIDGE_PUBLIC_URL when browsers reach the server at another address. The background
    worker (refresh, expiry, scheduled deletion, webhooks) runs inside unless --no-worker;
    metrics are at /metrics. Slow clients are timed out and connections bounded
    (AUTHBRIDGE_HEADER_TIMEOUT_SECONDS, AUTHBRIDGE_BODY_TIMEOUT_SECONDS,
    AUTHBRIDGE_MAX_CONNECTIONS).
    """
    import uvicorn

    if workers == 1:
        from authbridge.api.factory import build_app
    from authbridge.runtime import (
        SERVE_OPTIONS_ENV_VAR,
        ServeOptions,
        open_bridge,
        open_database,
    )
    from authbridge.serving import ConnectionLimits, GuardedProtocol
    from authbridge.tenancy import service as tenancy

    configure_logging(log_level)
    with reported_errors():
        settings = settings_from_env()
        keyring = open_keys(settings)
        public_url = settings.base_url(host, port)
        database = open_database(settings)
        with database.session() as session:
            first = tenancy.bootstrap(session, keyring)
        bridge = open_bridge(
            settings,
            keyring,
            database,
            public_url=public_url,
            connector_folders=connectors or [],
            allow_loopback=allow_loopback,
            broken_connectors="log",
        )
    if first is not None:
        err.print(
            f"[bold]Master token for the '{DEFAULT_ENVIRONMENT}' environment[/bold] "
            "(shown once; create more with `authbridge tokens create`):",
            markup=True,
        )
        out.print(first.token)
    processes = f" with {workers} processes" if workers > 1 else ""
    out.print(
        f"authbridge is serving on http://{host}:{port}{processes} "
        f"(public URL {public_url}; API reference at {public_url}/docs)"
    )
    options = ServeOptions(
        public_url=public_url,
        connector_folders=tuple(str(folder) for folder in connectors or []),
        allow_loopback=allow_loopback,
        worker=not no_worker,
        warn_days=warn_days,
        log_level=log_level,
    )
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_connections=settings.max_connections,
    )
    run = functools.partial(
        uvicorn.run,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        server_header=False,
        # uvicorn calls it as it calls a protocol class; a partial is pickled to --workers
        # processes as the class and the limits.
        http=cast("type[asyncio.Protocol]", functools.partial(GuardedProtocol, limits=limits)),
    )
    if workers == 1:
        run(build_app(settings, bridge, options))
        database.dispose()
        return
    # Each process opens its own; this one only had to load the connectors (logging the broken).
    asyncio.run(bridge.http.aclose())
    database.dispose()
    os.environ[SERVE_OPTIONS_ENV_VAR] = options.to_json()
    run(FACTORY, factory=True, workers=workers)
