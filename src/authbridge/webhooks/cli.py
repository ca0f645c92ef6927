"""``authbridge webhooks``: add, list, enable, disable and remove webhook endpoints, list
deliveries, and redeliver events.

The signing secret of a new endpoint is printed once, alone on its line of standard output;
it is stored encrypted and never shown again (``rotate-secret`` makes a new one).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from authbridge import errors
from authbridge.cli.common import (
    EnvOption,
    err,
    fail,
    find_environment,
    in_environment,
    new_table,
    open_keys,
    opened_database,
    out,
    reported_errors,
    settings_from_env,
    when,
    wide,
)
from authbridge.errors import CliError

if TYPE_CHECKING:
    from authbridge.storage.models import WebhookDelivery, WebhookEndpoint

#: ``authbridge.webhooks.events.EVENT_TYPES`` and the values of
#: ``authbridge.storage.models.DeliveryStatus``, repeated so that ``--help`` imports neither the
#: services nor the storage (a test keeps them equal).
EVENT_TYPES = (
    "authentication.created",
    "authentication.updated",
    "authentication.invalid",
    "authentication.recovered",
    "authentication.expiring",
    "authentication.expired",
    "authentication.deleted",
)


class Status(StrEnum):
    """A delivery's status, as ``--status`` takes it."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PayloadFormat(StrEnum):
    """``authbridge.webhooks.service.PAYLOAD_FORMATS``, as ``--payload-format`` takes them."""

    STANDARD = "standard"
    TRAY = "tray"


AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
WHEN_HELP = (
    "A time: 2026-05-01, 2026-05-01T12:00:00+02:00 (UTC without an offset), or 12h / 7d ago."
)


def parse_when(text: str, option: str, *, now: datetime) -> datetime:
    """``text`` as a time: an ISO 8601 date or date and time (UTC when it names no offset), or
    a duration ago (``30m``, ``12h``, ``7d``, ``2w``)."""
    value = text.strip()
    ago = AGO.match(value.lower())
    if ago:
        return now - timedelta(**{UNITS[ago.group(2)]: float(ago.group(1))})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option}: {text!r} is not a time; use 2026-05-01, 2026-05-01T12:00:00Z or 7d (ago)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


app = typer.Typer(
    help="Manage webhook endpoints (signed with Standard Webhooks) and see their deliveries.",
    no_args_is_help=True,
)


def _option_message(error: errors.InvalidInput) -> str:
    options = {
        "event_types": "--event",
        "description": "--description",
        "payload_format": "--payload-format",
        "expiry_warning_days": "--expiry-warning-days",
    }
    option = options.get(error.field or "")
    return f"{option}: {error.message}" if option else error.message


def _no_endpoint(endpoint_id: str, env: str) -> CliError:
    return CliError(f"there is no webhook endpoint with id '{endpoint_id}' in environment '{env}'")


