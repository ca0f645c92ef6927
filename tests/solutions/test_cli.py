"""``authbridge solutions`` on SQLite and PostgreSQL, with the example file and the catalog."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import yaml
from typer.testing import CliRunner, Result

from authbridge.cli import app
from authbridge.solutions.repository import SolutionRepository
from authbridge.storage import Database
from authbridge.tenancy.repository import EnvironmentRepository
from authbridge.vault import Keyring
from tests.support.cli import both

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "solutions" / "typeform-to-sheets.yaml"


def ok(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def failed(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return result.stderr


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(dedent(text))
    return path


@both
def test_apply_creates_then_reports_what_changed(
    target: str, opened: tuple[Database, Keyring], tmp_path: Path
) -> None:
    created = ok("solutions", "apply", str(EXAMPLE))
    assert created.stdout.startswith("Created solution 'typeform-to-sheets' (")
    again = ok("solutions", "apply", str(EXAMPLE))
    assert "is up to date: nothing changed" in again.stdout

    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["title"] = "Typeform to Google Sheets"
    spec["configSlots"] = spec["configSlots"][:2]
    spec["configSlots"][1]["schema"]["maxLength"] = 20
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(spec))
    updated = ok("solutions", "apply", str(edited))
    assert updated.stdout.splitlines()[1:] == [
        "  title",
        "  remove config slot 'external_sheet_name'",
        "  change config slot 'external_form_id'",
    ]
    assert updated.stdout.startswith("Updated solution 'typeform-to-sheets' (")

    database, keyring = opened
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        solution = SolutionRepository(session).get_by_key(environment.id, "typeform-to-sheets")
        assert solution is not None
        assert solution.title == "Typeform to Google Sheets"
        assert [slot.connector_key for slot in solution.auth_slots] == ["typeform", "google"]
        assert [slot.external_id for slot in solution.config_slots] == [
            "external_spreadsheet_id",
            "external_form_id",
        ]


@both
def test_list_show_and_delete(target: str, tmp_path: Path) -> None:
    assert "No solutions yet" in ok("solutions", "list").stdout
    ok("solutions", "apply", str(EXAMPLE))
    listed = ok("solutions", "list").stdout
    assert "typeform-to-sheets" in listed
    assert "external_google_sheets_authentication" in listed
    shown = ok("solutions", "show", "typeform-to-sheets").stdout
    assert "auth slot external_typeform_authentication: Typeform" in shown
    assert "accounts:read forms:read responses:read offline" in shown
    assert 'default        "leads"' in shown

    refused = failed("solutions", "delete", "typeform-to-sheets")
    assert "add --yes" in refused
    assert "typeform-to-sheets" in ok("solutions", "list").stdout
    deleted = ok("solutions", "delete", "typeform-to-sheets", "--yes")
    assert deleted.stdout.strip() == "Deleted solution 'typeform-to-sheets' and 0 instance(s)."
    assert "not found" in failed("solutions", "show", "typeform-to-sheets")


@both
def test_bad_files_are_reported_with_the_key_path(target: str, tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", "key: x\ntitle: [unclosed\n")
    assert "is not valid YAML (line" in failed("solutions", "apply", str(broken))
    listed = write(tmp_path, "list.yaml", "- key: x\n")
    assert "must hold a mapping" in failed("solutions", "apply", str(listed))
    wrong = write(
        tmp_path,
        "wrong.yaml",
        """\
        key: demo
        title: Demo
        authSlots:
          - externalId: external_sqs_authentication
            connector: sandbox-nothing
        configSlots:
          - externalId: limit
            schema: {type: integer, minimum: one}
        """,
    )
    message = failed("solutions", "apply", str(wrong))
    assert "configSlots[0].schema: not a valid JSON Schema at minimum" in message
    fixed = wrong.read_text().replace("minimum: one", "minimum: 1")
    wrong.write_text(fixed)
    assert "authSlots[0].connector: no connector named 'sandbox-nothing'" in failed(
        "solutions", "apply", str(wrong)
    )
    assert "No such file" in failed("solutions", "apply", str(tmp_path / "missing.yaml"))
