"""``authbridge worker``: one tick with ``--once``, and a real process stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.cli import app
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.runtime import Settings, open_database, open_keyring
from authbridge.sandbox import SandboxSettings
from authbridge.sandbox import create_app as create_sandbox
from authbridge.storage import Database
from authbridge.storage.models import WebhookEvent, metadata, utcnow
from authbridge.tenancy.repository import EndUserRepository, EnvironmentRepository
from authbridge.webhooks import events
from tests.support.app import CONNECTORS
from tests.support.connectors import render_connectors
from tests.support.loopback import port_of, serve
from tests.support.sandbox_grants import CLIENT, refresh_requests, sandbox_tokens

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database the commands use: a new SQLite file, or the test PostgreSQL (emptied)."""
    if request.param == "sqlite":
        return "sqlite"
    database: Database = request.getfixturevalue("postgres_database")
    with database.session() as session:
        for table in reversed(metadata.sorted_tables):
            session.execute(delete(table))
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", database.url.render_as_string(False))
    return "postgresql"


@pytest.fixture
def sandbox() -> Iterator[str]:
    with serve(create_sandbox(SandboxSettings(token_lifetime=60))) as url:
        yield url


def test_help_lists_the_options() -> None:
    result = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    for option in ("--interval", "--warn-days", "--concurrency", "--once", "--connectors"):
        assert option in result.output


def test_serve_can_leave_the_worker_out() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "--no-worker" in result.output


def test_once_runs_one_tick_against_the_configured_database(
    target: str, home: Path, tmp_path: Path, sandbox: str
) -> None:
    settings = Settings.from_env()
    keyring, _ = open_keyring(settings)
    database = open_database(settings)
    now = utcnow()
    tokens = sandbox_tokens(sandbox)
    try:
        with database.session() as session:
            environment = EnvironmentRepository(session, keyring).get_or_create()
            ConnectorConfigRepository(session, keyring).upsert(
                environment.id, "sandbox-oauth2", **CLIENT
            )
            user = EndUserRepository(session).get_or_create(environment.id, "user-1")
            repo = AuthenticationRepository(session, keyring)
            common = {
                "environment_id": environment.id,
                "end_user_id": user.id,
                "connector_version": "1",
                "now": now,
            }
            due = repo.create(
                connector_key="sandbox-oauth2",
                auth_type="oauth2",
                name="Due",
                credentials={
                    "access_token": tokens["access_token"],
                    "refresh_token": tokens["refresh_token"],
                    "token_type": "Bearer",
                },
                expires_at=now + timedelta(seconds=30),
                refresh_due_at=now - timedelta(seconds=1),
                **common,
            )
            expiring = repo.create(
                connector_key="sandbox-apikey",
                auth_type="api_key",
                name="Expiring",
                credentials={"api_key": "sk_sandbox_0123456789"},
                hard_expires_at=now + timedelta(days=10),
                **common,
            )
            doomed = repo.create(
                connector_key="sandbox-apikey",
                auth_type="api_key",
                name="Doomed",
                credentials={"api_key": "sk_sandbox_0123456789"},
                delete_at=now - timedelta(seconds=1),
                **common,
            )
        connectors = render_connectors(CONNECTORS, tmp_path / "connectors", PORT=port_of(sandbox))

        result = runner.invoke(
            app,
            [
                "worker",
                "--once",
                "--warn-days",
                "14",
                "--connectors",
                str(connectors),
                "--allow-loopback",
            ],
            env={"COLUMNS": "200"},
        )

        assert result.exit_code == 0, result.output
        assert "refreshed=1" in result.output
        assert "warned=1" in result.output
        assert "deleted=1" in result.output
        assert refresh_requests(sandbox) == 1
        with database.session() as session:
            repo = AuthenticationRepository(session, keyring)
            refreshed = repo.get_any(due.id)
            assert refreshed is not None
            assert refreshed.refresh_due_at is not None
            assert refreshed.refresh_due_at > now
            assert repo.get_any(doomed.id) is None
            sent = {
                (event.type, event.payload["authId"])
                for event in session.scalars(select(WebhookEvent))
            }
        assert (events.EXPIRING, expiring.id) in sent
        assert (events.DELETED, doomed.id) in sent
    finally:
        database.dispose()


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        content = path.read_text(encoding="utf-8", errors="replace")
        if text in content:
            return content
        if process.poll() is not None:
            pytest.fail(f"the worker exited early ({process.returncode}):\n{content}")
        time.sleep(0.05)
    pytest.fail(f"{text!r} did not appear:\n{path.read_text(encoding='utf-8')}")


@pytest.mark.processes
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_process_stops_cleanly_on_a_signal(
    home: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    log = tmp_path / "worker.log"
    environ = {**os.environ, "AUTHBRIDGE_HOME": str(home), "COLUMNS": "200"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from authbridge.cli import main; main()",
                "worker",
                "--interval",
                "0.1",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environ,
        )
        try:
            _wait_for(log, "worker started", process, within=30)
            time.sleep(0.3)  # a few ticks
            process.send_signal(stop_signal)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    content = log.read_text(encoding="utf-8")
    assert "worker stopped" in content
    assert "Traceback" not in content


def test_the_worker_runs_without_a_broken_connector_and_says_which(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "connectors" / "acme" / "crashy" / "auth.py"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "type = 'oauth2'\n\n\ndef definition(context):\n    raise RuntimeError('x')\n"
    )
    result = runner.invoke(app, ["worker", "--once", "--connectors", str(tmp_path / "connectors")])
    assert result.exit_code == 0, result.output
    assert "webhooks: 0 delivery attempt(s)" in result.output
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(broken) in message for message in warnings), warnings