@app.command("add")
def add(
    url: str = typer.Argument(..., metavar="URL", help="Where to POST events (https://...)."),
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            metavar="TYPE",
            help="An event to send (repeatable); without it, every event. One of: "
            + ", ".join(EVENT_TYPES),
        ),
    ] = None,
    description: str | None = typer.Option(None, "--description", help="A note for yourself."),
    payload_format: Annotated[
        PayloadFormat,
        typer.Option(
            "--payload-format",
            help="standard: {type, timestamp, data}; tray: the flat body of Tray Embedded's "
            "expired-auth notification, for authentication.expiring (the default) and "
            "authentication.expired only. Both are signed alike.",
        ),
    ] = PayloadFormat.STANDARD,
    expiry_warning_days: float | None = typer.Option(
        None,
        "--expiry-warning-days",
        metavar="DAYS",
        help="Send authentication.expiring this many days before a hard expiry; without it, "
        "the connector's window, else the worker's --warn-days.",
    ),
    allow_loopback: bool = typer.Option(
        False,
        "--allow-loopback",
        help="Accept a receiver on this machine (localhost, 127.0.0.1), for a server run with "
        "--allow-loopback; off in production.",
    ),
    env: str = EnvOption,
) -> None:
    """Add a webhook endpoint and print its signing secret once.

    Verify the messages with any Standard Webhooks library and this secret, for example in
    Python: standardwebhooks.Webhook(secret).verify(body, headers).
    """
    from authbridge.http import EgressPolicy
    from authbridge.storage.models import utcnow
    from authbridge.webhooks import service as webhooks

    with reported_errors():
        with in_environment(env) as state:
            try:
                issued = webhooks.create_endpoint(
                    state.keyring,
                    state.session,
                    state.environment.id,
                    url=url,
                    event_types=events or (),
                    description=description,
                    payload_format=payload_format.value,
                    expiry_warning_days=expiry_warning_days,
                    now=utcnow(),
                    policy=EgressPolicy(allow_loopback=allow_loopback),
                )
            except errors.InvalidInput as error:
                raise CliError(_option_message(error)) from None
            endpoint_id = issued.record.id
            chosen = ", ".join(issued.record.event_types) or "all events"
        out.print(
            f"Added webhook endpoint {endpoint_id} in environment '{env}' ({chosen}). "
            "Signing secret:",
            markup=False,
        )
        out.print(issued.secret, markup=False)
        err.print(
            "[yellow]This is the only time the secret is shown; store it where the receiver "
            "can read it.[/]"
        )


@app.command("list")
def list_endpoints(env: str = EnvOption) -> None:
    """List the environment's webhook endpoints (never their secrets)."""
    from authbridge.storage.pagination import MAX_PAGE_SIZE
    from authbridge.webhooks import service as webhooks

    with reported_errors(), in_environment(env) as state:
        endpoints: list[WebhookEndpoint] = []
        cursor = None
        while True:
            page = webhooks.endpoints_page(
                state.keyring,
                state.session,
                state.environment.id,
                limit=MAX_PAGE_SIZE,
                cursor=cursor,
            )
            endpoints.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    table = new_table(
        "id",
        "url",
        "events",
        "enabled",
        "format",
        "warning days",
        "description",
        "created",
        title=f"{len(endpoints)} webhook endpoints in environment '{env}'",
    )
    for endpoint in endpoints:
        days = endpoint.expiry_warning_days
        table.add_row(
            endpoint.id,
            endpoint.url,
            ", ".join(endpoint.event_types or []) or "all",
            "yes" if endpoint.enabled else "no",
            endpoint.payload_format,
            "-" if days is None else f"{days:g}",
            endpoint.description or "-",
            when(endpoint.created_at),
        )
    wide.print(table)


@app.command("remove")
def remove(
    endpoint_id: str = typer.Argument(..., metavar="ID", help="The endpoint id (see list)."),
    env: str = EnvOption,
) -> None:
    """Remove a webhook endpoint; its pending deliveries are dropped."""
    from authbridge.webhooks import service as webhooks

    with reported_errors():
        with in_environment(env) as state:
            try:
                webhooks.delete_endpoint(
                    state.keyring, state.session, state.environment.id, endpoint_id
                )
            except errors.NotFound:
                raise _no_endpoint(endpoint_id, env) from None
        out.print(f"Removed webhook endpoint {endpoint_id}.", markup=False)


def _set_enabled(endpoint_id: str, env: str, *, enabled: bool) -> None:
    from authbridge.storage.models import utcnow
    from authbridge.webhooks import service as webhooks

    with reported_errors():
        with in_environment(env) as state:
            try:
                webhooks.update_endpoint(
                    state.keyring,
                    state.session,
                    state.environment.id,
                    endpoint_id,
                    enabled=enabled,
                    now=utcnow(),
                )
            except errors.NotFound:
                raise _no_endpoint(endpoint_id, env) from None
        done = "Enabled" if enabled else "Disabled"
        out.print(f"{done} webhook endpoint {endpoint_id}.", markup=False)


