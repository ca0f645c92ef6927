"""Authentications over their life: listed, paged, renamed, scheduled, deleted and audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.storage.models import AuthStatus
from tests.support.api_calls import assert_problem, import_key, user_token
from tests.support.app import SANDBOX_KEY, Api
from tests.support.rows import set_status


def import_oauth2(api: Api, user: str = "user-1", **tokens: str) -> dict[str, Any]:
    body = {
        "connector": "sandbox-oauth2",
        "external_user_id": user,
        "tokens": tokens or {"access_token": "at-1", "refresh_token": "rt-1"},
        "validate": False,
    }
    response = api.call("POST", "/v1/authentications", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def change_stored(api: Api, auth_id: str, **change: Any) -> None:
    """Change an authentication directly through the repository (as background work would)."""
    with api.bridge.session() as session:
        repo = AuthenticationRepository(session, api.bridge.keyring)
        auth = repo.get_any(auth_id)
        assert auth is not None
        if "status" in change:
            set_status(session, auth, change["status"], last_error=change.get("last_error"))
        if "delete_at" in change:
            repo.schedule_deletion(auth, change["delete_at"])


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_the_list_filters_by_end_user_connector_and_status(api: Api) -> None:
    alice_key = import_key(api, "alice")
    alice_oauth = import_oauth2(api, "alice")
    bob_key = import_key(api, "bob")
    change_stored(api, bob_key["id"], status=AuthStatus.INVALID, last_error="revoked")

    def listed(**params: str) -> list[str]:
        response = api.call("GET", "/v1/authentications", params=params)
        assert response.status_code == 200, response.text
        return ids(response.json())

    assert listed() == [alice_key["id"], alice_oauth["id"], bob_key["id"]]
    assert listed(external_user_id="alice") == [alice_key["id"], alice_oauth["id"]]
    assert listed(external_user_id="nobody") == []
    assert listed(connector="sandbox-apikey") == [alice_key["id"], bob_key["id"]]
    assert listed(connector="sandbox-apikey", external_user_id="bob") == [bob_key["id"]]
    assert listed(status="active") == [alice_key["id"], alice_oauth["id"]]
    assert listed(status="invalid") == [bob_key["id"]]
    invalid = api.call("GET", "/v1/authentications", params={"status": "invalid"}).json()
    assert invalid["items"][0]["last_error"] == "revoked"
    assert_problem(api.call("GET", "/v1/authentications", params={"status": "zzz"}), 422)


def test_the_list_is_paged_in_creation_order(api: Api) -> None:
    created = [import_key(api, f"user-{number}")["id"] for number in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.call("GET", "/v1/authentications", params=params).json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == created
    bad = api.call("GET", "/v1/authentications", params={"cursor": "not-a-cursor"})
    assert assert_problem(bad, 422)["field"] == "cursor"


def test_an_authentication_is_renamed(api: Api) -> None:
    created = import_key(api)
    path = f"/v1/authentications/{created['id']}"
    response = api.call("PATCH", path, json={"name": "  Production  "})
    assert response.status_code == 200, response.text
    renamed = response.json()
    assert renamed["name"] == "Production"
    assert parse(renamed["updated_at"]) >= parse(created["updated_at"])
    assert api.call("GET", path).json()["name"] == "Production"
    assert assert_problem(api.call("PATCH", path, json={"name": "   "}), 422)["field"] == "name"
    assert assert_problem(api.call("PATCH", path, json={"name": "a\x07b"}), 422)["field"] == "name"
    assert_problem(api.call("PATCH", "/v1/authentications/nope", json={"name": "x"}), 404)


def test_a_deleted_authentication_is_gone_and_the_deletion_audited(api: Api) -> None:
    created = import_key(api)
    path = f"/v1/authentications/{created['id']}"
    response = api.call("DELETE", path)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(api.call("GET", path), 404, "not_found")
    assert_problem(api.call("GET", f"{path}/credentials"), 404, "not_found")
    assert_problem(api.call("DELETE", path), 404, "not_found")
    assert ids(api.call("GET", "/v1/authentications").json()) == []
    events = api.call("GET", "/v1/audit-events", params={"target_id": created["id"]}).json()
    assert [event["action"] for event in events["items"]] == [
        "authentication.created",
        "authentication.deleted",
    ]
    assert events["items"][1]["detail"] == {"connector": "sandbox-apikey"}


def test_a_future_delete_at_is_stored_and_can_be_cleared(api: Api) -> None:
    created = import_key(api)
    path = f"/v1/authentications/{created['id']}"
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    response = api.call("PATCH", path, json={"delete_at": when.isoformat()})
    assert response.status_code == 200, response.text
    assert parse(response.json()["delete_at"]) == when
    assert parse(api.call("GET", path).json()["delete_at"]) == when
    assert api.call("GET", f"{path}/credentials").status_code == 200  # still served
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused = api.call("PATCH", path, json={"delete_at": past})
    assert assert_problem(refused, 422, "invalid_input")["field"] == "delete_at"
    cleared = api.call("PATCH", path, json={"clear_delete_at": True})
    assert cleared.json()["delete_at"] is None


def test_an_import_can_schedule_its_deletion(api: Api) -> None:
    before = datetime.now(UTC)
    created = import_key(api, delete_after_seconds=3600)
    delete_at = parse(created["delete_at"])
    assert before + timedelta(seconds=3590) <= delete_at <= before + timedelta(seconds=3700)
    both = {"delete_after_seconds": 60, "delete_at": (before + timedelta(days=1)).isoformat()}
    body = {"connector": "sandbox-apikey", "external_user_id": "u", "fields": {"api_key": "k"}}
    refused = api.call("POST", "/v1/authentications", json=body | both | {"validate": False})
    assert_problem(refused, 422, "invalid_input")


def test_an_authentication_past_its_delete_at_is_no_longer_served(api: Api) -> None:
    kept = import_key(api, "user-1")
    expired = import_key(api, "user-1")
    change_stored(api, expired["id"], delete_at=datetime.now(UTC) - timedelta(seconds=1))
    path = f"/v1/authentications/{expired['id']}"
    assert_problem(api.call("GET", path), 404, "not_found")
    assert_problem(api.call("GET", f"{path}/credentials"), 404, "not_found")
    assert_problem(api.call("PATCH", path, json={"name": "back"}), 404, "not_found")
    assert ids(api.call("GET", "/v1/authentications").json()) == [kept["id"]]
    token = user_token(api, "user-1")
    assert ids(api.call("GET", "/v1/authentications", token=token).json()) == [kept["id"]]


def test_credentials_never_include_the_refresh_token(api: Api) -> None:
    created = import_oauth2(api, access_token="at-secret-1", refresh_token="rt-secret-1")
    for token in (None, user_token(api, "user-1")):
        response = api.call("GET", f"/v1/authentications/{created['id']}/credentials", token=token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["credentials"]["access_token"] == "at-secret-1"
        assert "refresh_token" not in body["credentials"]
        assert "rt-secret-1" not in response.text
    with api.bridge.session() as session:  # kept, for the refresher's use
        repo = AuthenticationRepository(session, api.bridge.keyring)
        auth = repo.get_any(created["id"])
        assert auth is not None
        assert repo.credentials(auth)["refresh_token"] == "rt-secret-1"


def test_a_credentials_read_of_an_invalid_authentication_is_a_conflict(api: Api) -> None:
    created = import_key(api)
    change_stored(api, created["id"], status=AuthStatus.INVALID, last_error="key revoked")
    response = api.call("GET", f"/v1/authentications/{created['id']}/credentials")
    problem = assert_problem(response, 409, "conflict")
    assert "key revoked" in problem["detail"]
    assert SANDBOX_KEY not in response.text


def test_the_audit_log_records_who_did_what_and_never_a_secret(api: Api) -> None:
    secret_key = "sk_sandbox_audit_secret_42"
    created = import_key(api, "alice", key=secret_key)
    oauth = import_oauth2(api, "alice", access_token="at-audit-77", refresh_token="rt-audit-88")
    token = user_token(api, "alice")
    path = f"/v1/authentications/{created['id']}"
    assert api.call("GET", f"{path}/credentials", token=token).status_code == 200
    assert api.call("GET", f"/v1/authentications/{oauth['id']}/credentials").status_code == 200
    assert api.call("PATCH", path, token=token, json={"name": "Renamed"}).status_code == 200
    assert api.call("DELETE", path).status_code == 204

    master_id = next(
        item["id"]
        for item in api.call("GET", "/v1/master-tokens").json()
        if item["name"] == "tests"
    )
    alice_id = api.call("GET", "/v1/end-users/alice").json()["id"]
    events = api.call("GET", "/v1/audit-events", params={"limit": 100}).json()["items"]
    recorded = [(event["action"], event["actor"], event["target_id"]) for event in events]
    assert recorded == [
        ("authentication.created", f"master:{master_id}", created["id"]),
        ("authentication.created", f"master:{master_id}", oauth["id"]),
        ("authentication.credentials_read", f"user:{alice_id}", created["id"]),
        ("authentication.credentials_read", f"master:{master_id}", oauth["id"]),
        ("authentication.updated", f"user:{alice_id}", created["id"]),
        ("authentication.deleted", f"master:{master_id}", created["id"]),
    ]
    assert events[4]["detail"] == {"fields": ["name"]}
    assert all(event["target_type"] == "authentication" for event in events)
    dumped = json.dumps(events)
    for secret in (secret_key, "at-audit-77", "rt-audit-88", token, api.master_token):
        assert secret not in dumped
    filtered = api.call(
        "GET", "/v1/audit-events", params={"action": "authentication.deleted"}
    ).json()
    assert [event["target_id"] for event in filtered["items"]] == [created["id"]]
