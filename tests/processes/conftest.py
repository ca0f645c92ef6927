"""Fixtures for tests with real processes: a deployment of authbridge sharing one database.

A :class:`Deployment` is a database (a new PostgreSQL database per test, or a SQLite file in a
data folder every process shares), a keyring the processes get through ``AUTHBRIDGE_KEYS``, the
``default`` environment with a master token and the sandbox's OAuth client configured (seeded
through the repositories before any server starts, so no two servers race to create them), and
a sandbox provider process with the test connector pointing at it. Servers and workers are
started with ``deployment.processes``; all of them are stopped when the test ends.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.connectors.registry import Registry
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.runtime import keyring_json
from authbridge.services.bridge import Bridge, KeySource
from authbridge.storage import Database, default_url
from authbridge.storage.migrate import upgrade
from authbridge.storage.models import Authentication
from authbridge.tenancy.repository import (
    EndUserRepository,
    EnvironmentRepository,
    MasterTokenRepository,
)
from authbridge.vault import Keyring
from tests.support.app import CONNECTORS
from tests.support.connectors import render_connectors
from tests.support.databases import _connect_maintenance
from tests.support.processes import Process, Processes, processes
from tests.support.sandbox_grants import CLIENT, sandbox_tokens

CONNECTOR = "sandbox-oauth2"
POOL_SIZE = 8


@dataclass
class Deployment:
    """One database, its keys and seed data, the sandbox, and the processes of a test."""

    environ: dict[str, str]
    database: Database
    keyring: Keyring
    environment_id: str
    master_token: str
    connectors: Path
    sandbox: Process
    processes: Processes

    def server(self, name: str = "server", **options: Any) -> Process:
        return self.processes.server(
            self.environ, connectors=[self.connectors], name=name, **options
        )

    def worker(self, name: str = "worker", **options: Any) -> Process:
        return self.processes.worker(
            self.environ, connectors=[self.connectors], name=name, **options
        )

    def start(self, processes: list[Process]) -> None:
        """Start ``processes`` side by side; wait until they and the sandbox are ready."""
        self.processes.start_all(processes)
        self.sandbox.wait_ready()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_token}"}

    def bridge(self) -> Bridge:
        """A bridge in the test process over the same database and connectors."""
        return Bridge(
            database=self.database,
            keys=KeySource(self.keyring),
            registry=Registry.load([self.connectors], include_catalog=False),
            http=OutboundClient(EgressPolicy(allow_loopback=True), timeout=10),
            public_url="http://placeholder.invalid",
        )

    def create_oauth_auth(
        self,
        *,
        expires_at: datetime,
        refresh_due_at: datetime,
        user: str = "user-1",
        name: str = "Sandbox",
    ) -> tuple[Authentication, dict[str, Any]]:
        """An OAuth 2 authentication holding fresh sandbox tokens (and those tokens)."""
        self.sandbox.wait_ready()
        tokens = sandbox_tokens(self.sandbox.url)
        with self.database.session() as session:
            end_user = EndUserRepository(session).get_or_create(self.environment_id, user)
            auth = AuthenticationRepository(session, self.keyring).create(
                environment_id=self.environment_id,
                end_user_id=end_user.id,
                connector_key=CONNECTOR,
                connector_version="1",
                auth_type="oauth2",
                name=name,
                credentials={
                    "access_token": tokens["access_token"],
                    "refresh_token": tokens["refresh_token"],
                    "token_type": "Bearer",
                },
                expires_at=expires_at,
                refresh_due_at=refresh_due_at,
            )
        return auth, tokens

    def sandbox_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(self.sandbox.url + "/sandbox/stats", timeout=10).json()
        return stats

    def refresh_requests(self) -> int:
        count: int = self.sandbox_stats()["token_requests"]["refresh_token"]
        return count


def seed(database: Database, keyring: Keyring) -> tuple[str, str]:
    """The ``default`` environment, a master token and the sandbox client's configuration."""
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        issued = MasterTokenRepository(session).create(environment.id, "process tests")
        ConnectorConfigRepository(session, keyring).upsert(environment.id, CONNECTOR, **CLIENT)
        return environment.id, issued.token


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, migrated PostgreSQL database for this test alone; dropped (forcefully) after.

    Its own database rather than the session's: processes killed by the test may leave
    connections behind, which ``DROP DATABASE … WITH (FORCE)`` ends.
    """
    maintenance, maintenance_url = _connect_maintenance()
    name = f"authbridge_p_{secrets.token_hex(6)}"
    with maintenance:
        maintenance.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(maintenance_url).set(database=name).render_as_string(False)
            upgrade(url)
            yield url
        finally:
            maintenance.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def deployment(
    tmp_path: Path, *, database_url: str | None = None, token_lifetime: int = 60
) -> Iterator[Deployment]:
    """Seed the database (PostgreSQL at ``database_url``, else SQLite in a data folder under
    ``tmp_path``), start the sandbox, and stop every process started when the block ends."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    keyring = Keyring.generate()
    environ = {"AUTHBRIDGE_HOME": str(home), "AUTHBRIDGE_KEYS": keyring_json(keyring)}
    if database_url is None:
        url = default_url(home)
        upgrade(url)
        database = Database(url)
    else:
        environ["AUTHBRIDGE_DATABASE_URL"] = database_url
        # Several processes share one PostgreSQL server (max_connections 100 by default, and
        # other tests use it too): 30 connections each, the default, would not fit.
        environ["AUTHBRIDGE_DATABASE_POOL_SIZE"] = str(POOL_SIZE)
        database = Database(database_url, pool_size=4, max_overflow=4)
    try:
        environment_id, master_token = seed(database, keyring)
        with processes(tmp_path / "logs") as started:
            sandbox = started.sandbox(token_lifetime=token_lifetime)
            sandbox.spawn()  # ready by the time it is first needed (see Deployment.start)
            connectors = tmp_path / "connectors"
            render_connectors(
                CONNECTORS / "sandbox" / "oauth",
                connectors / "sandbox" / "oauth",
                PORT=sandbox.port,
            )
            yield Deployment(
                environ=environ,
                database=database,
                keyring=keyring,
                environment_id=environment_id,
                master_token=master_token,
                connectors=connectors,
                sandbox=sandbox,
                processes=started,
            )
    finally:
        database.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder runs real processes: mark it ``processes``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.processes)
