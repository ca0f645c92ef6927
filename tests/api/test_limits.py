"""Request bodies: a limit per route class, and the token checked before a body is read.

Over real HTTP, on SQLite and PostgreSQL. The requests are written by hand
(:mod:`tests.support.raw_http`) so that a head can go without its body, or a body can stop
halfway: an answer that comes while the body is still missing was given without reading it.
"""

from __future__ import annotations

import json

import httpx

from authbridge.api.limits import API_BODY
from tests.support.api_calls import assert_problem
from tests.support.app import Api
from tests.support.raw_http import chunk, connect, head, read_response

JSON = {"Content-Type": "application/json"}


def master_token_names(api: Api) -> list[str]:
    response = api.call("GET", "/v1/master-tokens")
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


def test_a_content_length_over_the_api_limit_is_answered_413_before_the_body_is_sent(
    api: Api,
) -> None:
    for token in (None, api.master_token):
        headers = JSON | {"Content-Length": str(50 * 1024 * 1024)}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        with connect(api.url) as sock:
            sock.sendall(head("POST", "/v1/master-tokens", headers))
            answer = read_response(sock, timeout=5)  # the 50 MB are never sent
        assert answer.status == 413, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        problem = json.loads(answer.body)
        assert problem["code"] == "request_too_large"
        assert "1 MiB" in problem["detail"]


def test_a_chunked_body_over_the_api_limit_is_answered_413_and_read_no_further(
    api: Api,
) -> None:
    before = master_token_names(api)
    headers = JSON | {"Transfer-Encoding": "chunked", "Authorization": f"Bearer {api.master_token}"}
    with connect(api.url) as sock:
        sock.sendall(head("POST", "/v1/master-tokens", headers))
        sock.sendall(chunk(b'{"name": "' + b"n" * (API_BODY + 1024)))
        # The body is not finished (no closing chunk): the answer cannot wait for its end.
        answer = read_response(sock, timeout=5)
    assert answer.status == 413, answer.text
    assert json.loads(answer.body)["code"] == "request_too_large"
    assert master_token_names(api) == before


def test_a_chunked_body_within_the_limit_is_served(api: Api) -> None:
    headers = JSON | {"Transfer-Encoding": "chunked", "Authorization": f"Bearer {api.master_token}"}
    with connect(api.url) as sock:
        sock.sendall(head("POST", "/v1/master-tokens", headers))
        sock.sendall(chunk(b'{"name": "chunked"}') + b"0\r\n\r\n")
        answer = read_response(sock)
    assert answer.status == 201, answer.text
    assert "chunked" in master_token_names(api)


def test_a_body_without_a_usable_token_is_answered_401_before_it_is_read(api: Api) -> None:
    before = master_token_names(api)
    for authorization in (None, "Bearer abk_not_a_token", "Basic dXNlcjpwdw=="):
        headers = JSON | {"Content-Length": str(API_BODY // 2)}
        if authorization is not None:
            headers["Authorization"] = authorization
        with connect(api.url) as sock:
            sock.sendall(head("POST", "/v1/master-tokens", headers))
            answer = read_response(sock, timeout=5)  # the body is never sent
        assert answer.status == 401, (authorization, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert json.loads(answer.body)["code"] == "unauthenticated"
    assert master_token_names(api) == before


def test_a_user_token_passes_the_check_before_the_body(api: Api) -> None:
    minted = api.call("POST", "/v1/user-tokens", json={"external_user_id": "someone"})
    assert minted.status_code == 201, minted.text
    answer = api.call(
        "POST",
        "/v1/authorization-codes",
        token=minted.json()["token"],
        json={"origin": "https://host.example.test"},
    )
    assert answer.status_code == 201, answer.text


def test_graphql_bodies_have_the_api_limit_and_need_no_token_first(api: Api) -> None:
    too_large = httpx.post(
        f"{api.url}/graphql",
        content=b'{"query": "' + b" " * (API_BODY + 1) + b'{ __typename }"}',
        headers=JSON,
        timeout=10,
    )
    assert_problem(too_large, 413, "request_too_large")
    introspection = httpx.post(f"{api.url}/graphql", json={"query": "{ __typename }"}, timeout=10)
    assert introspection.status_code == 200, introspection.text
    assert introspection.json() == {"data": {"__typename": "Query"}}
