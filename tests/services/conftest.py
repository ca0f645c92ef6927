"""Fixtures for service tests: a bridge over the test database and a sandbox on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from authbridge.sandbox import SandboxSettings
from authbridge.sandbox import create_app as create_sandbox
from authbridge.services.bridge import Bridge
from authbridge.storage import Database
from authbridge.storage.models import Environment
from authbridge.tenancy.repository import EnvironmentRepository
from authbridge.vault import Keyring
from tests.api.conftest import CONNECTORS, make_bridge
from tests.support.connectors import render_connectors
from tests.support.loopback import port_of, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sandbox() -> Iterator[str]:
    """A sandbox of this test's own (its counters start at zero)."""
    with serve(create_sandbox(SandboxSettings(token_lifetime=60))) as url:
        yield url


@pytest.fixture
async def bridge(database: Database, sandbox: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    folder = render_connectors(CONNECTORS, tmp_path / "connectors", PORT=port_of(sandbox))
    bridge = make_bridge(database, Keyring.generate(), folder)
    try:
        yield bridge
    finally:
        await bridge.http.aclose()


@pytest.fixture
def environment(bridge: Bridge) -> Environment:
    with bridge.session() as session:
        return EnvironmentRepository(session, bridge.keyring).get_or_create()
