"""The GraphQL API at /graphql, over HTTP against a running server (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql import GraphQLError, get_introspection_query
from sqlalchemy import event

from authbridge.api import create_app
from authbridge.api.graphql import create_router
from authbridge.api.graphql.errors import coded
from authbridge.api.graphql.schema import schema
from authbridge.wizard import service as wizard
from tests.support import raw_http
from tests.support.api_calls import import_key, sandbox_access_token, user_token
from tests.support.app import SANDBOX_KEY, Api
from tests.support.loopback import serve

VIEWER_AUTHS = "query { viewer { authentications { edges { node { id name } } } } }"


def post(api: Api, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    """Send an operation (with the master token unless ``token`` is given); the JSON body."""
    response = api.call("POST", "/graphql", json={"query": query, "variables": variables}, **kw)
    assert response.status_code == 200, response.text
    assert "Traceback" not in response.text
    return response.json()


def data(api: Api, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    """The ``data`` of an operation that must succeed."""
    body = post(api, query, variables, **kw)
    assert "errors" not in body, body
    return body["data"]


def error(api: Api, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    """The one error of an operation that must fail."""
    body = post(api, query, variables, **kw)
    assert len(body.get("errors", [])) == 1, body
    found = body["errors"][0]
    assert set(found.get("extensions", {})) <= {"code", "field", "retryAfter"}, found
    return found


def nodes(connection: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in connection["edges"]]


CREATE_USER = """
mutation($externalUserId: String!, $name: String) {
  createExternalUser(input: {externalUserId: $externalUserId, name: $name}) {
    userId user { id externalUserId name }
  }
}"""
CREATE_TOKEN = """
mutation($userId: ID!) { createUserToken(input: {userId: $userId}) { accessToken expiresAt } }"""
IMPORT = """
mutation($input: CreateUserAuthenticationInput!) {
  createUserAuthentication(input: $input) {
    authenticationId authentication { id name service { key version variant } created }
  }
}"""
REMOVE_AUTH = """
mutation($id: ID!) { removeAuthentication(input: {authenticationId: $id}) { authenticationId } }"""


def create_user(api: Api, external_user_id: str, name: str | None = None) -> str:
    created = data(api, CREATE_USER, {"externalUserId": external_user_id, "name": name})
    user_id: str = created["createExternalUser"]["userId"]
    return user_id


def import_auth(api: Api, user_id: str, name: str, **extra: Any) -> str:
    fields = {"userId": user_id, "connector": "sandbox-apikey", "name": name}
    fields |= {"data": {"api_key": SANDBOX_KEY}} | extra
    created = data(api, IMPORT, {"input": fields})["createUserAuthentication"]
    auth_id: str = created["authenticationId"]
    return auth_id


# -- transport and errors -------------------------------------------------------------------


def test_introspection_is_closed_by_default_even_to_a_master_token(api: Api) -> None:
    response = api.call("POST", "/graphql", json={"query": get_introspection_query()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("data") is None, body
    assert body["errors"], body
    for error in body["errors"]:  # one per introspection field the query names
        assert "introspection has been disabled" in error["message"]
        assert error["extensions"]["code"] == "INVALID_QUERY"
    typename = api.call("POST", "/graphql", json={"query": "{ __typename }"})
    assert typename.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("opened", ["introspection", "graphiql"])
def test_introspection_works_without_a_token_when_opened(api: Api, opened: str) -> None:
    with serve(create_app(api.bridge, **{opened: True})) as url:
        response = httpx.post(f"{url}/graphql", json={"query": get_introspection_query()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    names = {kind["name"] for kind in body["data"]["__schema"]["types"]}
    assert {"Viewer", "SolutionInstance", "Authentication", "AuthValue", "ConfigValue"} <= names


def test_no_token_is_unauthenticated(api: Api) -> None:
    response = httpx.post(f"{api.url}/graphql", json={"query": VIEWER_AUTHS}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    [found] = body["errors"]
    assert found["extensions"] == {"code": "UNAUTHENTICATED"}
    assert "Authorization: Bearer" in found["message"]
    refused = error(api, VIEWER_AUTHS, token="abk_not_a_real_token")
    assert refused["extensions"]["code"] == "UNAUTHENTICATED"
    assert "unknown or revoked" in refused["message"]


def test_graphiql_is_off_unless_enabled(api: Api) -> None:
    response = httpx.get(f"{api.url}/graphql", headers={"Accept": "text/html"}, timeout=10)
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


def test_graphiql_is_served_when_enabled(api: Api) -> None:
    app = FastAPI()
    app.state.bridge = api.bridge
    app.include_router(create_router(graphiql=True))
    with serve(app) as url:
        page = httpx.get(f"{url}/graphql", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
        # a query by GET stays refused: operations are POSTed
        query = httpx.get(f"{url}/graphql", params={"query": "{ __typename }"}, timeout=10)
        assert query.status_code != 200


def test_a_document_that_does_not_fit_the_schema_is_invalid_query(api: Api) -> None:
    unknown = error(api, "query { viewer { nothingHere } }")
    assert unknown["extensions"] == {"code": "INVALID_QUERY"}
    assert "nothingHere" in unknown["message"]
    aliases = " ".join(f"a{n}: viewer {{ __typename }}" for n in range(16))
    too_many = error(api, f"query {{ {aliases} }}")
    assert too_many["extensions"] == {"code": "INVALID_QUERY"}
    assert "aliases" in too_many["message"]


def test_json_nested_too_deep_is_a_problem_and_the_connection_stays(api: Api) -> None:
    def request(body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        return raw_http.head("POST", "/graphql", headers) + body

    with raw_http.connect(api.url) as sock:  # one connection for every request
        for depth in (1000, 100_000):
            nested = b"[" * depth + b"]" * depth
            variables = b'{"query": "{ __typename }", "variables": {"v": ' + nested + b"}}"
            for body in (nested, variables):
                sock.sendall(request(body))
                answer = raw_http.read_response(sock)
                assert answer.status == 422, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                problem = json.loads(answer.body)
                assert problem["code"] == "invalid_input"
                assert problem["field"] == "body"
                assert "too deeply" in problem["detail"]
        sock.sendall(request(b'{"query": "{ __typename }"}'))
        after = raw_http.read_response(sock)
    assert json.loads(after.body) == {"data": {"__typename": "Query"}}


def test_an_unexpected_error_is_masked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    failure = RuntimeError("connection to 10.0.0.5 refused; password=hunter2")
    raw = GraphQLError("connection to 10.0.0.5 refused", path=["viewer"], original_error=failure)
    shown = coded(raw)
    assert shown.formatted["message"] == "An unexpected error occurred; it has been logged."
    assert shown.formatted["extensions"] == {"code": "INTERNAL"}
    assert "hunter2" not in str(shown.formatted)
    with caplog.at_level(logging.ERROR, logger="authbridge.api"):
        schema.process_errors([raw])
    assert caplog.records[0].exc_info is not None
    assert caplog.records[0].exc_info[1] is failure


def test_nul_in_an_argument_is_invalid_input(api: Api) -> None:
    query = 'query { viewer { authentications(externalUserId: "a\\u0000b") { edges { cursor } } } }'
    found = error(api, query)
    assert found["extensions"] == {"code": "INVALID_INPUT", "field": "externalUserId"}


# -- end users and tokens -------------------------------------------------------------------


def test_create_external_user_then_mint_a_token_for_it(api: Api) -> None:
    created = data(api, CREATE_USER, {"externalUserId": "host-42", "name": "Roger Ramjet"})
    payload = created["createExternalUser"]
    assert payload["user"] == {
        "id": payload["userId"],
        "externalUserId": "host-42",
        "name": "Roger Ramjet",
    }
    again = error(api, CREATE_USER, {"externalUserId": "host-42"})
    assert again["extensions"] == {"code": "CONFLICT"}
    assert "host-42" in again["message"]

    minted = data(api, CREATE_TOKEN, {"userId": payload["userId"]})["createUserToken"]
    token = minted["accessToken"]
    viewer = data(api, "query { viewer { authentications { edges { cursor } } } }", token=token)
    assert viewer == {"viewer": {"authentications": {"edges": []}}}
    # a user token can neither add end users nor mint tokens, nor list end users
    for query, variables in (
        (CREATE_USER, {"externalUserId": "other"}),
        (CREATE_TOKEN, {"userId": payload["userId"]}),
        ("query { viewer { users { edges { cursor } } } }", None),
    ):
        assert error(api, query, variables, token=token)["extensions"] == {"code": "FORBIDDEN"}


def test_users_lists_end_users_for_a_master_token(api: Api) -> None:
    first = create_user(api, "alpha", "Alpha")
    second = create_user(api, "beta")
    query = """query($after: String) { viewer { users(first: 1, after: $after) {
        edges { node { id externalUserId name } } pageInfo { hasNextPage endCursor } } } }"""
    page = data(api, query)["viewer"]["users"]
    assert nodes(page) == [{"id": first, "externalUserId": "alpha", "name": "Alpha"}]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = data(api, query, {"after": page["pageInfo"]["endCursor"]})["viewer"]["users"]
    assert nodes(rest) == [{"id": second, "externalUserId": "beta", "name": None}]
    assert rest["pageInfo"]["hasNextPage"] is False
    too_many = error(api, "query { viewer { users(first: 201) { edges { cursor } } } }")
    assert too_many["extensions"] == {"code": "INVALID_INPUT", "field": "first"}
    not_ours = error(api, 'query { viewer { users(after: "nope") { edges { cursor } } } }')
    assert not_ours["extensions"] == {"code": "INVALID_INPUT", "field": "after"}


def test_a_bad_external_user_id_is_refused_by_name(api: Api) -> None:
    found = error(api, CREATE_USER, {"externalUserId": ""})
    assert found["extensions"] == {"code": "INVALID_INPUT", "field": "externalUserId"}
    assert "externalUserId" in found["message"]
    unknown = error(
        api,
        'query { viewer { authentications(externalUserId: "nobody") { edges { cursor } } } }',
    )
    assert unknown["extensions"] == {"code": "NOT_FOUND"}
    assert unknown["message"] == "end user 'nobody' not found"


# -- authentications ------------------------------------------------------------------------


def test_create_user_authentication_imports_and_remove_deletes(api: Api) -> None:
    user_id = create_user(api, "importer")
    created = data(
        api,
        IMPORT,
        {
            "input": {
                "userId": user_id,
                "connector": "sandbox-apikey",
                "version": "1",
                "name": "Roger's sandbox",
                # as the reference sends it: JSON text on one line
                "data": '{"api_key": "' + SANDBOX_KEY + '"}',
            }
        },
    )["createUserAuthentication"]
    auth = created["authentication"]
    assert created["authenticationId"] == auth["id"]
    assert auth["name"] == "Roger's sandbox"
    assert auth["service"] == {"key": "sandbox-apikey", "version": "1", "variant": None}
    listed = data(api, "query { viewer { authentications { edges { node { id name } } } } }")
    assert nodes(listed["viewer"]["authentications"]) == [
        {"id": auth["id"], "name": "Roger's sandbox"}
    ]
    credentials = api.call("GET", f"/v1/authentications/{auth['id']}/credentials")
    assert credentials.json()["credentials"] == {"api_key": SANDBOX_KEY}

    assert data(api, REMOVE_AUTH, {"id": auth["id"]}) == {
        "removeAuthentication": {"authenticationId": auth["id"]}
    }
    assert data(api, VIEWER_AUTHS)["viewer"]["authentications"]["edges"] == []
    gone = error(api, REMOVE_AUTH, {"id": auth["id"]})
    assert gone["extensions"] == {"code": "NOT_FOUND"}


def test_create_user_authentication_takes_oauth_tokens(api: Api, sandbox_url: str) -> None:
    user_id = create_user(api, "oauth-user")
    live = sandbox_access_token(sandbox_url)
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    created = data(
        api,
        IMPORT,
        {
            "input": {
                "userId": user_id,
                "connector": "sandbox-oauth2",
                "tokens": {"access_token": live, "refresh_token": "rt-1"},
                "scopes": ["profile"],
                "expiresAt": expires_at.isoformat(),
            }
        },
    )["createUserAuthentication"]
    auth_id = created["authenticationId"]
    assert created["authentication"]["service"]["key"] == "sandbox-oauth2"
    stored = api.call("GET", f"/v1/authentications/{auth_id}").json()
    assert stored["scopes"] == ["profile"]
    assert datetime.fromisoformat(stored["expires_at"]).replace(tzinfo=UTC) == expires_at
    credentials = api.call("GET", f"/v1/authentications/{auth_id}/credentials").json()
    assert credentials["credentials"]["access_token"] == live
    refused: dict[str, Any] = {"userId": user_id, "connector": "sandbox-oauth2"}
    refused |= {"tokens": {"access_token": "at-not-issued-by-the-sandbox"}}
    found = error(api, IMPORT, {"input": refused})
    assert found["extensions"] == {"code": "CREDENTIALS_REJECTED"}
    naive: dict[str, Any] = {"userId": user_id, "connector": "sandbox-oauth2"}
    naive |= {"tokens": {"access_token": live}}
    naive |= {"expiresAt": "2030-01-01T00:00:00"}
    assert error(api, IMPORT, {"input": naive})["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "expiresAt",
    }


def test_create_user_authentication_checks_the_data(api: Api) -> None:
    user_id = create_user(api, "checked")
    base = {"userId": user_id, "connector": "sandbox-apikey"}
    unknown = error(api, IMPORT, {"input": base | {"data": {"api_key": SANDBOX_KEY, "x": 1}}})
    assert unknown["extensions"] == {"code": "INVALID_INPUT", "field": "x"}
    rejected = error(api, IMPORT, {"input": base | {"data": {"api_key": "sk_live_nope"}}})
    assert rejected["extensions"]["code"] == "CREDENTIALS_REJECTED"
    assert "sk_live_nope" not in rejected["message"]
    not_json = error(api, IMPORT, {"input": base | {"data": "{api_key:"}})
    assert not_json["extensions"] == {"code": "INVALID_INPUT", "field": "data"}
    no_connector = error(api, IMPORT, {"input": base | {"connector": "nope", "data": {}}})
    assert no_connector["extensions"] == {"code": "CONNECTOR_NOT_FOUND"}
    no_user = error(api, IMPORT, {"input": base | {"userId": "no-such-user"}})
    assert no_user["extensions"] == {"code": "NOT_FOUND"}
    assert data(api, VIEWER_AUTHS)["viewer"]["authentications"]["edges"] == []


# The reference's mutation as a host page sends it: the end user's own token, no userId,
# serviceId and serviceEnvironmentId, and the auth data as one line of escaped JSON text.
REFERENCE_IMPORT = """
mutation($data: JSON!, $service: String!, $environment: String) {
  createUserAuthentication(input: {
    name: "Roger's sandbox", serviceId: $service, serviceEnvironmentId: $environment,
    data: $data
  }) {
    authenticationId authentication { id name service { key variant } }
  }
}"""


def test_create_user_authentication_takes_the_reference_arguments_with_a_user_token(
    api: Api, sandbox_url: str
) -> None:
    roger = create_user(api, "roger")
    token = data(api, CREATE_TOKEN, {"userId": roger})["createUserToken"]["accessToken"]
    live = sandbox_access_token(sandbox_url)
    oauth_data = json.dumps({"access_token": live, "refresh_token": "rt-1", "scopes": ["profile"]})
    created = data(
        api, REFERENCE_IMPORT, {"data": oauth_data, "service": "sandbox-oauth2"}, token=token
    )["createUserAuthentication"]
    assert created["authentication"]["name"] == "Roger's sandbox"
    assert created["authentication"]["service"] == {"key": "sandbox-oauth2", "variant": None}
    stored = api.call("GET", f"/v1/authentications/{created['authenticationId']}").json()
    assert stored["external_user_id"] == "roger"
    assert stored["scopes"] == ["profile"]
    credentials = api.call(
        "GET", f"/v1/authentications/{created['authenticationId']}/credentials"
    ).json()["credentials"]
    assert credentials["access_token"] == live
    assert "scopes" not in credentials

    form_data = '{"api_key": "' + SANDBOX_KEY + '"}'
    keyed = data(
        api, REFERENCE_IMPORT, {"data": form_data, "service": "sandbox-apikey"}, token=token
    )["createUserAuthentication"]
    assert keyed["authentication"]["service"]["key"] == "sandbox-apikey"
    mine = data(api, VIEWER_AUTHS, token=token)["viewer"]["authentications"]
    assert {node["id"] for node in nodes(mine)} == {
        created["authenticationId"],
        keyed["authenticationId"],
    }

    # serviceEnvironmentId is the variant; the aliases must agree with the names they alias
    variant = error(
        api,
        REFERENCE_IMPORT,
        {"data": form_data, "service": "sandbox-apikey", "environment": "staging"},
        token=token,
    )
    assert variant["extensions"] == {"code": "INVALID_INPUT", "field": "variant"}
    assert "no variant 'staging'" in variant["message"]
    both = {"connector": "sandbox-apikey", "serviceId": "sandbox-oauth2", "data": form_data}
    differ = error(api, IMPORT, {"input": both}, token=token)
    assert differ["extensions"] == {"code": "INVALID_INPUT", "field": "serviceId"}
    no_connector = error(api, IMPORT, {"input": {"data": form_data}}, token=token)
    assert no_connector["extensions"] == {"code": "INVALID_INPUT", "field": "connector"}
    # a master token still names the end user
    no_user = error(api, IMPORT, {"input": {"serviceId": "sandbox-apikey", "data": form_data}})
    assert no_user["extensions"] == {"code": "INVALID_INPUT", "field": "userId"}
    assert len(nodes(data(api, VIEWER_AUTHS)["viewer"]["authentications"])) == 2


def test_a_user_token_sees_and_imports_only_its_own(api: Api) -> None:
    own_id = create_user(api, "own")
    other_id = create_user(api, "other")
    own_auth = import_auth(api, own_id, "Own")
    other_auth = import_auth(api, other_id, "Other")
    token = user_token(api, "own")
    mine = data(api, VIEWER_AUTHS, token=token)["viewer"]["authentications"]
    assert [node["id"] for node in nodes(mine)] == [own_auth]
    everyone = data(api, VIEWER_AUTHS)["viewer"]["authentications"]
    assert [node["id"] for node in nodes(everyone)] == [own_auth, other_auth]
    filtered = data(
        api,
        'query { viewer { authentications(externalUserId: "other") { edges { node { id } } } } }',
    )
    assert [node["id"] for node in nodes(filtered["viewer"]["authentications"])] == [other_auth]
    # another user's data reads as not found, whichever way it is asked for
    hidden = error(
        api,
        'query { viewer { authentications(externalUserId: "other") { edges { cursor } } } }',
        token=token,
    )
    assert hidden["extensions"] == {"code": "NOT_FOUND"}
    foreign = error(
        api, IMPORT, {"input": {"userId": other_id, "connector": "sandbox-apikey"}}, token=token
    )
    assert foreign["extensions"] == {"code": "NOT_FOUND"}
    assert error(api, REMOVE_AUTH, {"id": other_auth}, token=token)["extensions"] == {
        "code": "NOT_FOUND"
    }
    assert import_key(api, "own")["id"]  # REST and GraphQL see the same authentications
    assert len(nodes(data(api, VIEWER_AUTHS, token=token)["viewer"]["authentications"])) == 2


# -- solution instances and the mapping query ------------------------------------------------

SLACK_CHANNEL = {
    "title": "Slack channel solution",
    "description": "Posts to a channel",
    "authSlots": [
        {"externalId": "external_slack_authentication", "connector": "sandbox-apikey"},
    ],
    "configSlots": [
        {"externalId": "external_channel", "schema": {"type": "string"}, "default": "general"},
        {"externalId": "external_limit", "schema": {"type": "integer"}},
    ],
}
SLACK_SALES = {
    "title": "Slack and sales solution",
    "authSlots": [
        {"externalId": "external_slack_authentication", "connector": "sandbox-apikey"},
        {
            "externalId": "external_slack_sales_dept_authentication",
            "connector": "sandbox-apikey",
            "forceUnique": True,
        },
    ],
}
CREATE_INSTANCE = """
mutation($input: CreateSolutionInstanceInput!) {
  createSolutionInstance(input: $input) {
    solutionInstance {
      id name enabled owner created
      authValues { externalId authId }
      configValues { externalId value }
      solution { id title description }
    }
  }
}"""
UPDATE_INSTANCE = """
mutation($input: UpdateSolutionInstanceInput!) {
  updateSolutionInstance(input: $input) {
    solutionInstance {
      id name enabled authValues { externalId authId } configValues { externalId value }
    }
  }
}"""
# The reference's mapping query, as it is printed there
MAPPING = """
query {
  viewer {
    solutionInstances {
      edges {
        node {
          id
          name
          authValues {
            authId
            externalId
          }
        }
      }
    }
    authentications {
      edges {
        node {
          id
          name
        }
      }
    }
  }
}"""


def apply_solution(api: Api, key: str, spec: dict[str, Any]) -> str:
    response = api.call("PUT", f"/v1/solutions/{key}", json=spec)
    assert response.status_code == 200, response.text
    solution_id: str = response.json()["solution"]["id"]
    return solution_id


def create_instance(api: Api, token: str | None = None, **fields: Any) -> dict[str, Any]:
    created = data(api, CREATE_INSTANCE, {"input": fields}, token=token)
    instance: dict[str, Any] = created["createSolutionInstance"]["solutionInstance"]
    return instance


def test_the_mapping_query_maps_two_auths_of_one_connector_to_their_instances(api: Api) -> None:
    channel = apply_solution(api, "slack-channel", SLACK_CHANNEL)
    sales = apply_solution(api, "slack-sales", SLACK_SALES)
    roger = create_user(api, "roger", "Roger Ramjet")
    slack = import_auth(api, roger, "Roger Ramjet's Slack Account")
    slack_2 = import_auth(api, roger, "Roger Ramjet's Slack Account 2")
    token = data(api, CREATE_TOKEN, {"userId": roger})["createUserToken"]["accessToken"]
    # the end user's own token creates the instances, as the reference does
    first = create_instance(
        api,
        token,
        solutionId=channel,
        instanceName="Slack channel solution 1",
        authValues=[{"externalId": "external_slack_authentication", "authId": slack}],
        configValues=[{"externalId": "external_limit", "value": "3"}],
        enabled=True,
    )
    second = create_instance(
        api,
        token,
        solutionId="slack-sales",  # by key
        instanceName="Slack and sales solution 1",
        authValues=[
            {"externalId": "external_slack_authentication", "authId": slack},
            {"externalId": "external_slack_sales_dept_authentication", "authId": slack_2},
        ],
    )
    # someone else's account and instance, which Roger's token must not see
    other = create_user(api, "other")
    other_auth = import_auth(api, other, "Other's Slack")
    create_instance(
        api,
        solutionId=channel,
        userId=other,
        instanceName="Other's instance",
        authValues=[{"externalId": "external_slack_authentication", "authId": other_auth}],
    )

    assert first["enabled"] is True
    assert first["owner"] == roger
    assert first["solution"] == {
        "id": channel,
        "title": "Slack channel solution",
        "description": "Posts to a channel",
    }
    # JSON text, as the reference shows it; the default fills the slot left unset
    assert first["configValues"] == [
        {"externalId": "external_channel", "value": '"general"'},
        {"externalId": "external_limit", "value": "3"},
    ]
    assert second["solution"]["id"] == sales

    viewer = data(api, MAPPING, token=token)["viewer"]
    assert nodes(viewer["solutionInstances"]) == [
        {
            "id": first["id"],
            "name": "Slack channel solution 1",
            "authValues": [{"authId": slack, "externalId": "external_slack_authentication"}],
        },
        {
            "id": second["id"],
            "name": "Slack and sales solution 1",
            "authValues": [
                {"authId": slack, "externalId": "external_slack_authentication"},
                {"authId": slack_2, "externalId": "external_slack_sales_dept_authentication"},
            ],
        },
    ]
    assert nodes(viewer["authentications"]) == [
        {"id": slack, "name": "Roger Ramjet's Slack Account"},
        {"id": slack_2, "name": "Roger Ramjet's Slack Account 2"},
    ]
    used_in: dict[str, set[str]] = {}
    for instance in nodes(viewer["solutionInstances"]):
        for value in instance["authValues"]:
            used_in.setdefault(value["authId"], set()).add(instance["name"])
    assert used_in == {
        slack: {"Slack channel solution 1", "Slack and sales solution 1"},
        slack_2: {"Slack and sales solution 1"},
    }

    # a master token sees every end user's, or one end user's when asked
    everyone = data(api, MAPPING)["viewer"]
    assert len(everyone["solutionInstances"]["edges"]) == 3
    assert len(everyone["authentications"]["edges"]) == 3
    query = """query { viewer {
        solutionInstances(externalUserId: "roger") { edges { node { id owner } } }
        authentications(externalUserId: "roger") { edges { node { id } } } } }"""
    only_roger = data(api, query)["viewer"]
    assert [n["id"] for n in nodes(only_roger["solutionInstances"])] == [first["id"], second["id"]]
    assert {n["owner"] for n in nodes(only_roger["solutionInstances"])} == {roger}
    assert [n["id"] for n in nodes(only_roger["authentications"])] == [slack, slack_2]


def test_solution_instance_mutations(api: Api) -> None:
    channel = apply_solution(api, "slack-channel", SLACK_CHANNEL)
    user = create_user(api, "ann")
    slack = import_auth(api, user, "Ann's Slack")
    created = create_instance(
        api, solutionId=channel, userId=user, instanceName="Draft", enabled=False
    )
    assert created["enabled"] is False
    assert created["authValues"] == []
    # enabling needs every slot filled: a clear conflict naming the slot
    incomplete = error(
        api, UPDATE_INSTANCE, {"input": {"solutionInstanceId": created["id"], "enabled": True}}
    )
    assert incomplete["extensions"]["code"] == "CONFLICT"
    assert "external_slack_authentication" in incomplete["message"]
    assert "external_limit" in incomplete["message"]
    # enabling in the same request as filling works at once (no waiting period)
    update = {
        "solutionInstanceId": created["id"],
        "instanceName": "Live",
        "enabled": True,
        "authValues": [{"externalId": "external_slack_authentication", "authId": slack}],
        "configValues": [
            {"externalId": "external_channel", "value": '"leads"'},
            {"externalId": "external_limit", "value": "5"},
        ],
    }
    updated = data(api, UPDATE_INSTANCE, {"input": update})["updateSolutionInstance"]
    assert updated["solutionInstance"] == {
        "id": created["id"],
        "name": "Live",
        "enabled": True,
        "authValues": [{"externalId": "external_slack_authentication", "authId": slack}],
        "configValues": [
            {"externalId": "external_channel", "value": '"leads"'},
            {"externalId": "external_limit", "value": "5"},
        ],
    }
    rest = api.call("GET", f"/v1/solution-instances/{created['id']}").json()
    assert rest["enabled"] is True
    assert rest["name"] == "Live"

    remove = """mutation($id: ID!) {
        removeSolutionInstance(input: {solutionInstanceId: $id}) { solutionInstanceId } }"""
    removed = data(api, remove, {"id": created["id"]})
    assert removed == {"removeSolutionInstance": {"solutionInstanceId": created["id"]}}
    assert api.call("GET", f"/v1/solution-instances/{created['id']}").status_code == 404
    gone = error(api, remove, {"id": created["id"]})
    assert gone["extensions"] == {"code": "NOT_FOUND"}


def test_a_bad_slot_external_id_is_a_clear_error_and_changes_nothing(api: Api) -> None:
    channel = apply_solution(api, "slack-channel", SLACK_CHANNEL)
    user = create_user(api, "bob")
    slack = import_auth(api, user, "Bob's Slack")
    wrong_case = {"externalId": "External_Slack_Authentication", "authId": slack}
    response = api.call(
        "POST",
        "/graphql",
        json={
            "query": CREATE_INSTANCE,
            "variables": {
                "input": {
                    "solutionId": channel,
                    "userId": user,
                    "instanceName": "x",
                    "authValues": [wrong_case],
                }
            },
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    [found] = body["errors"]
    assert found["extensions"] == {"code": "INVALID_INPUT", "field": "authValues"}
    assert "'External_Slack_Authentication' is not one of the auth slots" in found["message"]
    assert "case-sensitive" in found["message"]
    assert found["path"] == ["createSolutionInstance"]
    for text in ("Traceback", 'File "', "stacktrace", "exception"):
        assert text not in response.text
    not_a_number = {"externalId": "external_limit", "value": "many"}
    bad_value = error(
        api,
        CREATE_INSTANCE,
        {
            "input": {
                "solutionId": channel,
                "userId": user,
                "instanceName": "x",
                "configValues": [not_a_number],
            }
        },
    )
    assert bad_value["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "configValues.external_limit",
    }
    assert "'many' is not of type 'integer'" in bad_value["message"]
    no_user = error(api, CREATE_INSTANCE, {"input": {"solutionId": channel, "instanceName": "x"}})
    assert no_user["extensions"] == {"code": "INVALID_INPUT", "field": "userId"}
    assert data(api, MAPPING)["viewer"]["solutionInstances"]["edges"] == []


def test_config_values_are_json_text_or_a_bare_string_as_the_page_sends_them(api: Api) -> None:
    channel = apply_solution(api, "slack-channel", SLACK_CHANNEL)
    user = create_user(api, "zoe")
    created = create_instance(
        api,
        solutionId=channel,
        userId=user,
        instanceName="Typeform",
        configValues=[
            {"externalId": "external_channel", "value": "Zx86yu9P"},  # as the page sends it
            {"externalId": "external_limit", "value": "3"},
        ],
    )
    assert created["configValues"] == [
        {"externalId": "external_channel", "value": '"Zx86yu9P"'},
        {"externalId": "external_limit", "value": "3"},
    ]

    def channel_after(value: str) -> str:
        update = {
            "solutionInstanceId": created["id"],
            "configValues": [{"externalId": "external_channel", "value": value}],
        }
        values = data(api, UPDATE_INSTANCE, {"input": update})["updateSolutionInstance"]
        found: str = values["solutionInstance"]["configValues"][0]["value"]
        return found

    assert channel_after('"leads"') == '"leads"'  # JSON text, as before
    assert channel_after("12345") == '"12345"'  # a string slot keeps digits as text
    assert channel_after("leads and more") == '"leads and more"'
    rest = api.call("GET", f"/v1/solution-instances/{created['id']}").json()
    assert {item["externalId"]: item["value"] for item in rest["configValues"]} == {
        "external_channel": "leads and more",
        "external_limit": 3,
    }


# The reference's Get Solution Instance query, with the fields it prints
GET_INSTANCE = """
query {
  viewer {
    solutionInstances {
      edges {
        node {
          id name enabled owner created
          solution { id title description }
          workflows { edges { node { triggerUrl id } } }
          authValues { externalId authId }
          configValues { externalId value }
        }
      }
    }
  }
}"""
WORKFLOWS = [
    {"key": "sync", "triggerUrl": "https://{{instance_id}}.hooks.example.test"},
    {
        "key": "backfill",
        "title": "Backfill",
        "triggerUrl": "https://hooks.example.test/{{solution_key}}/{{workflow}}?i={{instance_id}}",
    },
]


def test_an_instance_answers_its_workflows_with_their_trigger_urls(api: Api) -> None:
    apply_solution(api, "typeform-sheets", SLACK_CHANNEL | {"workflows": WORKFLOWS})
    user = create_user(api, "bolo")
    token = data(api, CREATE_TOKEN, {"userId": user})["createUserToken"]["accessToken"]
    first = create_instance(api, token, solutionId="typeform-sheets", instanceName="instance 1")
    second = create_instance(api, token, solutionId="typeform-sheets", instanceName="instance 2")

    found = nodes(data(api, GET_INSTANCE, token=token)["viewer"]["solutionInstances"])
    assert [node["id"] for node in found] == [first["id"], second["id"]]
    workflows = {node["id"]: nodes(node["workflows"]) for node in found}
    for instance_id, listed in workflows.items():
        assert [w["triggerUrl"] for w in listed] == [
            f"https://{instance_id}.hooks.example.test",
            f"https://hooks.example.test/typeform-sheets/backfill?i={instance_id}",
        ]
    ids = [w["id"] for listed in workflows.values() for w in listed]
    assert len(set(ids)) == 4  # each instance has its own workflows
    again = nodes(data(api, GET_INSTANCE, token=token)["viewer"]["solutionInstances"])
    assert {node["id"]: nodes(node["workflows"]) for node in again} == workflows  # stable
    rest = api.call("GET", f"/v1/solution-instances/{first['id']}").json()
    assert [(w["id"], w["triggerUrl"]) for w in rest["workflows"]] == [
        (w["id"], w["triggerUrl"]) for w in workflows[first["id"]]
    ]
    assert [w["title"] for w in rest["workflows"]] == ["sync", "Backfill"]


def test_a_failed_mutation_keeps_the_ones_before_it(api: Api) -> None:
    """Mutations run in order, each in a savepoint: a failure undoes only its own work."""
    channel = apply_solution(api, "slack-channel", SLACK_CHANNEL)
    user = create_user(api, "carol")
    document = """mutation($ok: CreateSolutionInstanceInput!, $bad: CreateSolutionInstanceInput!) {
      kept: createSolutionInstance(input: $ok) { solutionInstance { id } }
      failed: createSolutionInstance(input: $bad) { solutionInstance { id } }
    }"""
    base = {"solutionId": channel, "userId": user}
    bad_limit = [{"externalId": "external_limit", "value": '"many"'}]
    body = post(
        api,
        document,
        {
            "ok": base | {"instanceName": "kept"},
            "bad": base | {"instanceName": "failed", "configValues": bad_limit},
        },
    )
    assert body["data"] is None  # a non-null field failed
    [found] = body["errors"]
    assert found["path"] == ["failed"]
    assert found["extensions"]["field"] == "configValues.external_limit"
    names = [n["name"] for n in nodes(data(api, MAPPING)["viewer"]["solutionInstances"])]
    assert names == ["kept"]


def test_generate_authorization_code(api: Api) -> None:
    user = create_user(api, "dave")
    query = """mutation($userId: ID!) {
        generateAuthorizationCode(input: {userId: $userId}) { authorizationCode expiresAt } }"""
    first = data(api, query, {"userId": user})["generateAuthorizationCode"]
    token = user_token(api, "dave")
    second = data(api, query, {"userId": user}, token=token)["generateAuthorizationCode"]
    assert len({first["authorizationCode"], second["authorizationCode"]}) == 2
    with api.bridge.session() as session:  # the code opens the wizard for that end user
        opened = wizard.open_code(api.bridge, session, second["authorizationCode"])
        assert opened.end_user.id == user
    other = create_user(api, "eve")
    refused = error(api, query, {"userId": other}, token=token)
    assert refused["extensions"] == {"code": "NOT_FOUND"}


def test_listing_instances_costs_the_same_queries_for_many(api: Api) -> None:
    """No query per instance: auth values load in one batch, each solution once."""
    channel = apply_solution(api, "slack-channel", SLACK_CHANNEL)
    user = create_user(api, "frank")
    slack = import_auth(api, user, "Frank's Slack")
    query = """query { viewer { solutionInstances {
        edges { node { id authValues { authId } configValues { value } solution { title } } }
    } } }"""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def statements_for_listing(instances: int) -> int:
        for n in range(instances - len(nodes(data(api, query)["viewer"]["solutionInstances"]))):
            create_instance(
                api,
                solutionId=channel,
                userId=user,
                instanceName=f"instance {n}",
                authValues=[{"externalId": "external_slack_authentication", "authId": slack}],
            )
        statements.clear()
        event.listen(api.bridge.database.engine, "before_cursor_execute", count)
        try:
            listed = nodes(data(api, query)["viewer"]["solutionInstances"])
        finally:
            event.remove(api.bridge.database.engine, "before_cursor_execute", count)
        assert len(listed) == instances
        assert all(node["solution"]["title"] == "Slack channel solution" for node in listed)
        return len(statements)

    assert statements_for_listing(2) == statements_for_listing(8)
