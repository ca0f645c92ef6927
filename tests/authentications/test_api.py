"""The authentications API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.app import SANDBOX_KEY, Api


def import_key(api: Api, user: str = "user-1", key: str = SANDBOX_KEY, **extra: object) -> dict:
    body = {"connector": "sandbox-apikey", "external_user_id": user, "fields": {"api_key": key}}
    response = api.call("POST", "/v1/authentications", json=body | extra)
    assert response.status_code == 201, response.text
    return response.json()


def test_import_validates_and_names_the_account_from_the_profile(api: Api) -> None:
    created = import_key(api)
    assert created["name"] == "sandbox@example.test"
    assert created["external_user_id"] == "user-1"
    assert created["status"] == "active"
    listed = api.call("GET", "/v1/authentications").json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]


def test_credentials_are_returned_and_the_read_is_audited(api: Api) -> None:
    created = import_key(api)
    response = api.call("GET", f"/v1/authentications/{created['id']}/credentials")
    assert response.status_code == 200
    assert response.json()["credentials"] == {"api_key": SANDBOX_KEY}
    events = api.call("GET", "/v1/audit-events", params={"target_id": created["id"]}).json()
    actions = [event["action"] for event in events["items"]]
    assert actions == ["authentication.created", "authentication.credentials_read"]
    assert SANDBOX_KEY not in str(events)


def test_a_rejected_key_is_a_problem_naming_the_provider_message(api: Api) -> None:
    body = {"connector": "sandbox-apikey", "external_user_id": "u", "fields": {"api_key": "nope"}}
    response = api.call("POST", "/v1/authentications", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "credentials_rejected"
    assert "Invalid API key" in problem["detail"]
    assert "nope" not in response.text