@app.command("enable")
def enable(
    endpoint_id: str = typer.Argument(..., metavar="ID", help="The endpoint id (see list)."),
    env: str = EnvOption,
) -> None:
    """Enable an endpoint again. What it missed while disabled is not sent by itself: see
    redeliver --since ... --failed."""
    _set_enabled(endpoint_id, env, enabled=True)


@app.command("disable")
def disable(
    endpoint_id: str = typer.Argument(..., metavar="ID", help="The endpoint id (see list)."),
    env: str = EnvOption,
) -> None:
    """Stop sending to an endpoint. Its pending deliveries, and the events written meanwhile,
    end as failed deliveries that redeliver can send once it is enabled again."""
    _set_enabled(endpoint_id, env, enabled=False)


@app.command("rotate-secret")
def rotate_secret(
    endpoint_id: str = typer.Argument(..., metavar="ID", help="The endpoint id (see list)."),
    env: str = EnvOption,
) -> None:
    """Give an endpoint a new signing secret and print it once.

    For 24 hours, messages also carry a signature made with the old secret.
    """
    from authbridge.storage.models import utcnow
    from authbridge.webhooks import service as webhooks

    with reported_errors():
        with in_environment(env) as state:
            try:
                issued = webhooks.rotate_secret(
                    state.keyring, state.session, state.environment.id, endpoint_id, now=utcnow()
                )
            except errors.NotFound:
                raise _no_endpoint(endpoint_id, env) from None
        out.print(f"New signing secret of webhook endpoint {endpoint_id}:", markup=False)
        out.print(issued.secret, markup=False)
        err.print("[yellow]This is the only time the secret is shown.[/]")


@app.command("deliveries")
def deliveries(
    status: Annotated[Status | None, typer.Option("--status", help="Only this status.")] = None,
    endpoint_id: str | None = typer.Option(
        None, "--endpoint", metavar="ID", help="Only this endpoint's deliveries."
    ),
    limit: int = typer.Option(100, "--limit", min=1, help="Show at most this many, oldest first."),
    env: str = EnvOption,
) -> None:
    """List deliveries of events to endpoints, with their attempts and outcome."""
    from authbridge.storage.models import DeliveryStatus
    from authbridge.storage.pagination import MAX_PAGE_SIZE
    from authbridge.webhooks import service as webhooks

    with reported_errors(), in_environment(env) as state:
        rows: list[WebhookDelivery] = []
        cursor = None
        while len(rows) < limit:
            page = webhooks.deliveries_page(
                state.keyring,
                state.session,
                state.environment.id,
                endpoint_id=endpoint_id,
                status=None if status is None else DeliveryStatus(status.value),
                limit=min(MAX_PAGE_SIZE, limit - len(rows)),
                cursor=cursor,
            )
            rows.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        types = webhooks.event_types_of(state.keyring, state.session, rows)
    table = new_table(
        "id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "last status",
        "next attempt",
        "last error",
        "created",
        title=f"{len(rows)} webhook deliveries in environment '{env}'",
    )
    for row in rows:
        pending = row.status is DeliveryStatus.PENDING
        table.add_row(
            row.id,
            types.get(row.event_id, "-"),
            row.endpoint_id,
            row.status.value,
            str(row.attempts),
            "-" if row.last_status_code is None else str(row.last_status_code),
            when(row.next_attempt_at) if pending else "-",
            row.last_error or "-",
            when(row.created_at),
        )
    wide.print(table)


