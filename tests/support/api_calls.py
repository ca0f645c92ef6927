"""Shared steps of the API tests: importing, tokens, host-signed JWTs, problem documents."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from authbridge.tenancy.repository import EnvironmentRepository
from tests.support.app import SANDBOX_KEY, Api

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def import_key(
    api: Api,
    user: str = "user-1",
    key: str = SANDBOX_KEY,
    *,
    token: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Import a sandbox API-key authentication for ``user`` (validated by the sandbox)."""
    body = {"connector": "sandbox-apikey", "external_user_id": user, "fields": {"api_key": key}}
    response = api.call("POST", "/v1/authentications", token=token, json=body | extra)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def user_token(api: Api, external_user_id: str, ttl_seconds: int = 300) -> str:
    """A user token minted by ``POST /v1/user-tokens`` with the master token."""
    body = {"external_user_id": external_user_id, "ttl_seconds": ttl_seconds}
    response = api.call("POST", "/v1/user-tokens", json=body)
    assert response.status_code == 201, response.text
    minted: str = response.json()["token"]
    return minted


def environment_secret(api: Api) -> bytes:
    """The HMAC secret the host signs user tokens and jwt connectors' tokens with."""
    with api.bridge.session() as session:
        environments = EnvironmentRepository(session, api.bridge.keyring)
        environment = environments.get(api.environment_id)
        assert environment is not None
        return environments.jwt_secret(environment)


def host_jwt(
    api: Api,
    sub: str | None = "user-1",
    *,
    lifetime: int = 300,
    secret: bytes | None = None,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A JWT the host signs itself with the environment's secret (``exp`` from ``lifetime``)."""
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now, "exp": now + lifetime} | claims
    if sub is not None:
        payload["sub"] = sub
    return jwt.encode(payload, secret or environment_secret(api), algorithm=algorithm)


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem document with ``status`` (and ``code``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem.keys() >= PROBLEM_KEYS, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/" + problem["code"])
    assert problem["detail"]
    if code is not None:
        assert problem["code"] == code, problem
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    return problem


def sandbox_access_token(sandbox_url: str) -> str:
    """A live access token of the sandbox's OAuth 2 provider (client credentials grant)."""
    response = httpx.post(
        f"{sandbox_url}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "profile"},
        auth=("sandbox-client", "sandbox-secret"),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
