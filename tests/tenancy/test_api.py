"""Master tokens and end users over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from sqlalchemy import select

from authbridge.storage.models import MasterToken
from tests.support.api_calls import assert_problem
from tests.support.app import Api


def create_master_token(api: Api, name: str = "deploy") -> dict[str, Any]:
    response = api.call("POST", "/v1/master-tokens", json={"name": name})
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    return issued


def test_a_created_master_token_is_shown_once_and_only_its_hash_is_stored(api: Api) -> None:
    issued = create_master_token(api)
    token = issued["token"]
    assert token.startswith("abk_")
    assert issued["prefix"] == token[:8]
    assert issued["name"] == "deploy"
    assert issued["revoked_at"] is None
    with api.bridge.session() as session:
        record = session.scalars(select(MasterToken).where(MasterToken.id == issued["id"])).one()
        stored = [str(value) for value in vars(record).values()]
    assert record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in value for value in stored)
    # The new token works, and no later answer shows its value again.
    listed = api.call("GET", "/v1/master-tokens", token=token)
    assert listed.status_code == 200
    assert token not in listed.text
    assert all("token" not in item for item in listed.json())


def test_master_tokens_are_listed_oldest_first(api: Api) -> None:
    first = create_master_token(api, "one")
    second = create_master_token(api, "two")
    listed = api.call("GET", "/v1/master-tokens").json()
    assert [item["name"] for item in listed] == ["tests", "one", "two"]
    assert [item["id"] for item in listed][1:] == [first["id"], second["id"]]
    assert {item["prefix"] for item in listed} >= {first["prefix"], second["prefix"]}


def test_a_revoked_master_token_is_refused_with_a_401_problem(api: Api) -> None:
    issued = create_master_token(api)
    assert api.call("GET", "/v1/master-tokens", token=issued["token"]).status_code == 200
    response = api.call("DELETE", f"/v1/master-tokens/{issued['id']}")
    assert response.status_code == 204
    refused = api.call("GET", "/v1/master-tokens", token=issued["token"])
    problem = assert_problem(refused, 401, "unauthenticated")
    assert "revoked" in problem["detail"]
    assert issued["token"] not in refused.text
    # Gone from the default list, still shown (as revoked) on request; revoking again is 404.
    active = api.call("GET", "/v1/master-tokens").json()
    assert issued["id"] not in [item["id"] for item in active]
    everything = api.call("GET", "/v1/master-tokens", params={"include_revoked": True}).json()
    revoked = next(item for item in everything if item["id"] == issued["id"])
    assert revoked["revoked_at"] is not None
    assert_problem(api.call("DELETE", f"/v1/master-tokens/{issued['id']}"), 404, "not_found")


def test_a_master_token_can_revoke_itself_and_is_refused_afterwards(api: Api) -> None:
    issued = create_master_token(api)
    response = api.call("DELETE", f"/v1/master-tokens/{issued['id']}", token=issued["token"])
    assert response.status_code == 204
    assert_problem(api.call("GET", "/v1/end-users", token=issued["token"]), 401)


def test_an_unknown_or_missing_token_is_a_401_problem(api: Api) -> None:
    unknown = api.call("GET", "/v1/authentications", token="abk_" + "x" * 43)
    assert_problem(unknown, 401, "unauthenticated")
    neither = api.call("GET", "/v1/authentications", token="hello")
    assert_problem(neither, 401, "unauthenticated")
    missing = httpx.get(f"{api.url}/v1/authentications", timeout=10)
    assert_problem(missing, 401, "unauthenticated")


def test_end_users_are_created_updated_read_and_listed(api: Api) -> None:
    body = {"external_user_id": "u-1", "name": "Ada", "email": "ada@example.test"}
    created = api.call("PUT", "/v1/end-users/u-1", json=body)
    assert created.status_code == 200, created.text
    assert {key: created.json()[key] for key in body} == body
    updated = api.call("PUT", "/v1/end-users/u-1", json=body | {"name": "Ada L."}).json()
    assert updated["id"] == created.json()["id"]
    assert updated["name"] == "Ada L."
    read = api.call("GET", "/v1/end-users/u-1").json()
    assert read == updated
    api.call("PUT", "/v1/end-users/u-2", json={"external_user_id": "u-2"})
    listed = api.call("GET", "/v1/end-users").json()
    assert [item["external_user_id"] for item in listed["items"]] == ["u-1", "u-2"]
    assert listed["next_cursor"] is None


def test_end_users_are_paginated(api: Api) -> None:
    for number in range(5):
        name = f"u-{number}"
        api.call("PUT", f"/v1/end-users/{name}", json={"external_user_id": name})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.call("GET", "/v1/end-users", params=params).json()
        assert len(page["items"]) <= 2
        seen += [item["external_user_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"u-{number}" for number in range(5)]


def test_an_end_user_path_and_body_must_agree(api: Api) -> None:
    response = api.call("PUT", "/v1/end-users/u-1", json={"external_user_id": "u-2"})
    problem = assert_problem(response, 422, "invalid_input")
    assert problem["field"] == "external_user_id"
    assert_problem(api.call("GET", "/v1/end-users/u-1"), 404, "not_found")
    assert_problem(api.call("GET", "/v1/end-users/u-2"), 404, "not_found")
