"""authbridge for the tests: a bridge, the default environment, the app on a loopback port.

Every fixture runs on the test's ``database`` (SQLite and PostgreSQL). ``keyring`` is the test's
key; ``environment`` and ``end_user`` are rows made through the tenancy repositories; ``bridge``
is a :class:`Bridge` over the database with the connectors of ``sandbox_connectors`` (no
catalog) pointing at a ``sandbox`` of the test's own; ``api`` serves
:func:`authbridge.api.create_app` on loopback, its connectors pointing at the session's
``sandbox_url``.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge.api import create_app
from authbridge.connectors.registry import Registry
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.sandbox import SandboxSettings
from authbridge.sandbox import create_app as create_sandbox
from authbridge.services.bridge import Bridge, KeySource
from authbridge.storage import Database
from authbridge.storage.models import EndUser, Environment
from authbridge.tenancy.repository import (
    EndUserRepository,
    EnvironmentRepository,
    IssuedMasterToken,
    MasterTokenRepository,
)
from authbridge.vault import Keyring
from tests.support.connectors import render_connectors
from tests.support.loopback import port_of, serve

CONNECTORS = Path(__file__).resolve().parent / "sandbox_connectors"
SANDBOX_KEY = "sk_sandbox_0123456789"


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """The sandbox provider on loopback (session-wide: it keeps no state the tests read)."""
    with serve(create_sandbox(SandboxSettings())) as url:
        yield url


@pytest.fixture(scope="session")
def api_connectors(tmp_path_factory: pytest.TempPathFactory, sandbox_url: str) -> Path:
    target = tmp_path_factory.mktemp("api-connectors")
    return render_connectors(CONNECTORS, target, PORT=port_of(sandbox_url))


@dataclass
class Api:
    """The running server: its URL, bridge and a master token, plus request helpers."""

    url: str
    bridge: Bridge
    master_token: str
    environment_id: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.master_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, verify=_tls())

    def call(
        self, method: str, path: str, *, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        with self.client(token) as client:
            return client.request(method, path, **kw)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for the test clients: loading the CA bundle costs ~20 ms a client."""
    return httpx.create_ssl_context()


def make_bridge(database: Database, keyring: Keyring, folder: Path) -> Bridge:
    return Bridge(
        database=database,
        keys=KeySource(keyring),
        registry=Registry.load([folder], include_catalog=False),
        http=OutboundClient(EgressPolicy(allow_loopback=True), timeout=5),
        public_url="http://placeholder.invalid",
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def environment(database: Database, keyring: Keyring) -> Environment:
    with database.session() as session:
        return EnvironmentRepository(session, keyring).get_or_create()


@pytest.fixture
def end_user(database: Database, environment: Environment) -> EndUser:
    with database.session() as session:
        return EndUserRepository(session).create(environment.id, "user-1", name="Ada")


@pytest.fixture
def sandbox() -> Iterator[str]:
    """A sandbox of this test's own (its counters start at zero)."""
    with serve(create_sandbox(SandboxSettings(token_lifetime=60))) as url:
        yield url


@pytest.fixture
async def bridge(
    database: Database, keyring: Keyring, sandbox: str, tmp_path: Path
) -> AsyncIterator[Bridge]:
    folder = render_connectors(CONNECTORS, tmp_path / "connectors", PORT=port_of(sandbox))
    bridge = make_bridge(database, keyring, folder)
    try:
        yield bridge
    finally:
        await bridge.http.aclose()


@pytest.fixture
def api(database: Database, keyring: Keyring, api_connectors: Path) -> Iterator[Api]:
    bridge = make_bridge(database, keyring, api_connectors)
    with database.session() as session:
        environment = EnvironmentRepository(session, keyring).get_or_create()
        issued: IssuedMasterToken = MasterTokenRepository(session).create(environment.id, "tests")
    with serve(create_app(bridge), lifespan="on") as url:
        bridge.public_url = url
        yield Api(url=url, bridge=bridge, master_token=issued.token, environment_id=environment.id)
