"""Connector configurations: OAuth clients per environment, secrets written but never read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.support.api_calls import assert_problem
from tests.support.app import Api

PATH = "/v1/connector-configs/sandbox-oauth2"
CLIENT_SECRET = "cs-very-secret-0451"
CONSUMER_SECRET = "cons-very-secret-9876"


def put_config(api: Api, key: str = "sandbox-oauth2", **body: Any) -> dict[str, Any]:
    response = api.call("PUT", f"/v1/connector-configs/{key}", json=body)
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


def as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def raw_rows(api: Api) -> list[bytes]:
    """Every connector configuration row as the database holds it, one byte string per row."""
    with api.bridge.session() as session:
        rows = session.execute(text("SELECT * FROM connector_configs")).all()
    return [b"|".join(as_bytes(value) for value in row) for row in rows]


def test_a_configuration_is_set_read_listed_and_deleted(api: Api) -> None:
    config = put_config(
        api,
        client_id="client-1",
        client_secret=CLIENT_SECRET,
        scopes=["profile", "email"],
    )
    assert config["connector"] == "sandbox-oauth2"
    assert config["client_id"] == "client-1"
    assert config["scopes"] == ["profile", "email"]
    assert config["has_client_secret"] is True
    assert config["has_consumer_secret"] is False
    assert config["settings"] == []
    read = api.call("GET", PATH)
    assert read.status_code == 200
    assert read.json() == config
    put_config(api, "sandbox-apikey")
    listed = api.call("GET", "/v1/connector-configs").json()
    assert [item["connector"] for item in listed] == ["sandbox-apikey", "sandbox-oauth2"]
    assert listed[1] == config

    assert api.call("DELETE", PATH).status_code == 204
    assert_problem(api.call("GET", PATH), 404, "not_found")
    assert_problem(api.call("DELETE", PATH), 404, "not_found")
    assert [item["connector"] for item in api.call("GET", "/v1/connector-configs").json()] == [
        "sandbox-apikey"
    ]


def test_a_put_replaces_the_whole_configuration(api: Api) -> None:
    put_config(api, client_id="client-1", client_secret=CLIENT_SECRET, scopes=["profile"])
    replaced = put_config(api, client_id="client-2")
    assert replaced["client_id"] == "client-2"
    assert replaced["has_client_secret"] is False
    assert replaced["scopes"] is None


def test_secrets_are_never_returned(api: Api) -> None:
    body = {
        "client_id": "client-1",
        "client_secret": CLIENT_SECRET,
        "consumer_key": "consumer-1",
        "consumer_secret": CONSUMER_SECRET,
    }
    answers = [
        api.call("PUT", PATH, json=body),
        api.call("GET", PATH),
        api.call("GET", "/v1/connector-configs"),
    ]
    for response in answers:
        assert response.status_code == 200
        assert CLIENT_SECRET not in response.text
        assert CONSUMER_SECRET not in response.text
    assert answers[1].json()["has_client_secret"] is True
    assert answers[1].json()["has_consumer_secret"] is True
    assert "client_secret" not in answers[1].json()


def test_secrets_are_stored_encrypted(api: Api) -> None:
    put_config(
        api, client_id="client-1", client_secret=CLIENT_SECRET, consumer_secret=CONSUMER_SECRET
    )
    rows = raw_rows(api)
    assert len(rows) == 1
    assert b"client-1" in rows[0]  # the reading works: identifiers are plain
    assert CLIENT_SECRET.encode() not in rows[0]
    assert CONSUMER_SECRET.encode() not in rows[0]


def test_the_redirect_uri_defaults_to_the_callback_on_this_server(api: Api) -> None:
    default = put_config(api, client_id="client-1")
    assert default["redirect_uri"] is None
    assert default["redirect_uri_used"] == f"{api.url}/auth/sandbox-oauth2/callback"
    override = "https://app.example.test/oauth/callback"
    custom = put_config(api, client_id="client-1", redirect_uri=override)
    assert custom["redirect_uri"] == override
    assert custom["redirect_uri_used"] == override
    assert api.call("GET", PATH).json()["redirect_uri_used"] == override


BAD_REDIRECT_URIS = [
    "ftp://app.example.test/callback",
    "/relative/callback",
    "https://app.example.test/callback#fragment",
    "https:///no-host",
    "http://[::1/unclosed-bracket",
]


def test_a_bad_redirect_uri_is_refused(api: Api) -> None:
    for redirect_uri in BAD_REDIRECT_URIS:
        response = api.call("PUT", PATH, json={"client_id": "c", "redirect_uri": redirect_uri})
        assert response.status_code == 422, (redirect_uri, response.text)
        assert assert_problem(response, 422, "invalid_input")["field"] == "redirect_uri"
    assert_problem(api.call("GET", PATH), 404)


def test_scopes_and_settings_are_checked(api: Api) -> None:
    spaced = api.call("PUT", PATH, json={"scopes": ["two words"]})
    assert assert_problem(spaced, 422, "invalid_input")["field"] == "scopes"
    undeclared = api.call("PUT", PATH, json={"settings": {"region": "eu"}})
    assert assert_problem(undeclared, 422, "invalid_input")["field"] == "region"


def test_an_unknown_connector_is_a_404(api: Api) -> None:
    for method in ("PUT", "GET", "DELETE"):
        body = {"client_id": "c"} if method == "PUT" else None
        response = api.call(method, "/v1/connector-configs/no-such-connector", json=body)
        assert response.status_code == 404
        assert_problem(response, 404)
    put = api.call("PUT", "/v1/connector-configs/no-such-connector", json={"client_id": "c"})
    assert put.json()["code"] == "connector_not_found"
