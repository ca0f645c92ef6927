"""Administration commands: ``db upgrade``, ``keys rotate`` and ``keys check`` (``tokens`` and
``users`` are the tenancy slice's, :mod:`authbridge.tenancy.cli`).

Each command reads :class:`~authbridge.runtime.Settings` from the environment, opens what it
needs, and turns every expected failure (a bad URL, an unreadable key file, an unknown id) into
a one-line message and exit status 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from authbridge.cli.common import (
    err,
    open_keys,
    opened_database,
    out,
    reported_errors,
    settings_from_env,
)

if TYPE_CHECKING:
    from authbridge.services import reencryption
    from authbridge.storage import Database
    from authbridge.vault import Keyring

db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage the encryption keys.", no_args_is_help=True)

# -- db ----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (safe to run at any time)."""
    from authbridge.runtime import migrate_database

    with reported_errors():
        settings = settings_from_env()
        revision = migrate_database(settings)
    out.print(f"Database is at revision {revision}.")


# -- keys --------------------------------------------------------------------------------------


@contextmanager
def _progress_bars() -> Iterator[reencryption.Progress]:
    """One progress bar per table on stderr, for the walks of every table."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )
    tasks: dict[str, TaskID] = {}

    class Bar:
        def started(self, table: str, rows: int) -> None:
            tasks[table] = progress.add_task(table, total=rows)

        def advanced(self, table: str, examined: int) -> None:
            progress.advance(tasks[table], examined)

        def finished(self, table: str) -> None:
            task = tasks[table]
            total = progress.tasks[task].total or 0
            progress.update(task, completed=max(total, progress.tasks[task].completed))

    with progress:
        yield Bar()


def _reencrypt_all(
    database: Database, keyring: Keyring, batch_size: int
) -> list[reencryption.TableSummary]:
    from authbridge.services import reencryption

    with _progress_bars() as bars:
        return reencryption.reencrypt_all(database, keyring, batch_size, bars)


@keys_app.command("rotate")
def keys_rotate(
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=10_000, help="Rows re-encrypted per transaction."
    ),
    reencrypt_only: bool = typer.Option(
        False,
        "--reencrypt-only",
        help="Do not add a key: only re-encrypt what is not under the current primary key "
        "(to finish an interrupted rotation, or after updating AUTHBRIDGE_KEYS).",
    ),
) -> None:
    """Add a new primary key and re-encrypt every stored secret with it, online, in batches.

    Safe to run again: values already under the primary key are left alone.
    """
    from rich.table import Table

    from authbridge.runtime import keyring_json
    from authbridge.vault import ENV_VAR as KEYS_ENV_VAR
    from authbridge.vault import save

    with reported_errors():
        settings = settings_from_env()
        keyring = open_keys(settings)
        if not reencrypt_only:
            rotated, new_id = keyring.with_new_primary()
            if settings.keys_from_env:
                err.print(
                    f"The keys come from {KEYS_ENV_VAR}, which this command cannot change. "
                    f"Set {KEYS_ENV_VAR} to the value below (it adds key '{new_id}' as primary "
                    "and keeps the old keys), restart every authbridge process (they read "
                    f"{KEYS_ENV_VAR} when they start), then run "
                    "[bold]authbridge keys rotate --reencrypt-only[/bold].",
                    markup=True,
                )
                out.print(keyring_json(rotated), markup=False)
                raise typer.Exit(1)
            save(settings.key_file, rotated)
            keyring = rotated
            err.print(
                f"Added key '{new_id}' as primary in {settings.key_file}; back the file up "
                "again. Running servers and workers read the changed file again on their next "
                "use of a key: no restart is needed.",
                markup=False,
            )
        with opened_database(settings) as database:
            summaries = _reencrypt_all(database, keyring, batch_size)
    table = Table("table", "rows", "re-encrypted", "left", title=f"Primary key: {keyring.primary}")
    for summary in summaries:
        table.add_row(
            summary.table,
            str(summary.rows),
            str(max(summary.pending_before - summary.pending_after, 0)),
            str(summary.pending_after),
        )
    out.print(table)
    left = sum(summary.pending_after for summary in summaries)
    if left:
        out.print(
            f"[yellow]{left} row(s) changed during the run and still use an older key; "
            "run [bold]authbridge keys rotate --reencrypt-only[/bold] again.[/yellow]"
        )
        raise typer.Exit(1)
    out.print(f"Every secret is encrypted with key '{keyring.primary}'.")


@keys_app.command("check")
def keys_check(
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=10_000, help="Rows read per transaction."
    ),
) -> None:
    """Decrypt every stored secret with the keyring, and say which cannot be read.

    Run it after restoring the key file (or setting AUTHBRIDGE_KEYS) to confirm that the keys
    are the ones that wrote the data. Nothing is changed. Exits 1 when a secret cannot be
    read, naming its table, column, row and key id.
    """
    from rich.table import Table

    from authbridge.services import reencryption

    with reported_errors():
        settings = settings_from_env()
        keyring = open_keys(settings)
        with opened_database(settings) as database, _progress_bars() as bars:
            summaries = reencryption.check_all(database, keyring, batch_size, bars)
    table = Table(
        "table", "values", "key missing", "unreadable", title=f"Keys: {', '.join(keyring.key_ids)}"
    )
    for summary in summaries:
        missing = ", ".join(f"{key_id} ({n})" for key_id, n in summary.missing_keys.items())
        table.add_row(summary.table, str(summary.values), missing or "0", str(summary.altered))
    out.print(table)
    unreadable = sum(summary.unreadable for summary in summaries)
    if not unreadable:
        out.print(f"Every stored secret ({sum(s.values for s in summaries)}) can be decrypted.")
        return
    for summary in summaries:
        for error in summary.failures:
            err.print(error.diagnosis, markup=False)
        if summary.unreadable > len(summary.failures):
            err.print(f"… and {summary.unreadable - len(summary.failures)} more in {summary.table}")
    missing_ids = sorted({key_id for summary in summaries for key_id in summary.missing_keys})
    hints = []
    if missing_ids:
        ids = ", ".join(f"'{key_id}'" for key_id in missing_ids)
        hints.append(f"restore the key file (or AUTHBRIDGE_KEYS) that holds key {ids}")
    if any(summary.altered for summary in summaries):
        hints.append("restore the altered rows from a database backup")
    err.print(
        f"[red]Error:[/red] {unreadable} stored secret(s) cannot be decrypted; "
        f"{' and '.join(hints)}.",
        markup=True,
    )
    raise typer.Exit(1)
