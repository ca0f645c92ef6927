"""Running the Alembic migrations from Python, with no ``alembic.ini`` at run time.

The migration scripts ship inside the package (``authbridge/storage/migrations``). Upgrades run
in one transaction; on PostgreSQL an advisory lock makes concurrent upgrades (several processes
starting at once) run one after the other, and SQLite's write lock does the same there.

To write a new revision during development, autogenerate it against a database at head::

    from alembic import command
    from authbridge.storage.migrate import alembic_config
    command.revision(alembic_config("sqlite:///dev.db"), "what changed", autogenerate=True)
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.pool import NullPool

from authbridge.errors import AuthBridgeError
from authbridge.storage.db import make_engine, normalize_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK_KEY = 0x61757468_62726467  # "authbrdg"


def alembic_config(url: str | None = None) -> Config:
    """Return an Alembic configuration pointing at the packaged migrations (and ``url``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    if url is not None:
        # ConfigParser interpolates '%', which URL-encoded passwords may contain.
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest revision id of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise AuthBridgeError("the packaged migrations have no revision")
    return head


def current_revision(url: str) -> str | None:
    """Return the revision the database at ``url`` is at (``None`` when never migrated)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default)."""
    engine = make_engine(url, sqlite_foreign_keys=False, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            if connection.dialect.name == "sqlite":
                _check_sqlite_foreign_keys(connection)
    finally:
        engine.dispose()


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    # Migrations run with enforcement off (batch mode recreates tables); check the result once.
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        tables = sorted({str(problem[0]) for problem in problems})
        raise AuthBridgeError(
            "the migration left rows whose foreign keys point nowhere in: " + ", ".join(tables)
        )
