"""``authbridge import FILE.jsonl`` on SQLite and PostgreSQL.

The connectors are the API tests' sandbox connectors, validated by the sandbox provider on a
loopback port (hence ``--allow-loopback``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.cli import app
from authbridge.sandbox import SandboxSettings
from authbridge.sandbox import create_app as create_sandbox
from authbridge.storage import Database
from authbridge.storage.models import Authentication
from authbridge.vault import Keyring
from tests.support.app import CONNECTORS
from tests.support.cli import both
from tests.support.connectors import render_connectors
from tests.support.loopback import port_of, serve

runner = CliRunner()
GOOD_KEY = "sk_sandbox_0123456789"
WRONG_KEY = "sk_wrong_5f3e2d1c0b"


@pytest.fixture(scope="module")
def sandbox_connectors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with serve(create_sandbox(SandboxSettings())) as url:
        target = tmp_path_factory.mktemp("import-connectors")
        yield render_connectors(CONNECTORS, target, PORT=port_of(url))


def body(user: str = "u-1", key: str = GOOD_KEY, **extra: Any) -> str:
    document = {"connector": "sandbox-apikey", "external_user_id": user, "fields": {"api_key": key}}
    return json.dumps(document | extra)


def run_import(
    tmp_path: Path, connectors: Path, lines: list[str], *options: str
) -> tuple[Result, str]:
    source = tmp_path / "auths.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["import", str(source), "--allow-loopback", "--connectors", str(connectors), *options]
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result, result.output


def stored(opened: tuple[Database, Keyring]) -> list[tuple[str, dict[str, Any]]]:
    """(name, credentials) of every stored authentication, oldest first."""
    database, keyring = opened
    with database.session(readonly=True) as session:
        auths = session.scalars(select(Authentication).order_by(Authentication.created_at)).all()
        repository = AuthenticationRepository(session, keyring)
        return [(auth.name, repository.credentials(auth)) for auth in auths]


@both
def test_good_lines_are_imported_and_each_bad_line_is_reported_by_number(
    opened: tuple[Database, Keyring], tmp_path: Path, sandbox_connectors: Path
) -> None:
    lines = [
        "# exported from the old system",
        body("u-1", name="First"),
        "",
        '{"connector": "sandbox-apikey", ',
        body("u-2", connector="no-such-connector"),
        body("u-3", key=WRONG_KEY),
        json.dumps({"connector": "sandbox-apikey", "fields": {"api_key": GOOD_KEY}}),
        body("u-4", colour="blue"),
        "[1, 2]",
        body("u-5", name="Last"),
    ]
    result, output = run_import(tmp_path, sandbox_connectors, lines)
    assert result.exit_code == 1
    assert result.stdout.strip() == "imported 2, failed 6"
    assert "line 4: not valid JSON" in output
    assert "line 5: no connector named 'no-such-connector'" in output
    assert "line 6: " in output  # the provider refused the key
    assert "line 7: external_user_id is required" in output
    assert "line 8: colour: unknown key" in output
    assert "line 9: must be a JSON object" in output
    for number in (1, 2, 3, 10):
        assert f"line {number}:" not in output
    assert WRONG_KEY not in output
    assert GOOD_KEY not in output
    assert [name for name, _ in stored(opened)] == ["First", "Last"]


@both
def test_stop_on_error_stops_at_the_first_failed_line(
    opened: tuple[Database, Keyring], tmp_path: Path, sandbox_connectors: Path
) -> None:
    lines = [body("u-1", name="First"), "not json", body("u-2", name="Never")]
    result, output = run_import(tmp_path, sandbox_connectors, lines, "--stop-on-error")
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in output
    assert result.stdout.startswith("imported 1, failed 1, not attempted 1")
    assert [name for name, _ in stored(opened)] == ["First"]


@both
def test_a_dry_run_checks_every_line_and_stores_nothing(
    opened: tuple[Database, Keyring], tmp_path: Path, sandbox_connectors: Path
) -> None:
    lines = [body("u-1"), body("u-2", key=WRONG_KEY)]
    result, output = run_import(tmp_path, sandbox_connectors, lines, "--dry-run")
    assert result.exit_code == 1
    assert "line 2: " in output
    assert result.stdout.strip() == "checked 1, failed 1 (dry run: nothing stored)"
    assert stored(opened) == []

    clean, _ = run_import(tmp_path, sandbox_connectors, [body("u-1")], "--dry-run")
    assert clean.exit_code == 0
    assert stored(opened) == []


@both
def test_skip_validate_imports_without_asking_the_provider(
    opened: tuple[Database, Keyring], tmp_path: Path, sandbox_connectors: Path
) -> None:
    lines = [body("u-1", key=WRONG_KEY), body("u-2", version="7")]
    result, output = run_import(tmp_path, sandbox_connectors, lines, "--skip-validate")
    assert result.exit_code == 1
    assert "line 2: connector 'sandbox-apikey' has no version 7 (versions: 1)" in output
    assert result.stdout.strip() == "imported 1, failed 1"
    assert [credentials for _, credentials in stored(opened)] == [{"api_key": WRONG_KEY}]


def test_a_missing_file_is_one_clear_error(home: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "nowhere.jsonl")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "No such file or directory" in result.stderr
