"""``authbridge connectors`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from authbridge.cli import app

runner = CliRunner()


def test_list_shows_catalog_with_auth_types() -> None:
    result = runner.invoke(app, ["connectors", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["freshdesk"]["type"] == "api_key"
    assert rows["twilio"]["type"] == "pwd"


def test_list_needs_no_usable_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing connectors reads no database: a URL it cannot use is not its business."""
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", "mysql://nowhere/db")
    result = runner.invoke(app, ["connectors", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert "freshdesk" in {row["key"] for row in json.loads(result.stdout)}


def test_show_prints_fields_and_properties() -> None:
    result = runner.invoke(app, ["connectors", "show", "freshdesk"])
    assert result.exit_code == 0, result.output
    assert "Freshdesk (freshdesk)" in result.stdout
    assert "API key" in result.stdout
    assert "validate: request (default method) https://{{domain}}.freshdesk.com" in result.stdout


def test_show_unknown_connector_exits_1() -> None:
    result = runner.invoke(app, ["connectors", "show", "nope"])
    assert result.exit_code == 1
    assert "no connector named 'nope'" in result.stderr


def test_validate_ok_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "auth.yaml").write_text("type: none\n")
    result = runner.invoke(app, ["connectors", "validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1 connector(s) valid" in result.stdout


def test_validate_broken_folder_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "acme" / "thing"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text(
        "type: apiKey\ndefinition:\n  auth: {}\n  validate: 42\n  colour: blue\n"
    )
    result = runner.invoke(app, ["connectors", "validate", str(tmp_path)])
    assert result.exit_code == 1
    auth = str(folder / "auth.yaml")
    assert "3 problem(s) found" in result.stderr
    assert f"{auth}: definition.auth: at least one field is required" in result.stderr
    assert f"{auth}: definition.validate: must be a URL string" in result.stderr
    assert f"{auth}: definition.colour: unknown key" in result.stderr


def test_list_with_broken_path_explains(tmp_path: Path) -> None:
    folder = tmp_path / "acme" / "thing"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text("type: pwd\ndefinition: {}\n")
    result = runner.invoke(app, ["connectors", "list", "--path", str(tmp_path)])
    assert result.exit_code == 1
    assert "definition.validate: is required" in result.stderr


def test_validate_reports_a_raising_definition_as_a_problem(tmp_path: Path) -> None:
    """Definition code that raises is a problem with file and reason, never a traceback."""
    folder = tmp_path / "acme" / "crashy"
    folder.mkdir(parents=True)
    (folder / "auth.py").write_text(
        "type = 'oauth2'\n\n\ndef definition(context):\n    raise RuntimeError('boom')\n"
    )
    asana = tmp_path / "asana" / "asana"
    asana.mkdir(parents=True)
    (asana / "auth.py").write_text(
        "type = 'oauth2'\n\n\ndef definition():\n"
        "    return {'authUrl': 'https://a.example/auth', 'requestAccessToken': 'https://a.example/t'}\n"
    )
    result = runner.invoke(app, ["connectors", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "1 problem(s) found" in result.stderr
    assert f"{folder / 'auth.py'}: definition: calling it failed: RuntimeError: boom" in (
        result.stderr
    )
