"""``authbridge worker``: the background worker alone, without the web server.

Run one beside ``authbridge serve --no-worker`` to keep the server's event loop for requests, or
several against one PostgreSQL database to share the work (each refresh still happens once).
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import typer

from authbridge.cli.common import (
    AllowLoopbackOption,
    ConnectorsOption,
    configure_logging,
    err,
    open_keys,
    out,
    reported_errors,
    settings_from_env,
)

if TYPE_CHECKING:
    from authbridge.refresh.worker import Worker
    from authbridge.services.bridge import Bridge


def worker_command(
    interval: float = typer.Option(
        1.0, min=0.05, help="Seconds between ticks when there is no backlog."
    ),
    warn_days: float = typer.Option(
        7.0,
        "--warn-days",
        min=0,
        help="Send authentication.expiring this many days before a hard expiry.",
    ),
    concurrency: int = typer.Option(
        32, min=1, max=1000, help="Refreshes in flight at once in this process."
    ),
    connectors: ConnectorsOption = None,
    allow_loopback: bool = AllowLoopbackOption,
    once: bool = typer.Option(
        False, "--once", help="Run one tick (and one webhook round), print what it did, exit."
    ),
    log_level: str = typer.Option("info", help="Log level (debug, info, warning, error)."),
) -> None:
    """Refresh authentications before they expire, warn about and apply hard expiry, carry out
    scheduled deletions (revoking tokens first) and deliver webhooks, until SIGINT or SIGTERM.

    Uses the same data folder (or AUTHBRIDGE_DATABASE_URL) and keys as the server. Several
    workers may run against one PostgreSQL database.
    """
    from authbridge.refresh.worker import Worker, WorkerSettings
    from authbridge.runtime import open_bridge, open_database, open_refresher

    configure_logging(log_level)
    with reported_errors():
        settings = settings_from_env()
        keyring = open_keys(settings)
        database = open_database(settings)
        try:
            bridge = open_bridge(
                settings,
                keyring,
                database,
                public_url=settings.base_url(),
                connector_folders=connectors or [],
                allow_loopback=allow_loopback,
                broken_connectors="log",  # as serve: the others' accounts keep refreshing
            )
        except BaseException:
            database.dispose()
            raise
    worker_settings = WorkerSettings(
        interval=interval, warn_days=warn_days, concurrency=concurrency
    )
    try:
        with reported_errors():
            worker = Worker(bridge, open_refresher(settings, bridge), settings=worker_settings)
            asyncio.run(_main(bridge, worker, once=once))
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second signal while stopping
        err.print("[yellow]Stopped without finishing the current round.[/yellow]", markup=True)
        raise typer.Exit(130) from None
    finally:
        database.dispose()


async def _main(bridge: Bridge, worker: Worker, *, once: bool) -> None:
    try:
        if once:
            report, delivered = await worker.run_once()
            out.print(f"tick: {report.summary()}")
            if delivered is not None:
                out.print(f"webhooks: {delivered} delivery attempt(s)")
            if report.errors:
                raise typer.Exit(1)
            return
        await _run_until_signalled(worker)
    finally:
        await bridge.http.aclose()


async def _run_until_signalled(worker: Worker) -> None:
    """Run until SIGINT or SIGTERM; a second signal stops at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal() -> None:
        if stop.is_set():
            if main is not None:
                main.cancel()
            return
        err.print("Stopping after the current round (signal again to stop at once).")
        stop.set()

    for number in signals:
        loop.add_signal_handler(number, on_signal)
    try:
        await worker.run(stop)
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
