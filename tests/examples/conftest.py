"""Fixtures for the reference examples: one loopback server with every provider, connector
folders rendered from ``connectors/`` with its port, and an outbound client that reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from authbridge.connectors.registry import Registry
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.mechanisms import Context
from tests.support.connectors import render_connectors
from tests.support.loopback import serve
from tests.support.providers import ProviderSuite

TEMPLATES = Path(__file__).resolve().parent / "connectors"
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
LOOPBACK_POLICY = EgressPolicy(allow_loopback=True, resolve={"*.freshdesk.test": "127.0.0.1"})


@pytest.fixture(scope="session")
def provider_server() -> Iterator[tuple[ProviderSuite, str]]:
    suite = ProviderSuite()
    with serve(suite.app) as base_url:
        yield suite, base_url


@pytest.fixture
def providers(provider_server: tuple[ProviderSuite, str]) -> ProviderSuite:
    """The provider services, with nothing received yet."""
    suite, _ = provider_server
    suite.reset()
    return suite


@pytest.fixture
def base_url(provider_server: tuple[ProviderSuite, str]) -> str:
    return provider_server[1]


@pytest.fixture
def port(base_url: str) -> int:
    found = urlsplit(base_url).port
    assert found is not None
    return found


@pytest.fixture
def connector_folder(tmp_path: Path, port: int) -> Callable[[str], Path]:
    """``connector_folder("yaml")``: the ``connectors/yaml`` tree rendered for this server."""

    def render(kind: str) -> Path:
        target = tmp_path / kind
        if not target.exists():
            render_connectors(TEMPLATES / kind, target, PORT=port)
        return target

    return render


@pytest.fixture
def registry(connector_folder: Callable[[str], Path]) -> Callable[[str], Registry]:
    """``registry("python")``: only that format's reference connectors, no catalog."""

    def load(kind: str) -> Registry:
        return Registry.load([connector_folder(kind)], include_catalog=False)

    return load


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundClient]:
    async with OutboundClient(LOOPBACK_POLICY) as client:
        yield client


@pytest.fixture
def make_context(outbound: OutboundClient) -> Callable[..., Context]:
    """``make_context(domain=..., apiKey=...)``: a context at :data:`NOW` with those fields."""

    def make(**fields: Any) -> Context:
        return Context(http=outbound, now=NOW, fields=fields)

    return make
