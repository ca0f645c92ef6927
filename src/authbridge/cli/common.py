"""What every command shares: consoles, error reporting, and opening settings, keys and data.

Every command must answer ``--help`` quickly, so the command modules import only Typer, Rich and
this module at load time; the app, services, storage, SQLAlchemy and uvicorn are imported inside
the command functions that use them (``tests/cli/test_startup_cli.py`` checks it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from authbridge.errors import AuthBridgeError, CliError, DecryptionFailed

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.orm import Session

    from authbridge.connector_configs.service import ConnectorSettings
    from authbridge.connectors.loader import Connector
    from authbridge.runtime import Settings
    from authbridge.services.bridge import Bridge
    from authbridge.storage import Database
    from authbridge.storage.models import Environment
    from authbridge.vault import Keyring

#: The environment commands use unless told otherwise (the storage's ``DEFAULT_ENVIRONMENT``,
#: repeated here so that ``--help`` does not import the storage; a test keeps them equal).
DEFAULT_ENVIRONMENT = "default"
#: ``authbridge.runtime.PUBLIC_URL_ENV_VAR``, named in messages (a test keeps them equal).
PUBLIC_URL_ENV_VAR = "AUTHBRIDGE_PUBLIC_URL"
#: The actor of what the commands do, as the audit log names it.
CLI_ACTOR = "cli"

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
VariantOption = typer.Option(
    None,
    "--variant",
    help="The connector's variant (service environment, e.g. sandbox), each with its own "
    "configuration; the default variant when omitted.",
)
AllowLoopbackOption = typer.Option(
    False,
    "--allow-loopback",
    help="Let connectors call providers on this machine (the sandbox); off in production.",
)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise."""
    err.print(f"[red]Error:[/red] {message}", markup=True)
    return typer.Exit(1)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn expected failures into a clear message and exit status 1."""
    try:
        yield
    except DecryptionFailed as error:  # for the operator: which row, column and key
        raise fail(escape(error.diagnosis)) from None
    except AuthBridgeError as error:
        raise fail(escape(error.message)) from None
    except Exception as error:
        message = _failure_message(error)
        if message is None:
            raise
        raise fail(escape(message)) from None


def _failure_message(error: Exception) -> str | None:
    """The message for a database, migration or file failure; ``None`` for anything else.

    SQLAlchemy and Alembic are not imported for this: an error can only be one of theirs when
    the command imported them already.
    """
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_errors is not None and isinstance(error, sqlalchemy_errors.SQLAlchemyError):
        cause = getattr(error, "orig", None) or error
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else "unknown"
        return f"database error: {first_line}"
    alembic_errors = sys.modules.get("alembic.util.exc")
    if alembic_errors is not None and isinstance(error, alembic_errors.CommandError):
        return f"migration failed: {error}"
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or error}{where}"
    return None


def escape(text: str) -> str:
    return text.replace("[", r"\[")


def settings_from_env() -> Settings:
    from authbridge.runtime import Settings

    return Settings.from_env()


def open_keys(settings: Settings) -> Keyring:
    from authbridge.runtime import open_keyring

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
    from authbridge.runtime import open_database

    database = open_database(settings)
    try:
        yield database
    finally:
        database.dispose()


def find_environment(session: Session, keyring: Keyring, name: str) -> Environment:
    """Return environment ``name``; ``default`` is created on first use, others must exist."""
    from authbridge.tenancy import service as tenancy

    return tenancy.environment_named(session, keyring, name)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest delay an option takes (as the API's ``delete_after_seconds``).
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str, option: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d`` or a number of seconds, as a positive timedelta."""
    value = text.strip().lower()
    unit = DURATION_UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    seconds = float(number) * (unit or 1) if number.replace(".", "", 1).isdigit() else 0.0
    if not 0 < seconds <= MAX_DURATION.total_seconds():
        raise CliError(
            f"{option} takes a duration such as 90s, 30m, 12h or 7d (at most 3650d), got {text!r}"
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class InEnvironment:
    """What the commands that run no mechanism work with: keys, a transaction, an environment."""

    keyring: Keyring
    session: Session
    environment: Environment


@contextmanager
def in_environment(env: str) -> Iterator[InEnvironment]:
    """Keys, database and a transaction on environment ``env``, committed when the block ends
    (no bridge: the connectors are not loaded)."""
    settings = settings_from_env()
    keyring = open_keys(settings)
    with opened_database(settings) as database, database.session() as session:
        yield InEnvironment(keyring, session, find_environment(session, keyring, env))


@dataclass(frozen=True)
class Opened:
    """What the commands that use the bridge work with, inside one transaction."""

    bridge: Bridge
    session: Session
    environment: Environment
    public_url_set: bool


@contextmanager
def opened(env: str, connectors: Sequence[Path] | None = None) -> Iterator[Opened]:
    """Settings, keys, database and bridge, and a transaction committed when the block ends.

    The bridge knows the catalog's connectors, ``AUTHBRIDGE_CONNECTORS``' and ``connectors``'
    (the command's ``--connectors``).
    """
    from authbridge.runtime import open_bridge

    settings = settings_from_env()
    keyring = open_keys(settings)
    with opened_database(settings) as database:
        bridge = open_bridge(
            settings,
            keyring,
            database,
            public_url=settings.base_url(),
            connector_folders=connectors or (),
        )
        with database.session() as session:
            environment = find_environment(session, keyring, env)
            yield Opened(bridge, session, environment, settings.public_url is not None)


def public_url_hint(state: Opened) -> None:
    """Warn, on standard error, when URLs are built on the default public URL."""
    if not state.public_url_set:
        err.print(
            f"[yellow]{PUBLIC_URL_ENV_VAR} is not set, so URLs use {state.bridge.public_url}; "
            "set it to the address browsers reach authbridge at.[/yellow]",
            markup=True,
        )


def needs_hint(connector: Connector, settings: ConnectorSettings) -> str | None:
    """What an OAuth connector's configuration still lacks before end users can connect."""
    kind = connector.definition().type
    if kind == "oauth2":
        missing = [
            option
            for option, value in (
                ("--client-id", settings.client_id),
                ("--client-secret", settings.client_secret),
            )
            if not value
        ]
    elif kind == "oauth1":
        missing = [
            option
            for option, value in (
                ("--consumer-key", settings.consumer_key),
                ("--consumer-secret", settings.consumer_secret),
            )
            if not value
        ]
    else:
        return None
    if not missing:
        return None
    return f"'{connector.key}' still needs {' and '.join(missing)} before end users can connect."


def new_table(*headers: str, title: str | None = None) -> Table:
    """A table whose ids and dates are never cut, so that they can be copied."""
    from rich.table import Table

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


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure_logging(level: str) -> None:
    """Log on stderr (:func:`authbridge.runtime.configure_logging`) after checking ``level``."""
    if level.upper() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"use one of {', '.join(LOG_LEVELS).lower()}", param_hint="--log-level"
        )
    from authbridge.runtime import configure_logging

    configure_logging(level)
