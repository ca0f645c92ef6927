"""SDK tests run against a real authbridge server (the ``api`` fixture of
``tests/support/app.py``) and real providers on loopback: the sandbox, and an OAuth 2 provider
that revokes tokens on demand.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from authbridge.connectors.registry import Registry
from authbridge.sdk import Authentication, Client
from tests.support.app import Api
from tests.support.connectors import render_connectors
from tests.support.loopback import port_of, serve
from tests.support.oauth2_provider import OAuth2Provider

CONNECTORS = Path(__file__).resolve().parent / "connectors"


@dataclass
class RevokingProvider(OAuth2Provider):
    """The test OAuth 2 provider, plus: which bearer tokens ``GET /me`` saw, and a switch that
    refuses every token (a provider that keeps answering 401 after a refresh)."""

    url: str = ""
    me_tokens: list[str] = field(default_factory=list)
    refuse_all: bool = False

    async def me(self, request: Request) -> Response:
        self.me_tokens.append(request.headers.get("authorization", "").partition(" ")[2])
        if self.refuse_all:
            self.access_tokens.clear()
        return await super().me(request)

    def grant(self) -> tuple[str, str]:
        """An access and a refresh token, as if an end user had connected."""
        access, refresh = "at-" + secrets.token_urlsafe(12), "rt-" + secrets.token_urlsafe(12)
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return access, refresh

    def revoke(self, access_token: str) -> None:
        """Revoke an access token server-side: ``/me`` answers 401 for it from now on."""
        self.access_tokens.discard(access_token)

    def refreshes(self) -> int:
        return sum(1 for sent in self.token_requests if sent.form["grant_type"] == "refresh_token")


@pytest.fixture
def provider() -> Iterator[RevokingProvider]:
    """A fresh OAuth 2 provider on loopback, rotating refresh tokens."""
    provider = RevokingProvider(rotate_refresh_tokens=True)
    with serve(provider.app) as url:
        provider.url = url
        yield provider


@pytest.fixture
def sdk_api(api: Api, provider: RevokingProvider, sandbox_url: str, tmp_path: Path) -> Api:
    """The server with the SDK tests' connectors: ``sdk-oauth2`` (the provider, configured
    with its client) and ``sandbox-apikey`` with request rules (the sandbox)."""
    folder = render_connectors(
        CONNECTORS,
        tmp_path / "sdk-connectors",
        PROVIDER_PORT=port_of(provider.url),
        SANDBOX_PORT=port_of(sandbox_url),
    )
    api.bridge.registry = Registry.load([folder], include_catalog=False)
    body = {"client_id": provider.client_id, "client_secret": provider.client_secret}
    answer = api.call("PUT", "/v1/connector-configs/sdk-oauth2", json=body)
    assert answer.status_code == 200, answer.text
    return api


@pytest.fixture
def bridge(sdk_api: Api) -> Iterator[Client]:
    with Client(sdk_api.url, sdk_api.master_token) as client:
        yield client


def connect_oauth(bridge: Client, provider: RevokingProvider, user: str = "user-1") -> str:
    """Import an ``sdk-oauth2`` authentication holding a live token valid for an hour."""
    access, refresh = provider.grant()
    auth: Authentication = bridge.import_authentication(
        "sdk-oauth2",
        external_user_id=user,
        tokens={"access_token": access, "refresh_token": refresh, "token_type": "bearer"},
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        validate=False,
    )
    return auth.id
