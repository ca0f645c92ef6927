"""``authbridge webhooks``: add, list and remove webhook endpoints, and list deliveries.

The signing secret of a new endpoint is printed once, alone on its line of standard output;
it is stored encrypted and never shown again (``rotate-secret`` makes a new one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from authbridge import errors
from authbridge.cli.common import (
    EnvOption,
    err,
    find_environment,
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
    from sqlalchemy.orm import Session

    from authbridge.storage.models import Environment, WebhookDelivery, WebhookEndpoint
    from authbridge.vault import Keyring

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


app = typer.Typer(
    help="Manage webhook endpoints (signed with Standard Webhooks) and see their deliveries.",
    no_args_is_help=True,
)


@dataclass(frozen=True)
class Opened:
    keyring: Keyring
    session: Session
    environment: Environment


@contextmanager
def opened(env: str) -> Iterator[Opened]:
    """Keys, database and a transaction committed when the block ends."""
    settings = settings_from_env()
    keyring = open_keys(settings)
    with opened_database(settings) as database, database.session() as session:
        yield Opened(keyring, session, find_environment(session, keyring, env))


def _option_message(error: errors.InvalidInput) -> str:
    if error.field == "event_types":
        return f"--event: {error.message}"
    if error.field == "description":
        return f"--description: {error.message}"
    return error.message


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
    env: str = EnvOption,
) -> None:
    """Add a webhook endpoint and print its signing secret once.

    Verify the messages with any Standard Webhooks library and this secret, for example in
    Python: standardwebhooks.Webhook(secret).verify(body, headers).
    """
    from authbridge.storage.models import utcnow
    from authbridge.webhooks import service as webhooks

    with reported_errors():
        with opened(env) as state:
            try:
                issued = webhooks.create_endpoint(
                    state.keyring,
                    state.session,
                    state.environment.id,
                    url=url,
                    event_types=events or (),
                    description=description,
                    now=utcnow(),
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

    with reported_errors(), opened(env) as state:
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
        "description",
        "created",
        title=f"{len(endpoints)} webhook endpoints in environment '{env}'",
    )
    for endpoint in endpoints:
        table.add_row(
            endpoint.id,
            endpoint.url,
            ", ".join(endpoint.event_types or []) or "all",
            "yes" if endpoint.enabled else "no",
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
        with opened(env) as state:
            try:
                webhooks.delete_endpoint(
                    state.keyring, state.session, state.environment.id, endpoint_id
                )
            except errors.NotFound:
                raise CliError(
                    f"there is no webhook endpoint with id '{endpoint_id}' in environment '{env}'"
                ) from None
        out.print(f"Removed webhook endpoint {endpoint_id}.", markup=False)


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
        with opened(env) as state:
            try:
                issued = webhooks.rotate_secret(
                    state.keyring, state.session, state.environment.id, endpoint_id, now=utcnow()
                )
            except errors.NotFound:
                raise CliError(
                    f"there is no webhook endpoint with id '{endpoint_id}' in environment '{env}'"
                ) from None
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

    with reported_errors(), opened(env) as state:
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
