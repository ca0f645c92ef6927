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


def test_add_refuses_local_addresses_unless_loopback_is_allowed(
    opened: tuple[Database, Keyring],
) -> None:
    refused = failed("add", "http://127.1:9/in").stderr
    assert "127.0.0.1 (written '127.1'), a loopback address" in " ".join(refused.split())
    assert "loopback" in failed("add", "http://localhost:9/in").stderr
    ok("add", "http://127.1:9/in", "--allow-loopback")
    assert "unspecified" in failed("add", "http://0:9/in", "--allow-loopback").stderr
    assert "1 webhook endpoints" in ok("list").stdout


def test_add_a_tray_endpoint_with_its_warning_window(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    ok(
        "add",
        "https://hooks.example.com/tray",
        "--payload-format",
        "tray",
        "--expiry-warning-days",
        "10",
    )
    listed = ok("list").stdout
    assert "tray" in listed
    assert "authentication.expiring" in listed
    with database.session(readonly=True) as session:
        environment = EnvironmentRepository(session, keyring).get_by_name("default")
        assert environment is not None
        [endpoint] = WebhookRepository(session, keyring).list_endpoints(environment.id).items
    assert (endpoint.payload_format, endpoint.expiry_warning_days) == ("tray", 10)
    wrong = failed(
        "add",
        "https://hooks.example.com/",
        "--payload-format",
        "tray",
        "--event",
        "authentication.created",
    ).stderr
    assert "--event: payload_format 'tray' carries only" in " ".join(wrong.split())
    assert (
        "--expiry-warning-days"
        in failed("add", "https://hooks.example.com/", "--expiry-warning-days", "0").stderr
    )


def endpoint_and_failed_events(
    database: Database, keyring: Keyring, count: int
) -> tuple[str, list[str]]:
    """An endpoint (disabled while ``count`` events were written: each has a failed delivery)."""
    ok("add", "https://hooks.example.com/in")
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        repo = WebhookRepository(session, keyring)
        [endpoint] = repo.list_endpoints(environment.id).items
        endpoint.enabled = False
        session.flush()
        ids = [
            repo.add_event(environment.id, "authentication.expired", {"authId": str(n)}).id
            for n in range(count)
        ]
        endpoint.enabled = True
        return endpoint.id, ids


def test_redeliver_a_range_of_failed_events_and_one_event(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    endpoint_id, event_ids = endpoint_and_failed_events(database, keyring, 3)
    assert "3 webhook deliveries" in ok("deliveries", "--status", "failed").stdout

    queued = ok("redeliver", endpoint_id, "--since", "1d", "--failed").stdout
    assert "Queued 3 failed events" in queued
    assert "the worker sends them" in queued
    assert "3 webhook deliveries" in ok("deliveries", "--status", "pending").stdout
    again = " ".join(ok("redeliver", endpoint_id, "--since", "2000-01-01").stdout.split())
    assert "Queued 0 events" in again
    assert "3 already waiting" in again
    one = " ".join(ok("redeliver", endpoint_id, "--event", event_ids[0]).stdout.split())
    assert "already waiting" in one
    assert "3 webhook deliveries" in ok("deliveries", "--status", "pending").stdout


def test_redeliver_explains_what_is_wrong(opened: tuple[Database, Keyring]) -> None:
    database, keyring = opened
    endpoint_id, [event_id] = endpoint_and_failed_events(database, keyring, 1)
    cases = {
        ("redeliver", endpoint_id): "either --event EVENT_ID or --since WHEN",
        ("redeliver", endpoint_id, "--event", event_id, "--since", "1d"): "either --event",
        ("redeliver", endpoint_id, "--event", event_id, "--failed"): "go with --since",
        ("redeliver", endpoint_id, "--since", "yesterday"): "--since: 'yesterday' is not a time",
        ("redeliver", endpoint_id, "--since", "1d", "--until", "2d"): "since must be earlier",
        ("redeliver", "nope", "--since", "1d"): "no webhook endpoint with id 'nope'",
        ("redeliver", endpoint_id, "--event", "nope"): "no webhook event with id 'nope'",
    }
    for args, message in cases.items():
        result = failed(*args)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)
        assert result.stderr.startswith("Error:"), result.stderr
    assert "Disabled" in ok("disable", endpoint_id).stdout
    assert "disabled; enable it first" in failed("redeliver", endpoint_id, "--since", "1d").stderr
    assert "Enabled" in ok("enable", endpoint_id).stdout
    assert (
        "Queued 1 failed events" in ok("redeliver", endpoint_id, "--since", "1d", "--failed").stdout
    )
    assert "no webhook endpoint" in failed("enable", "nope").stderr
    for command in ("redeliver", "enable", "disable"):
        assert ok(command, "--help").stdout
