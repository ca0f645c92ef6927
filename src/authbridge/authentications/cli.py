"""``authbridge import FILE.jsonl``: import many authentications, one JSON body per line.

Each line is the body of ``POST /v1/authentications`` (``GET
/v1/connectors/{key}/import-template`` prints one), checked by the same schema and imported by
the same service, each line in transactions of its own. A bad line is reported with its number
and the reason, never with its values (they are credentials), and the import goes on unless
``--stop-on-error`` is given. Blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from authbridge.cli.common import (
    AllowLoopbackOption,
    ConnectorsOption,
    EnvOption,
    err,
    escape,
    find_environment,
    open_keys,
    opened_database,
    out,
    reported_errors,
    settings_from_env,
)
from authbridge.errors import AuthBridgeError

if TYPE_CHECKING:
    from authbridge.authentications import imports
    from authbridge.services.bridge import Bridge
    from authbridge.services.principals import Principal

CLI_ACTOR = "cli"
STDIN = "-"


class LineError(Exception):
    """A line that cannot be imported; the message never holds the line's values."""


@dataclass
class Summary:
    imported: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    skipped_after_stop: int = 0


def read_lines(source: str) -> list[tuple[int, str]]:
    """The numbered lines holding a body (blank lines and ``#`` comments left out)."""
    text = sys.stdin.read() if source == STDIN else Path(source).read_text(encoding="utf-8")
    return [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def parse_line(line: str, *, skip_validate: bool) -> imports.ImportRequest:
    """The import request of one line, or :class:`LineError` naming what is wrong (not values)."""
    from pydantic import ValidationError

    from authbridge.authentications.schemas import AuthenticationImport

    try:
        document = json.loads(line)
    except json.JSONDecodeError as error:
        raise LineError(f"not valid JSON: {error.msg} at column {error.colno}") from None
    if not isinstance(document, dict):
        raise LineError("must be a JSON object (the body of POST /v1/authentications)")
    try:
        body = AuthenticationImport.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise LineError(f"{where}: {reason}{more}") from None
    return body.to_request(skip_validate=skip_validate)


class _DryRun(Exception):
    """Raised to roll back a dry run's transaction (the end user it may have added)."""


async def import_one(
    bridge: Bridge, principal: Principal, request: imports.ImportRequest, *, dry_run: bool
) -> None:
    """Import one authentication like ``POST /v1/authentications`` (read, call, store)."""
    from authbridge.authentications import imports

    with bridge.session() as session:
        prepared = imports.prepare(bridge, session, principal, request)
    result = await imports.connect(bridge, prepared, request)
    try:
        with bridge.session() as session:
            imports.commit(bridge, session, principal, prepared, request, result)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass


async def import_all(
    bridge: Bridge,
    principal: Principal,
    lines: list[tuple[int, str]],
    *,
    dry_run: bool,
    skip_validate: bool,
    keep_going: bool,
) -> Summary:
    async with bridge.http:  # closed on the loop that used it
        return await _import_lines(
            bridge,
            principal,
            lines,
            dry_run=dry_run,
            skip_validate=skip_validate,
            keep_going=keep_going,
        )


async def _import_lines(
    bridge: Bridge,
    principal: Principal,
    lines: list[tuple[int, str]],
    *,
    dry_run: bool,
    skip_validate: bool,
    keep_going: bool,
) -> Summary:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    summary = Summary()
    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("import", total=len(lines), failed=0)
        for index, (number, line) in enumerate(lines):
            try:
                request = parse_line(line, skip_validate=skip_validate)
                await import_one(bridge, principal, request, dry_run=dry_run)
                summary.imported += 1
            except Exception as error:  # every line is reported; none stops the others
                reason = _reason(error)
                summary.failed.append((number, reason))
                progress.console.print(f"[red]line {number}:[/red] {escape(reason)}", markup=True)
                progress.update(task, failed=len(summary.failed))
                if not keep_going:
                    summary.skipped_after_stop = len(lines) - index - 1
                    break
            finally:
                progress.advance(task)
    return summary


def _reason(error: Exception) -> str:
    if isinstance(error, LineError):
        return str(error)
    if isinstance(error, AuthBridgeError):
        return error.message  # the services redact secret values from these
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(error, SQLAlchemyError):
        return f"database error ({type(error).__name__})"
    # Anything else is a bug; its text may quote the line's values, so only its type is shown.
    return f"unexpected error ({type(error).__name__})"


def import_command(
    source: str = typer.Argument(
        ...,
        metavar="FILE",
        help="A JSON Lines file, one POST /v1/authentications body per line ('-': stdin).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check every line (and validate it) but store nothing."
    ),
    keep_going: bool = typer.Option(
        True,
        "--continue/--stop-on-error",
        help="Go on after a failed line (the default), or stop at the first one.",
    ),
    skip_validate: bool = typer.Option(
        False,
        "--skip-validate",
        help="Do not call the provider to check the credentials (the fields are still checked).",
    ),
    connectors: ConnectorsOption = None,
    allow_loopback: bool = AllowLoopbackOption,
    env: str = EnvOption,
) -> None:
    """Import authentications from a JSON Lines file, reporting each failed line.

    Each line is the JSON body of POST /v1/authentications, for example (from
    GET /v1/connectors/KEY/import-template):

        {"connector": "freshdesk", "external_user_id": "u-1", "fields": {"domain": "acme", ...}}

    Blank lines and lines starting with # are skipped. Exits with status 1 when a line failed.
    """
    from authbridge.runtime import open_bridge
    from authbridge.services.principals import Principal

    with reported_errors():
        lines = read_lines(source)
        settings = settings_from_env()
        keyring = open_keys(settings)
        with opened_database(settings) as database:
            bridge = open_bridge(
                settings,
                keyring,
                database,
                public_url=settings.base_url(),
                connector_folders=list(connectors or []),
                allow_loopback=allow_loopback,
            )
            with database.session() as session:
                environment = find_environment(session, keyring, env)
            principal = Principal(environment_id=environment.id, actor=CLI_ACTOR)
            summary = asyncio.run(
                import_all(
                    bridge,
                    principal,
                    lines,
                    dry_run=dry_run,
                    skip_validate=skip_validate,
                    keep_going=keep_going,
                )
            )
    verb = "checked" if dry_run else "imported"
    line = f"{verb} {summary.imported}, failed {len(summary.failed)}"
    if summary.skipped_after_stop:
        line += f", not attempted {summary.skipped_after_stop} (stopped at the first failure)"
    if dry_run:
        line += " (dry run: nothing stored)"
    out.print(line, markup=False)
    if summary.failed:
        raise typer.Exit(1)
