"""What every CLI test needs: a data folder of its own, and the database the commands use.

``home`` points ``AUTHBRIDGE_HOME`` at an empty folder and clears every other setting the
commands read. A test decorated with :data:`both` runs once on a new SQLite file and once on the
test PostgreSQL (emptied first); ``target`` is that database's URL and ``opened`` its database
and keyring, opened as the commands open them. ``invoke`` runs a command; ``ok`` and ``failed``
also check that it succeeded, or failed with one ``Error:`` line and no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner, Result

from authbridge.runtime import Settings, open_database, open_keyring
from authbridge.storage import Database
from authbridge.storage.models import metadata
from authbridge.vault import Keyring

SETTINGS = (
    "AUTHBRIDGE_DATABASE_URL",
    "AUTHBRIDGE_KEYS",
    "AUTHBRIDGE_PUBLIC_URL",
    "AUTHBRIDGE_CONNECTORS",
)

both = pytest.mark.parametrize(
    "target", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder, and an environment that points only at it."""
    folder = tmp_path / "data"
    monkeypatch.setenv("AUTHBRIDGE_HOME", str(folder))
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def target(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database URL the commands use: a new SQLite file, or the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'authbridge.db'}"
    database: Database = request.getfixturevalue("postgres_database")
    with database.session() as session:
        for table in reversed(metadata.sorted_tables):
            session.execute(delete(table))
    url = database.url.render_as_string(hide_password=False)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", url)
    return url


@pytest.fixture
def opened(target: str) -> Iterator[tuple[Database, Keyring]]:
    """The commands' database and keyring, opened as the commands open them."""
    settings = Settings.from_env()
    keyring, _ = open_keyring(settings)
    database = open_database(settings)
    try:
        yield database, keyring
    finally:
        database.dispose()


runner = CliRunner()


def invoke(*args: str, stdin: str | None = None) -> Result:
    from authbridge.cli import app  # on use: loading the plugin imports no command

    return runner.invoke(app, list(args), input=stdin)


def ok(*args: str, stdin: str | None = None) -> Result:
    result = invoke(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def failed(*args: str, stdin: str | None = None) -> Result:
    result = invoke(*args, stdin=stdin)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr  # one line, whatever else the first run said
    assert result.stderr.rstrip().endswith(errors[0])
    return result
