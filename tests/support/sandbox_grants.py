"""OAuth 2 grants of the sandbox provider.

Its client, tokens from its code flow, its count of refresh requests, and an authentication
stored with those tokens that is due for a refresh; ``stored`` reads one back, decrypted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.services.bridge import Bridge
from authbridge.storage.models import Authentication, Environment
from authbridge.tenancy.repository import EndUserRepository

CLIENT = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}


def sandbox_tokens(sandbox: str) -> dict[str, Any]:
    """Tokens from the sandbox's authorization code flow (approved, without PKCE)."""
    with httpx.Client(base_url=sandbox, follow_redirects=False) as client:
        consent = client.post(
            "/oauth2/authorize",
            data={
                "client_id": CLIENT["client_id"],
                "redirect_uri": "http://127.0.0.1/callback",
                "response_type": "code",
                "scope": "profile",
                "state": "s",
                "decision": "approve",
            },
        )
        code = dict(parse_qsl(urlsplit(consent.headers["location"]).query))["code"]
        answer = client.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://127.0.0.1/callback",
            },
            auth=(CLIENT["client_id"], CLIENT["client_secret"]),
        )
        answer.raise_for_status()
        tokens: dict[str, Any] = answer.json()
        return tokens


def refresh_requests(sandbox: str) -> int:
    stats = httpx.get(sandbox + "/sandbox/stats").json()
    count: int = stats["token_requests"]["refresh_token"]
    return count


def due_oauth_auth(bridge: Bridge, environment: Environment, sandbox: str) -> Authentication:
    tokens = sandbox_tokens(sandbox)
    now = bridge.now()
    with bridge.session() as session:
        ConnectorConfigRepository(session, bridge.keyring).upsert(
            environment.id, "sandbox-oauth2", **CLIENT
        )
        user = EndUserRepository(session).get_or_create(environment.id, "user-1")
        return AuthenticationRepository(session, bridge.keyring).create(
            environment_id=environment.id,
            end_user_id=user.id,
            connector_key="sandbox-oauth2",
            connector_version="1",
            auth_type="oauth2",
            name="Sandbox",
            credentials={
                "access_token": tokens["access_token"],
                "refresh_token": tokens["refresh_token"],
                "token_type": "Bearer",
            },
            expires_at=now + timedelta(seconds=30),
            refresh_due_at=now - timedelta(seconds=1),
        )


def stored(bridge: Bridge, auth_id: str) -> tuple[Authentication, dict[str, Any]]:
    with bridge.session() as session:
        repo = AuthenticationRepository(session, bridge.keyring)
        auth = repo.get_any(auth_id)
        assert auth is not None
        return auth, repo.credentials(auth)
