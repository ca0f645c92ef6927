"""Importing authentications (form fields, OAuth tokens) and connecting from host-signed JWTs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from authbridge.connectors.registry import Registry
from authbridge.storage.models import Authentication
from tests.support.api_calls import (
    assert_problem,
    host_jwt,
    import_key,
    sandbox_access_token,
    user_token,
)
from tests.support.app import SANDBOX_KEY, Api
from tests.support.connectors import echoing_connector
from tests.support.loopback import serve
from tests.support.providers import ECHOED_KEY, ErrorShapes, encoded_spellings


def post_import(api: Api, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    return api.call(
        "POST", "/v1/authentications", token=token, json={"external_user_id": "u"} | body
    )


def credentials(api: Api, auth_id: str) -> dict[str, Any]:
    response = api.call("GET", f"/v1/authentications/{auth_id}/credentials")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["credentials"]
    return found


def parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- form connectors ------------------------------------------------------------------------


def test_an_unknown_field_is_refused_by_name(api: Api) -> None:
    for validate in (True, False):
        fields = {"api_key": SANDBOX_KEY, "colour": "blue"}
        body = {"connector": "sandbox-apikey", "fields": fields, "validate": validate}
        problem = assert_problem(post_import(api, body), 422, "invalid_input")
        assert problem["field"] == "colour"
        assert "colour" in problem["detail"]
    assert api.call("GET", "/v1/authentications").json()["items"] == []


def test_a_missing_required_field_is_refused_by_name(api: Api) -> None:
    for validate in (True, False):
        body = {"connector": "sandbox-apikey", "fields": {"region": "eu"}, "validate": validate}
        problem = assert_problem(post_import(api, body), 422, "invalid_input")
        assert problem["field"] == "api_key"
        assert "API key" in problem["detail"]


def test_validate_runs_by_default_and_can_be_skipped(api: Api) -> None:
    body = {"connector": "sandbox-apikey", "fields": {"api_key": "sk_live_not_sandbox"}}
    refused = post_import(api, body)
    assert_problem(refused, 422, "credentials_rejected")
    assert "sk_live_not_sandbox" not in refused.text
    skipped = post_import(api, body | {"validate": False})
    assert skipped.status_code == 201, skipped.text
    created = skipped.json()
    assert created["name"] == "Sandbox API key"  # no profile was fetched
    assert created["status"] == "active"
    assert credentials(api, created["id"]) == {"api_key": "sk_live_not_sandbox"}


def test_a_key_the_provider_echoes_encoded_is_redacted_from_the_422(
    api: Api, api_connectors: Path, tmp_path: Path
) -> None:
    key = ECHOED_KEY
    provider = ErrorShapes()
    with serve(provider.app) as base_url:
        folder = echoing_connector(tmp_path / "echo", base_url)
        api.bridge.registry = Registry.load([api_connectors, folder], include_catalog=False)
        answer = post_import(api, {"connector": "echo-encoded", "fields": {"api_key": key}})

    problem = assert_problem(answer, 422, "credentials_rejected")
    [received] = provider.received
    assert received.headers["x-api-key"] == key
    assert problem["detail"].startswith("Refused: base64 [redacted]; unpadded [redacted]; ")
    for name, spelling in encoded_spellings(key).items():
        assert spelling not in answer.text, name
    assert problem["detail"].count("[redacted]") == len(encoded_spellings(key))
    assert api.call("GET", "/v1/authentications").json()["items"] == []


def test_an_import_needs_an_end_user_and_a_known_connector(api: Api) -> None:
    body = {"connector": "sandbox-apikey", "fields": {"api_key": SANDBOX_KEY}}
    missing = api.call("POST", "/v1/authentications", json=body)
    assert assert_problem(missing, 422, "invalid_input")["field"] == "external_user_id"
    unknown = post_import(api, body | {"connector": "no-such-thing"})
    assert_problem(unknown, 404, "connector_not_found")
    tokens = post_import(api, body | {"tokens": {"access_token": "x"}})
    assert assert_problem(tokens, 422, "invalid_input")["field"] == "tokens"


def test_an_import_names_the_account_when_asked(api: Api) -> None:
    created = import_key(api, name="Billing account")
    assert created["name"] == "Billing account"


def test_a_pwd_import_stores_the_login_token_and_its_expiry(api: Api) -> None:
    before = datetime.now(UTC)
    body = {"connector": "sandbox-pwd", "fields": {"username": "ada", "password": "sandbox"}}
    response = post_import(api, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "ada"
    expires_at = parse(created["expires_at"])
    assert before + timedelta(seconds=3590) <= expires_at <= before + timedelta(seconds=3700)
    stored = credentials(api, created["id"])
    assert stored["username"] == "ada"
    assert isinstance(stored["token"], str)
    assert len(stored["token"]) > 20
    wrong = post_import(api, body | {"fields": {"username": "ada", "password": "nope"}})
    assert_problem(wrong, 422, "credentials_rejected")


# -- OAuth 2 tokens -------------------------------------------------------------------------


def test_oauth2_tokens_are_imported_with_expiry_and_scopes(api: Api) -> None:
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    body = {
        "connector": "sandbox-oauth2",
        "tokens": {"access_token": "at-1", "refresh_token": "rt-1", "scope": "profile email"},
        "scopes": ["profile", "email"],
        "expires_at": expires_at.isoformat(),
        "validate": False,
    }
    response = post_import(api, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert parse(created["expires_at"]) == expires_at
    assert created["scopes"] == ["profile", "email"]
    assert created["auth_type"] == "oauth2"
    assert created["name"] == "Sandbox OAuth 2"
    assert credentials(api, created["id"]) == {
        "access_token": "at-1",
        "token_type": "Bearer",
        "scope": "profile email",
    }


def test_provider_values_the_request_rules_use_are_imported_with_the_tokens(api: Api) -> None:
    tokens = {"access_token": "at-sf", "instance_url": "https://acme.my.salesforce.com"}
    body = {"connector": "sandbox-instance", "tokens": tokens, "validate": False}
    response = post_import(api, body)
    assert response.status_code == 201, response.text
    auth_id = response.json()["id"]
    rules = api.call("GET", f"/v1/authentications/{auth_id}/request-auth")
    assert rules.status_code == 200, rules.text
    assert rules.json()["base_url"] == "https://acme.my.salesforce.com/services/data/v60.0"

    other = post_import(api, body | {"tokens": tokens | {"instance_uri": "typo"}})
    detail = assert_problem(other, 422, "invalid_input")["detail"]
    assert "unknown token 'instance_uri'" in detail
    assert "instance_url" in detail  # the message says what this connector takes
    nul = post_import(api, body | {"tokens": tokens | {"instance_url": "https://a\x00b"}})
    assert_problem(nul, 422, "invalid_request")

    template = api.call("GET", "/v1/connectors/sandbox-instance/import-template")
    assert "instance_url" in template.json()["tokens"]


def test_a_final_token_expiry_is_the_hard_expiry_and_is_never_refreshed(api: Api) -> None:
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    body = {
        "connector": "sandbox-longlived",
        "tokens": {"access_token": "at-60-days"},
        "expires_at": expires_at.isoformat(),
        "validate": False,
    }
    response = post_import(api, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert parse(created["hard_expires_at"]) == expires_at
    with api.bridge.session(readonly=True) as session:
        stored = session.get(Authentication, created["id"])
        assert stored is not None
        assert stored.refresh_due_at is None  # the worker never tries to refresh it


def test_oauth2_tokens_are_checked_against_the_definition(api: Api) -> None:
    base = {"connector": "sandbox-oauth2", "validate": False}
    unknown = post_import(api, base | {"tokens": {"access_token": "a", "id_token": "b"}})
    problem = assert_problem(unknown, 422, "invalid_input")
    assert problem["field"] == "tokens"
    assert "unknown token 'id_token'" in problem["detail"]
    oauth1 = post_import(api, base | {"tokens": {"access_token": "a", "access_token_secret": "b"}})
    assert "access_token_secret" in assert_problem(oauth1, 422, "invalid_input")["detail"]
    missing = post_import(api, base | {"tokens": {"refresh_token": "r"}})
    assert "access_token" in assert_problem(missing, 422, "invalid_input")["detail"]
    fields = post_import(api, base | {"fields": {"access_token": "a"}})
    assert assert_problem(fields, 422, "invalid_input")["field"] == "fields"
    naive = post_import(
        api, base | {"tokens": {"access_token": "a"}, "expires_at": "2030-01-01T00:00:00"}
    )
    invalid = assert_problem(naive, 422, "invalid_request")["invalid_params"]
    assert [item["field"] for item in invalid] == ["expires_at"]


def test_imported_oauth2_tokens_are_validated_with_the_provider(api: Api, sandbox_url: str) -> None:
    live = sandbox_access_token(sandbox_url)
    accepted = post_import(api, {"connector": "sandbox-oauth2", "tokens": {"access_token": live}})
    assert accepted.status_code == 201, accepted.text
    assert credentials(api, accepted.json()["id"])["access_token"] == live
    bad = "at-not-issued-by-the-sandbox"
    refused = post_import(api, {"connector": "sandbox-oauth2", "tokens": {"access_token": bad}})
    # A clear "your data is wrong" answer: not a 500, and not a 401 that would tell the
    # caller its own API token was refused.
    problem = assert_problem(refused, 422, "credentials_rejected")
    assert "access token" in problem["detail"]
    assert "The access token is invalid." in problem["detail"]
    assert "www-authenticate" not in refused.headers
    assert bad not in refused.text
    assert len(api.call("GET", "/v1/authentications").json()["items"]) == 1


# -- host-signed JWTs -----------------------------------------------------------------------


def connect_jwt(api: Api, token: str, bearer: str | None = None) -> httpx.Response:
    body = {"connector": "sandbox-jwt", "token": token}
    return api.call("POST", "/v1/authentications/jwt", token=bearer, json=body)


def test_a_host_jwt_creates_then_updates_the_same_authentication(api: Api) -> None:
    first = host_jwt(api, "alice", authData={"workspace": "acme", "internal_key": "ik-1"})
    response = connect_jwt(api, first)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["created"] is True
    auth = created["authentication"]
    assert auth["external_user_id"] == "alice"
    assert auth["name"] == "acme"
    assert credentials(api, auth["id"]) == {"workspace": "acme", "internal_key": "ik-1"}

    second = host_jwt(api, "alice", authData={"workspace": "acme", "internal_key": "ik-2"})
    again = connect_jwt(api, second).json()
    assert again["created"] is False
    assert again["authentication"]["id"] == auth["id"]
    assert credentials(api, auth["id"])["internal_key"] == "ik-2"
    listed = api.call("GET", "/v1/authentications", params={"external_user_id": "alice"})
    assert [item["id"] for item in listed.json()["items"]] == [auth["id"]]
    events = api.call("GET", "/v1/audit-events", params={"target_id": auth["id"]}).json()
    actions = [(event["action"], event["detail"].get("via")) for event in events["items"]]
    assert actions == [
        ("authentication.created", "jwt"),
        ("authentication.credentials_read", None),
        ("authentication.updated", "jwt"),
        ("authentication.credentials_read", None),
    ]
    assert "ik-1" not in str(events)
    assert "ik-2" not in str(events)


def test_a_host_jwt_for_another_user_makes_another_authentication(api: Api) -> None:
    data = {"workspace": "acme", "internal_key": "ik"}
    alice = connect_jwt(api, host_jwt(api, "alice", authData=data)).json()
    bob = connect_jwt(api, host_jwt(api, "bob", authData=data)).json()
    assert bob["created"] is True
    assert bob["authentication"]["id"] != alice["authentication"]["id"]


def test_a_user_token_connects_a_host_jwt_only_for_its_own_user(api: Api) -> None:
    data = {"workspace": "acme", "internal_key": "ik"}
    token = user_token(api, "alice")
    own = connect_jwt(api, host_jwt(api, "alice", authData=data), bearer=token)
    assert own.status_code == 200, own.text
    other = connect_jwt(api, host_jwt(api, "bob", authData=data), bearer=token)
    assert_problem(other, 403, "forbidden")


def test_a_bad_host_jwt_is_a_clear_422(api: Api) -> None:
    data = {"workspace": "acme", "internal_key": "ik-secret"}
    cases = {
        "signature": host_jwt(api, "alice", secret=b"s" * 32, authData=data),
        "expired": host_jwt(api, "alice", lifetime=-300, authData=data),
        "authData": host_jwt(api, "alice"),
        "not a JWT": "a.b.c",
    }
    for reason, token in cases.items():
        response = connect_jwt(api, token)
        problem = assert_problem(response, 422, "invalid_input")
        assert problem["field"] == "token", reason
        assert "www-authenticate" not in response.headers
    missing = connect_jwt(api, host_jwt(api, "alice", authData={"workspace": "acme"}))
    assert assert_problem(missing, 422, "invalid_input")["field"] == "internal_key"
    wrong_type = api.call(
        "POST", "/v1/authentications/jwt", json={"connector": "sandbox-apikey", "token": "a.b.c"}
    )
    assert assert_problem(wrong_type, 422, "invalid_input")["field"] == "connector"
    assert api.call("GET", "/v1/authentications").json()["items"] == []
