"""Database fixtures: tests that take ``database`` run on SQLite and on PostgreSQL.

SQLite: each test gets its own file in ``tmp_path``, copied from a template migrated once.
PostgreSQL: one database ``authbridge_t_<random>`` per test session, created through the
``test`` database of the server at 127.0.0.1:5432 (trust auth, the current OS user or
``postgres``; ``AUTHBRIDGE_TEST_POSTGRES_URL`` points elsewhere), migrated once, emptied before
each test and dropped at the end. When the server cannot be reached the PostgreSQL tests fail
if ``CI`` is set, and are skipped otherwise.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from authbridge.storage import Database, default_url
from authbridge.storage.migrate import upgrade
from authbridge.storage.models import metadata

POSTGRES_URL_ENV_VAR = "AUTHBRIDGE_TEST_POSTGRES_URL"


def _maintenance_urls() -> list[str]:
    configured = os.environ.get(POSTGRES_URL_ENV_VAR)
    if configured:
        return [configured]
    users = dict.fromkeys([getpass.getuser(), "postgres"])
    return [f"postgresql://{user}@127.0.0.1:5432/test" for user in users]


def _connect_maintenance() -> tuple[psycopg.Connection[tuple[object, ...]], str]:
    reasons = []
    for url in _maintenance_urls():
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=3), url
        except psycopg.OperationalError as error:
            reasons.append(f"{make_url(url).render_as_string(hide_password=True)}: {error}")
    message = "PostgreSQL is not reachable: " + "; ".join(reasons)
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Database]:
    """A freshly created and migrated PostgreSQL database for this test session."""
    maintenance, maintenance_url = _connect_maintenance()
    name = f"authbridge_t_{secrets.token_hex(6)}"
    with maintenance:
        maintenance.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(maintenance_url).set(database=name).render_as_string(False)
            upgrade(url)
            database = Database(url, pool_size=4, max_overflow=4)
            try:
                yield database
            finally:
                database.dispose()
        finally:
            maintenance.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file that each test copies."""
    home = tmp_path_factory.mktemp("sqlite-template")
    upgrade(default_url(home))
    path = home / "authbridge.db"
    assert not path.with_name(path.name + "-wal").exists(), "the template must be checkpointed"
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Database]:
    """An empty, migrated database: a SQLite file in ``tmp_path``, or the session's PostgreSQL."""
    if request.param == "sqlite":
        home = tmp_path / "home"
        home.mkdir()
        shutil.copyfile(sqlite_template, home / "authbridge.db")
        database = Database(default_url(home))
        try:
            yield database
        finally:
            database.dispose()
        return
    shared: Database = request.getfixturevalue("postgres_database")
    with shared.session() as session:
        for table in reversed(metadata.sorted_tables):
            session.execute(delete(table))
    yield shared