@app.command("redeliver")
def redeliver(
    endpoint_id: str = typer.Argument(..., metavar="ID", help="The endpoint id (see list)."),
    event_id: str | None = typer.Option(
        None, "--event", metavar="EVENT_ID", help="Redeliver this one event (see deliveries)."
    ),
    since: str | None = typer.Option(
        None, "--since", metavar="WHEN", help="Redeliver the events from this time. " + WHEN_HELP
    ),
    until: str | None = typer.Option(
        None, "--until", metavar="WHEN", help="... up to this time (default: now)."
    ),
    failed_only: bool = typer.Option(
        False,
        "--failed",
        help="Only the events the endpoint never received (every delivery failed, including "
        "those written while it was disabled).",
    ),
    env: str = EnvOption,
) -> None:
    """Send events to an endpoint again, also long after their 24 hours of retries.

    Each becomes a new pending delivery with the same webhook-id, which the worker (authbridge
    serve, or authbridge worker) sends and retries for 24 hours from now; events already
    waiting for a delivery are left alone. Events are kept 30 days.
    """
    from authbridge.storage.models import utcnow

    if (event_id is None) == (since is None):
        raise fail("give either --event EVENT_ID or --since WHEN")
    if event_id is not None and (until is not None or failed_only):
        raise fail("--until and --failed go with --since, not with --event")
    with reported_errors():
        now = utcnow()
        if event_id is not None:
            _redeliver_one(endpoint_id, event_id, env, now=now)
            return
        assert since is not None
        start = parse_when(since, "--since", now=now)
        end = now if until is None else parse_when(until, "--until", now=now)
        _redeliver_range(endpoint_id, env, start, end, failed_only=failed_only, now=now)


def _redeliver_one(endpoint_id: str, event_id: str, env: str, *, now: datetime) -> None:
    from authbridge.webhooks import redelivery

    with in_environment(env) as state:
        try:
            delivery, queued = redelivery.redeliver_event(
                state.keyring, state.session, state.environment.id, endpoint_id, event_id, now=now
            )
        except errors.NotFound as error:
            if "endpoint" in error.message:
                raise _no_endpoint(endpoint_id, env) from None
            raise CliError(
                f"there is no webhook event with id '{event_id}' in environment '{env}'"
            ) from None
    if queued:
        out.print(
            f"Queued event {event_id} for webhook endpoint {endpoint_id} (delivery "
            f"{delivery.id}); the worker sends it.",
            markup=False,
        )
    else:
        out.print(
            f"Event {event_id} is already waiting for delivery {delivery.id} to webhook "
            f"endpoint {endpoint_id}; left as it is.",
            markup=False,
        )


def _redeliver_range(
    endpoint_id: str,
    env: str,
    since: datetime,
    until: datetime,
    *,
    failed_only: bool,
    now: datetime,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from authbridge.webhooks import redelivery

    settings = settings_from_env()
    keyring = open_keys(settings)
    queued = already_pending = 0
    with opened_database(settings) as database:
        with database.session(readonly=True) as session:
            environment = find_environment(session, keyring, env)
            try:
                total = redelivery.count_redeliverable(
                    keyring,
                    session,
                    environment.id,
                    endpoint_id,
                    since=since,
                    until=until,
                    failed_only=failed_only,
                )
            except errors.NotFound:
                raise _no_endpoint(endpoint_id, env) from None
        columns = (TextColumn("queueing"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("redeliver", total=total)
            cursor: str | None = None
            while True:
                with database.session() as session:  # one short transaction per batch
                    batch = redelivery.redeliver_range(
                        keyring,
                        session,
                        environment.id,
                        endpoint_id,
                        since=since,
                        until=until,
                        failed_only=failed_only,
                        now=now,
                        limit=redelivery.MAX_REDELIVERY_BATCH,
                        cursor=cursor,
                    )
                queued += batch.queued
                already_pending += batch.already_pending
                progress.advance(task, batch.queued + batch.already_pending)
                cursor = batch.next_cursor
                if cursor is None:
                    break
    which = "failed events" if failed_only else "events"
    left = f" ({already_pending} already waiting, left as they are)" if already_pending else ""
    out.print(
        f"Queued {queued} {which} from {when(since.astimezone(UTC))} to "
        f"{when(until.astimezone(UTC))} UTC for webhook endpoint {endpoint_id}{left}; the "
        "worker sends them.",
        markup=False,
    )
