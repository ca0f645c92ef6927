"""``GET /v1/connectors/{key}/import-template``: the exact body of ``POST /v1/authentications``.

Each test fills in the template's ``<...>`` placeholders and posts it, expecting 201. SQLite and
PostgreSQL (the ``api`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.api_calls import assert_problem, sandbox_access_token
from tests.support.app import SANDBOX_KEY, Api


def template(api: Api, key: str, **params: str) -> dict[str, Any]:
    response = api.call("GET", f"/v1/connectors/{key}/import-template", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def placeholders(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [found for item in value.values() for found in placeholders(item)]
    if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
        return [value]
    return []


def test_an_api_key_template_posts_as_it_is_once_filled_in(api: Api) -> None:
    body = template(api, "sandbox-apikey")
    assert body["connector"] == "sandbox-apikey"
    assert body["version"] == "1"
    assert body["variant"] is None
    assert body["fields"] == {
        "api_key": "<API key>",
        "region": "<Region: one of eu, us (optional: remove this line to leave it empty)>",
    }
    assert "tokens" not in body
    body |= {"external_user_id": "user-1", "name": "Imported key"}
    body["fields"] = {"api_key": SANDBOX_KEY, "region": "eu"}
    assert placeholders(body) == []
    created = api.call("POST", "/v1/authentications", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Imported key"


def test_an_oauth2_template_asks_for_tokens_expiry_and_default_scopes(
    api: Api, sandbox_url: str
) -> None:
    body = template(api, "sandbox-oauth2", version="1")
    assert body["tokens"] == {
        "access_token": "<access token>",
        "refresh_token": "<refresh token, or remove this line when there is none>",
    }
    assert body["scopes"] == ["profile"]
    assert "fields" not in body
    expires = datetime.now(UTC) + timedelta(hours=1)
    body |= {
        "external_user_id": "user-1",
        "name": "Imported OAuth",
        "tokens": {"access_token": sandbox_access_token(sandbox_url), "refresh_token": "r1"},
        "expires_at": expires.isoformat(),
    }
    assert placeholders(body) == []
    created = api.call("POST", "/v1/authentications", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["scopes"] == ["profile"]


def test_an_unknown_version_or_variant_is_named(api: Api) -> None:
    unknown = api.call("GET", "/v1/connectors/sandbox-apikey/import-template?version=9")
    assert "versions: 1" in assert_problem(unknown, 404, "connector_not_found")["detail"]
    variant = api.call("GET", "/v1/connectors/sandbox-apikey/import-template?variant=qa")
    assert assert_problem(variant, 422, "invalid_input")["field"] == "variant"
    anonymous = api.call(
        "GET", "/v1/connectors/sandbox-apikey/import-template", token="abk_not_a_token"
    )
    assert_problem(anonymous, 401)
