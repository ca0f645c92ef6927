"""What every command shares: consoles, error reporting, and opening settings, keys and data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from alembic.util.exc import CommandError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from authbridge.errors import AuthBridgeError
from authbridge.runtime import Settings, open_database, open_keyring
from authbridge.storage import Database
from authbridge.storage.models import Environment
from authbridge.storage.repositories import DEFAULT_ENVIRONMENT, EnvironmentRepository
from authbridge.vault import Keyring

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
# Tables hold ids to copy; when printing to a pipe or file, do not squeeze them into 80 columns.
wide = Console(highlight=False, width=None if out.is_terminal else 200)

EnvOption = typer.Option(DEFAULT_ENVIRONMENT, "--env", "-e", help="The environment's name.")
ConnectorsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--connectors",
        "-c",
        exists=True,
        file_okay=False,
        help="A folder of connector definitions beside the catalog (repeatable); every process "
        "of one deployment uses the same folders.",
    ),
]
AllowLoopbackOption = typer.Option(
    False,
    "--allow-loopback",
    help="Let connectors call providers on this machine (the sandbox); off in production.",
)


class CliError(AuthBridgeError):
    """A failure the command reports with its message and exit status 1."""


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise."""
    err.print(f"[red]Error:[/red] {message}", markup=True)
    return typer.Exit(1)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn expected failures into a clear message and exit status 1."""
    try:
        yield
    except AuthBridgeError as error:
        raise fail(escape(error.message)) from None
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else "unknown"
        raise fail(escape(f"database error: {first_line}")) from None
    except CommandError as error:
        raise fail(escape(f"migration failed: {error}")) from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise fail(escape(f"{error.strerror or error}{where}")) from None


def escape(text: str) -> str:
    return text.replace("[", r"\[")


def settings_from_env() -> Settings:
    return Settings.from_env()


def open_keys(settings: Settings) -> Keyring:
    keyring, created = open_keyring(settings)
    if created:
        err.print(
            f"[yellow]Created a new key file at {settings.key_file}.[/yellow] "
            "It encrypts every stored secret: back it up now and keep it safe. "
            "Without it the stored credentials cannot be read.",
            markup=True,
        )
    return keyring


@contextmanager
def opened_database(settings: Settings) -> Iterator[Database]:
    database = open_database(settings)
    try:
        yield database
    finally:
        database.dispose()


def find_environment(session: Session, keyring: Keyring, name: str) -> Environment:
    """Return environment ``name``; ``default`` is created on first use, others must exist."""
    environments = EnvironmentRepository(session, keyring)
    if name == DEFAULT_ENVIRONMENT:
        return environments.get_or_create(name)
    environment = environments.get_by_name(name)
    if environment is None:
        raise CliError(f"there is no environment named '{name}'")
    return environment


def new_table(*headers: str, title: str | None = None) -> Table:
    """A table whose ids and dates are never cut, so that they can be copied."""
    table = Table(title=title)
    for header in headers:
        if header == "id":
            table.add_column(header, no_wrap=True, min_width=36)
        elif header in {"created", "last used", "revoked"}:
            table.add_column(header, no_wrap=True)
        else:
            table.add_column(header)
    return table


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure_logging(level: str) -> None:
    """Log lines with ``key=value`` fields on stderr: authbridge's at ``level``, the libraries'
    from warnings up (httpx logs every request URL at info, and a URL may hold a key)."""
    if level.upper() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"use one of {', '.join(LOG_LEVELS).lower()}", param_hint="--log-level"
        )
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("authbridge").setLevel(level.upper())
