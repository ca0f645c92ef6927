"""User tokens: minted by the API or signed by the host, each scoped to one end user."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from authbridge import errors
from authbridge.runtime import Settings
from tests.support.api_calls import assert_problem, host_jwt, import_key, user_token
from tests.support.app import Api

TokenFor = Callable[[Api, str], str]


def minted(api: Api, user: str) -> str:
    return user_token(api, user)


def signed(api: Api, user: str) -> str:
    return host_jwt(api, user)


@pytest.fixture(params=[minted, signed], ids=["minted", "host-signed"])
def token_for(request: pytest.FixtureRequest) -> TokenFor:
    """How the user token is obtained: ``POST /v1/user-tokens``, or signed by the host."""
    make: TokenFor = request.param
    return make


def test_a_minted_user_token_expires_as_asked(api: Api) -> None:
    before = datetime.now(UTC)
    response = api.call("POST", "/v1/user-tokens", json={"external_user_id": "alice"})
    assert response.status_code == 201, response.text
    body = response.json()
    expires_at = datetime.fromisoformat(body["expires_at"])
    expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
    assert before + timedelta(seconds=899) <= expires_at <= before + timedelta(seconds=905)
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert claims["env"] == "default"
    assert api.call("GET", "/v1/end-users/alice").status_code == 200  # created on first sight


def test_a_user_token_sees_only_its_own_authentications(api: Api, token_for: TokenFor) -> None:
    own = import_key(api, "alice")
    other = import_key(api, "bob")
    token = token_for(api, "alice")
    listed = api.call("GET", "/v1/authentications", token=token).json()
    assert [item["id"] for item in listed["items"]] == [own["id"]]
    filtered = api.call(
        "GET", "/v1/authentications", token=token, params={"external_user_id": "bob"}
    ).json()
    assert filtered == {"items": [], "next_cursor": None}
    assert api.call("GET", f"/v1/authentications/{own['id']}", token=token).status_code == 200
    credentials = api.call("GET", f"/v1/authentications/{own['id']}/credentials", token=token)
    assert credentials.status_code == 200
    for method, path in [
        ("GET", f"/v1/authentications/{other['id']}"),
        ("GET", f"/v1/authentications/{other['id']}/credentials"),
        ("PATCH", f"/v1/authentications/{other['id']}"),
        ("DELETE", f"/v1/authentications/{other['id']}"),
        ("GET", "/v1/end-users/bob"),
    ]:
        kwargs = {"json": {"name": "mine now"}} if method == "PATCH" else {}
        response = api.call(method, path, token=token, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert_problem(response, 404, "not_found")
    # Bob's authentication is untouched, and its credentials were never read.
    still = api.call("GET", f"/v1/authentications/{other['id']}").json()
    assert still["name"] == other["name"]
    events = api.call("GET", "/v1/audit-events", params={"target_id": other["id"]}).json()
    assert [event["action"] for event in events["items"]] == ["authentication.created"]
    assert api.call("GET", "/v1/end-users/alice", token=token).status_code == 200


def test_a_user_token_changes_and_deletes_its_own_authentication(api: Api) -> None:
    own = import_key(api, "alice")
    token = user_token(api, "alice")
    path = f"/v1/authentications/{own['id']}"
    renamed = api.call("PATCH", path, token=token, json={"name": "Work"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Work"
    assert api.call("DELETE", path, token=token).status_code == 204
    assert api.call("GET", path).status_code == 404


def test_a_user_token_imports_only_for_its_own_user(api: Api) -> None:
    token = user_token(api, "alice")
    body = {"connector": "sandbox-apikey", "fields": {"api_key": "sk_sandbox_alice"}}
    created = api.call("POST", "/v1/authentications", token=token, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["external_user_id"] == "alice"
    elsewhere = api.call(
        "POST", "/v1/authentications", token=token, json=body | {"external_user_id": "bob"}
    )
    assert_problem(elsewhere, 403, "forbidden")


MASTER_ONLY = [
    ("GET", "/v1/end-users", None),
    ("PUT", "/v1/end-users/alice", {"external_user_id": "alice"}),
    ("POST", "/v1/user-tokens", {"external_user_id": "alice"}),
    ("POST", "/v1/master-tokens", {"name": "mine"}),
    ("GET", "/v1/master-tokens", None),
    ("DELETE", "/v1/master-tokens/some-id", None),
    ("GET", "/v1/audit-events", None),
    ("GET", "/v1/connector-configs", None),
    ("GET", "/v1/connector-configs/sandbox-oauth2", None),
    ("PUT", "/v1/connector-configs/sandbox-oauth2", {"client_id": "x"}),
    ("DELETE", "/v1/connector-configs/sandbox-oauth2", None),
    ("POST", "/v1/connect/sessions", {"external_user_id": "alice", "connector": "x"}),
]


def test_a_user_token_cannot_call_master_only_endpoints(api: Api) -> None:
    token = user_token(api, "alice")
    for method, path, body in MASTER_ONLY:
        response = api.call(method, path, token=token, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert_problem(response, 403, "forbidden")
        assert "master token" in response.json()["detail"]
    # The same calls with the master token are not refused.
    for method, path, body in MASTER_ONLY:
        assert api.call(method, path, json=body).status_code not in (401, 403), (method, path)


def test_a_host_signed_token_may_name_the_authbridge_audience(api: Api) -> None:
    import_key(api, "alice")
    for audience in ("authbridge", ["other", "authbridge"]):
        token = host_jwt(api, "alice", aud=audience)
        assert api.call("GET", "/v1/authentications", token=token).status_code == 200


def unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_TOKENS: dict[str, Callable[[Api], str]] = {
    "expired": lambda api: host_jwt(api, "alice", lifetime=-120),
    "audience": lambda api: host_jwt(api, "alice", aud="another-service"),
    "audience-list": lambda api: host_jwt(api, "alice", aud=["a", "b"]),
    "wrong-secret": lambda api: host_jwt(api, "alice", secret=b"w" * 32),
    "alg-none": lambda api: unsigned({"sub": "alice", "exp": int(time.time()) + 300}),
    "other-alg": lambda api: host_jwt(api, "alice", algorithm="HS512", secret=b"k" * 64),
    "no-sub": lambda api: host_jwt(api, None),
    "unknown-env": lambda api: host_jwt(api, "alice", env="staging"),
    "too-long": lambda api: host_jwt(api, "alice", lifetime=2 * 86400),
    "tampered": lambda api: host_jwt(api, "alice")[:-4] + "AAAA",
}


def test_a_bad_user_token_is_a_401_problem(api: Api) -> None:
    import_key(api, "alice")
    assert api.call("GET", "/v1/authentications", token=host_jwt(api, "alice")).status_code == 200
    for reason, make in BAD_TOKENS.items():
        token = make(api)
        response = api.call("GET", "/v1/authentications", token=token)
        assert response.status_code == 401, (reason, response.text)
        problem = assert_problem(response, 401, "unauthenticated")
        assert token not in response.text
        assert "user token" in problem["detail"], reason


def test_an_expired_minted_token_is_refused(api: Api) -> None:
    token = user_token(api, "alice", ttl_seconds=1)
    assert api.call("GET", "/v1/authentications", token=token).status_code == 200
    # The verifier allows 5 seconds of clock skew by default; move the server's clock past it.
    api.bridge.clock = lambda: datetime.now(UTC) + timedelta(seconds=10)
    assert_problem(api.call("GET", "/v1/authentications", token=token), 401, "unauthenticated")


def test_the_clock_skew_granted_to_user_tokens_is_a_setting(api: Api) -> None:
    token = user_token(api, "alice", ttl_seconds=1)
    api.bridge.clock = lambda: datetime.now(UTC) + timedelta(seconds=40)
    api.bridge.token_leeway = timedelta(seconds=60)
    assert api.call("GET", "/v1/authentications", token=token).status_code == 200
    assert Settings.from_env({}).user_token_leeway == timedelta(seconds=5)
    leeway = {"AUTHBRIDGE_USER_TOKEN_LEEWAY_SECONDS": "60"}
    assert Settings.from_env(leeway).user_token_leeway == timedelta(seconds=60)
    for wrong in ("-1", "301", "soon"):
        with pytest.raises(errors.InvalidInput, match="LEEWAY_SECONDS"):
            Settings.from_env({"AUTHBRIDGE_USER_TOKEN_LEEWAY_SECONDS": wrong})


def test_a_connect_jwt_carrying_auth_data_is_not_an_api_token(api: Api) -> None:
    connect_jwt = host_jwt(api, "user-1", authData={"workspace": "acme", "internal_key": "k"})
    response = api.call("GET", "/v1/authentications", token=connect_jwt)
    problem = assert_problem(response, 401, "unauthenticated")
    assert "authData" in problem["detail"]
