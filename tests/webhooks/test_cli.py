"""``authbridge webhooks`` on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner, Result

from authbridge.cli import app
from authbridge.runtime import Settings, open_database, open_keyring
from authbridge.storage import Database
from authbridge.storage.models import metadata
from authbridge.tenancy.repository import EnvironmentRepository
from authbridge.vault import Keyring
from authbridge.webhooks.repository import WebhookRepository

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def opened(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Database, Keyring]]:
    """The commands' database (a new SQLite file, or the test PostgreSQL) and keyring."""
    if request.param == "postgresql":
        shared: Database = request.getfixturevalue("postgres_database")
        with shared.session() as session:
            for table in reversed(metadata.sorted_tables):
                session.execute(delete(table))
        monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", shared.url.render_as_string(False))
    settings = Settings.from_env()
    keyring, _ = open_keyring(settings)
    database = open_database(settings)
    try:
        yield database, keyring
    finally:
        database.dispose()


def ok(*args: str) -> Result:
    result = runner.invoke(app, ["webhooks", *args])
    assert result.exit_code == 0, result.output
    return result


def failed(*args: str) -> Result:
    result = runner.invoke(app, ["webhooks", *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return result


def add_event(database: Database, keyring: Keyring, event_type: str) -> None:
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        WebhookRepository(session, keyring).add_event(environment.id, event_type, {"authId": "x"})


def test_add_list_and_remove(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    added = ok(
        "add",
        "https://hooks.example.com/in",
        "--event",
        "authentication.invalid",
        "--event",
        "authentication.expiring",
        "--description",
        "alerts",
    )
    header, secret = added.stdout.strip().splitlines()
    assert secret.startswith("whsec_")
    assert "only time" in added.stderr
    with database.session(readonly=True) as session:
        environment = EnvironmentRepository(session, keyring).get_by_name("default")
        assert environment is not None
        repo = WebhookRepository(session, keyring)
        [endpoint] = repo.list_endpoints(environment.id).items
        assert repo.signing_secrets(endpoint, now=endpoint.created_at) == [secret]
    assert endpoint.id in header
    assert endpoint.event_types == ["authentication.invalid", "authentication.expiring"]
    assert endpoint.description == "alerts"

    listed = ok("list").stdout
    assert endpoint.id in listed
    assert "https://hooks.example.com/in" in listed
    assert "authentication.invalid" in listed
    assert secret not in listed
    assert secret.removeprefix("whsec_")[:12] not in listed

    rotated = ok("rotate-secret", endpoint.id).stdout.strip().splitlines()[-1]
    assert rotated.startswith("whsec_")
    assert rotated != secret

    assert endpoint.id in ok("remove", endpoint.id).stdout
    assert endpoint.id not in ok("list").stdout
    assert "no webhook endpoint" in failed("remove", endpoint.id).stderr


def test_bad_input_is_a_clear_error(opened: tuple[Database, Keyring]) -> None:
    assert "--event: unknown event type 'authentication.boom'" in " ".join(
        failed("add", "https://hooks.example.com/", "--event", "authentication.boom").stderr.split()
    )
    assert "https://" in failed("add", "ftp://hooks.example.com/").stderr
    assert "0 webhook endpoints" in ok("list").stdout


def test_deliveries_are_listed_by_status(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    ok("add", "https://hooks.example.com/in")
    add_event(database, keyring, "authentication.expired")

    pending = ok("deliveries", "--status", "pending").stdout
    assert "authentication.expired" in pending
    assert "1 webhook deliveries" in pending
    assert "0 webhook deliveries" in ok("deliveries", "--status", "succeeded").stdout
    assert "1 webhook deliveries" in ok("deliveries").stdout
    result = runner.invoke(app, ["webhooks", "deliveries", "--status", "lost"])
    assert result.exit_code == 2
