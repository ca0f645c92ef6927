"""Every error is an RFC 9457 problem document that never echoes what the caller sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from tests.support.api_calls import assert_problem, host_jwt, import_key, user_token
from tests.support.app import Api

SECRET = "sk_live_TOPSECRET_4242"


def test_each_kind_of_error_is_a_problem_document(api: Api) -> None:
    created = import_key(api)
    user = user_token(api, "someone")
    assert_problem(httpx.get(f"{api.url}/v1/authentications", timeout=10), 401, "unauthenticated")
    assert_problem(api.call("GET", "/v1/master-tokens", token=user), 403, "forbidden")
    assert_problem(api.call("GET", "/v1/authentications/nope"), 404, "not_found")
    assert_problem(api.call("GET", "/v1/no-such-route"), 404, "not_found")
    not_allowed = api.call("PUT", "/v1/authentications")
    assert_problem(not_allowed, 405, "method_not_allowed")
    assert not_allowed.headers["allow"] == "GET, OPTIONS, POST"
    assert_problem(api.call("GET", "/v1/connectors/nope"), 404, "connector_not_found")
    assert_problem(api.call("GET", "/v1/authentications", params={"limit": 0}), 422)
    assert_problem(api.call("PATCH", f"/v1/authentications/{created['id']}", json=[]), 422)
    broken = api.call(
        "POST",
        "/v1/master-tokens",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    problem = assert_problem(broken, 422, "invalid_request")
    assert problem["invalid_params"][0]["field"] == "body"


def test_a_validation_error_names_the_field_but_never_echoes_the_value(api: Api) -> None:
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/v1/master-tokens", {"json": {"name": {"token": SECRET}}}, "name"),
        (
            "POST",
            "/v1/authentications",
            {"json": {"connector": "sandbox-apikey", "fields": {"api_key": [SECRET]}}},
            "fields.api_key",
        ),
        (
            "PUT",
            "/v1/connector-configs/sandbox-oauth2",
            {"json": {"client_secret": 42, "client_id": SECRET * 100}},
            "client_secret",
        ),
        (
            "POST",
            "/v1/user-tokens",
            {"json": {"external_user_id": "u", "ttl_seconds": SECRET}},
            "ttl_seconds",
        ),
        ("GET", "/v1/authentications", {"params": {"limit": SECRET}}, "query.limit"),
        ("POST", "/v1/master-tokens", {"json": {"name": "n", SECRET: "x"}}, SECRET),
    ]
    for method, path, kwargs, field in cases:
        response = api.call(method, path, **kwargs)
        problem = assert_problem(response, 422, "invalid_request")
        fields = [item["field"] for item in problem["invalid_params"]]
        assert field in fields or field == SECRET, (path, fields)
        assert problem["detail"].startswith(fields[0])
        if field != SECRET:  # an unknown key is named by its name, which the caller chose
            assert SECRET not in response.text, response.text


def test_an_unexpected_error_is_a_bare_500_problem(api: Api) -> None:
    class Broken:
        def __iter__(self) -> Iterator[object]:
            raise RuntimeError(f"internal detail {SECRET}")

    api.bridge.registry = Broken()  # type: ignore[assignment]
    response = api.call("GET", "/v1/connectors")
    problem = assert_problem(response, 500, "internal_error")
    assert SECRET not in response.text
    assert "Traceback" not in problem["detail"]


# PostgreSQL text cannot hold NUL: such values are refused as input on both databases,
# instead of failing in the database with a 500 on PostgreSQL.


NUL_BODIES = [
    ("PUT", "/v1/end-users/u1", {"external_user_id": "u1", "name": "a\x00b"}, "name"),
    ("POST", "/v1/master-tokens", {"name": "a\x00b"}, "name"),
    ("POST", "/v1/user-tokens", {"external_user_id": "a\x00b"}, "external_user_id"),
    ("PUT", "/v1/connector-configs/sandbox-oauth2", {"client_id": "a\x00b"}, "client_id"),
    (
        "PUT",
        "/v1/connector-configs/sandbox-oauth2",
        {"redirect_uri": "https://h.example/a\x00b"},
        "redirect_uri",
    ),
    (
        "POST",
        "/v1/authentications",
        {"connector": "sandbox-apikey", "external_user_id": "a\x00b", "fields": {}},
        "external_user_id",
    ),
    (
        "POST",
        "/v1/authentications",
        {"connector": "sandbox-oauth2", "external_user_id": "u", "scopes": ["a\x00"]},
        "scopes",
    ),
    (
        "POST",
        "/v1/connect/sessions",
        {"external_user_id": "a\x00b", "connector": "sandbox-apikey"},
        "external_user_id",
    ),
]


def test_nul_in_a_body_is_refused_by_field(api: Api) -> None:
    for method, path, body, field in NUL_BODIES:
        response = api.call(method, path, json=body)
        assert response.status_code == 422, (path, field, response.text)
        problem = assert_problem(response, 422, "invalid_request")
        assert [item["field"] for item in problem["invalid_params"]] == [field]
        assert "NUL" in problem["detail"]


NUL_PARAMETERS = [
    ("/v1/end-users/a%00b", {}, "external_user_id"),
    ("/v1/authentications/a%00b", {}, "auth_id"),
    ("/v1/authentications", {"connector": "a\x00b"}, "connector"),
    ("/v1/authentications", {"external_user_id": "a\x00b"}, "external_user_id"),
    ("/v1/audit-events", {"action": "a\x00b"}, "action"),
    ("/v1/connector-configs/a%00b", {}, "key"),
]


def test_nul_in_a_path_or_query_parameter_is_refused(api: Api) -> None:
    for path, params, field in NUL_PARAMETERS:
        response = api.call("GET", path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        assert assert_problem(response, 422, "invalid_input")["field"] == field


def test_a_user_token_naming_an_impossible_user_is_refused(api: Api) -> None:
    for sub in ("a\x00b", "x" * 256, "a\ud800b", ""):  # NUL, too long, lone surrogate, empty
        response = api.call("GET", "/v1/authentications", token=host_jwt(api, sub))
        assert "external id" in assert_problem(response, 401, "unauthenticated")["detail"]
    for env in ("a\x00b", "a\ud800b"):
        response = api.call("GET", "/v1/authentications", token=host_jwt(api, "alice", env=env))
        assert "environment" in assert_problem(response, 401, "unauthenticated")["detail"]
    longest = host_jwt(api, "x" * 255)
    assert api.call("GET", "/v1/authentications", token=longest).status_code == 200


def test_a_host_jwt_naming_an_impossible_user_is_refused(api: Api) -> None:
    data = {"workspace": "acme", "internal_key": "ik"}
    body = {"connector": "sandbox-jwt"}
    for sub in ("x" * 256, "a\x00b", "a\ud800b"):
        token = host_jwt(api, sub, authData=data)
        response = api.call("POST", "/v1/authentications/jwt", json=body | {"token": token})
        assert assert_problem(response, 422, "invalid_input")["field"] == "token"
    longest = host_jwt(api, "x" * 255, authData=data)
    accepted = api.call("POST", "/v1/authentications/jwt", json=body | {"token": longest})
    assert accepted.status_code == 200, accepted.text


def test_the_openapi_document_declares_problem_documents_for_errors(api: Api) -> None:
    document = api.call("GET", "/openapi.json").json()
    assert "HTTPValidationError" not in str(document)
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for status in ("4XX", "5XX"):
                content = operation["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (method, path)
                schema = content["application/problem+json"]["schema"]
                assert set(schema["required"]) == {"type", "title", "status", "detail", "code"}


def test_options_names_every_method_of_the_path(api: Api) -> None:
    created = import_key(api)
    for path, allowed in (
        ("/v1/authentications", "GET, OPTIONS, POST"),
        (f"/v1/authentications/{created['id']}", "DELETE, GET, OPTIONS, PATCH"),
        ("/graphql", "GET, HEAD, OPTIONS, POST"),
    ):
        answer = httpx.options(api.url + path, timeout=10)
        assert answer.status_code == 204, (path, answer.text)
        assert answer.headers["allow"] == allowed, path
        assert answer.content == b""
    assert_problem(httpx.options(api.url + "/v1/no-such-route", timeout=10), 404, "not_found")


def test_a_boolean_must_be_true_or_false(api: Api) -> None:
    hook = api.call("POST", "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in"})
    assert hook.status_code == 201, hook.text
    for method, path, body, field in (
        ("PATCH", f"/v1/webhook-endpoints/{hook.json()['id']}", {"enabled": 0}, "enabled"),
        (
            "POST",
            "/v1/connect/sessions",
            {"external_user_id": "u", "connector": "sandbox-apikey", "skip_title_field": "yes"},
            "skip_title_field",
        ),
        (
            "POST",
            "/v1/authentications",
            {
                "connector": "sandbox-apikey",
                "external_user_id": "u",
                "fields": {"api_key": "k"},
                "validate_credentials": 1,
            },
            "validate_credentials",
        ),
        ("POST", "/v1/solution-instances", {"solutionId": "s", "enabled": 1}, "enabled"),
    ):
        response = api.call(method, path, json=body)
        problem = assert_problem(response, 422, "invalid_request")
        reasons = {item["field"]: item["reason"] for item in problem["invalid_params"]}
        assert reasons[field].endswith("must be true or false"), (path, reasons)
    endpoint = api.call("GET", f"/v1/webhook-endpoints/{hook.json()['id']}").json()
    assert endpoint["enabled"] is True
