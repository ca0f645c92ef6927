"""Starting quickly: the cheap schema check, and what ``import authbridge.sdk`` leaves out.

The figures themselves are measured by ``bench/startup.py``; these tests pin the behaviour that
makes them small (Alembic not imported when the schema is current, the SDK not importing the
server), since wall-clock assertions would fail on a loaded machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from authbridge.runtime import (
    MIGRATION_SCRIPTS,
    Settings,
    database_revisions,
    migrate_database,
    packaged_head_revision,
)
from authbridge.storage import Database, default_url
from authbridge.storage.migrate import MIGRATIONS, head_revision, upgrade

SERVER_MODULES = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "authbridge.api")


def imported_after(code: str, *, environ: dict[str, str] | None = None) -> set[str]:
    """The top-level names of the modules (and ``authbridge.*`` packages) a fresh interpreter
    holds after running ``code``."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=environ,
    )
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return set(modules)


def write_script(folder: Path, name: str, header: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(header), encoding="utf-8")


# -- the head revision without Alembic -----------------------------------------------------------


def test_the_head_read_from_the_scripts_is_alembics_head() -> None:
    assert MIGRATION_SCRIPTS == MIGRATIONS / "versions"
    assert packaged_head_revision() == head_revision()


def test_the_head_is_the_revision_no_script_revises(tmp_path: Path) -> None:
    write_script(tmp_path, "r2.py", 'revision: str = "b"\ndown_revision: str | None = "a"\n')
    write_script(tmp_path, "r1.py", "revision = 'a'  # the first\ndown_revision = None\n")
    write_script(tmp_path, "r3.py", 'revision: str = "c"\ndown_revision: str | None = "b"\n')
    write_script(tmp_path, "__init__.py", '"""Not a revision."""\n')

    assert packaged_head_revision(tmp_path) == "c"


@pytest.mark.parametrize(
    "scripts",
    [
        pytest.param({}, id="no scripts"),
        pytest.param(
            {
                "r1.py": 'revision = "a"\ndown_revision = None\n',
                "r2.py": 'revision = "b"\ndown_revision = "a"\n',
                "r3.py": 'revision = "c"\ndown_revision = "a"\n',
            },
            id="two heads",
        ),
        pytest.param(
            {
                "r1.py": 'revision = "a"\ndown_revision = None\n',
                "r2.py": 'revision = "b"\ndown_revision = ("a", "x")\n',
            },
            id="a merge",
        ),
        pytest.param(
            {"r1.py": 'revision = "a"\ndown_revision = "gone"\n'}, id="a parent that is missing"
        ),
        pytest.param({"r1.py": "revision = REVISION\ndown_revision = None\n"}, id="not a string"),
        pytest.param(
            {
                "r1.py": 'revision = "a"\ndown_revision = None\n',
                "r2.py": 'revision = "a"\ndown_revision = None\n',
            },
            id="one revision twice",
        ),
    ],
)
def test_alembic_decides_when_the_scripts_are_not_one_plain_chain(
    tmp_path: Path, scripts: dict[str, str]
) -> None:
    tmp_path.mkdir(exist_ok=True)
    for name, header in scripts.items():
        write_script(tmp_path, name, header)

    assert packaged_head_revision(tmp_path) is None


# -- the check against the database ----------------------------------------------------------


def test_the_revisions_are_read_from_a_migrated_database(database: Database) -> None:
    url = database.url.render_as_string(hide_password=False)

    assert database_revisions(url) == {head_revision()}


def test_a_database_never_migrated_has_no_revision(tmp_path: Path) -> None:
    assert database_revisions(default_url(tmp_path)) == set()


def test_a_database_behind_is_upgraded(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    upgrade(url, "0004")

    revision = migrate_database(Settings(home=tmp_path))

    assert revision == head_revision()
    assert database_revisions(url) == {revision}


def test_a_current_database_is_checked_without_importing_alembic(tmp_path: Path) -> None:
    upgrade(default_url(tmp_path))

    modules = imported_after(
        "from authbridge.runtime import Settings, migrate_database\n"
        f"print(migrate_database(Settings(home=__import__('pathlib').Path({str(tmp_path)!r}))))"
    )

    assert "alembic" not in modules


def test_a_new_database_is_migrated_by_alembic(tmp_path: Path) -> None:
    revision = migrate_database(Settings(home=tmp_path / "new"))

    assert revision == head_revision()
    assert database_revisions(default_url(tmp_path / "new")) == {revision}


# -- the SDK ---------------------------------------------------------------------------------


def test_importing_the_sdk_does_not_import_the_server() -> None:
    modules = imported_after("import authbridge.sdk")

    assert not set(SERVER_MODULES) & modules
    assert not {
        name for name in modules if name.startswith(("authbridge.storage", "authbridge.services"))
    }


def test_the_sdk_imports_the_auth_mechanisms_only_when_request_auth_is_used() -> None:
    assert "authbridge.mechanisms" not in imported_after("import authbridge.sdk")
    assert "authbridge.mechanisms" in imported_after("from authbridge.sdk import RequestAuth")
