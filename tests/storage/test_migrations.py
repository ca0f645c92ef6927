from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from authbridge.storage import Database, default_url
from authbridge.storage.migrate import MIGRATIONS, current_revision, head_revision, upgrade
from authbridge.storage.models import metadata


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_every_table_and_index_exists(database: Database) -> None:
    inspector = inspect(database.engine)

    assert set(inspector.get_table_names()) == set(metadata.tables) | {"alembic_version"}
    indexes = {index["name"] for index in inspector.get_indexes("authentications")}
    assert {"ix_authentications_refresh_due_at", "ix_authentications_delete_at"} <= indexes


def test_database_is_at_the_head_revision_and_upgrading_again_changes_nothing(
    database: Database,
) -> None:
    url = database.url.render_as_string(hide_password=False)

    upgrade(url)

    assert current_revision(url) == head_revision() == "0009"


def test_upgrade_creates_a_new_sqlite_database(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    assert current_revision(url) is None

    upgrade(url)

    assert current_revision(url) == head_revision()


def test_migration_scripts_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert list((MIGRATIONS / "versions").glob("r*.py"))
