"""``GET /v1/authentications/{id}/request-auth`` and ``POST /v1/authentications/{id}/refresh``:
request rules rendered with fresh credentials, and refreshing on demand."""

from __future__ import annotations

import socket
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.connectors.registry import Registry
from authbridge.mechanisms.oauth1 import OAuth1Signer
from authbridge.mechanisms.request_rules import RequestAuth
from authbridge.storage.models import Authentication, AuthStatus
from authbridge.tenancy.repository import EndUserRepository
from tests.support.api_calls import assert_problem, import_key, user_token
from tests.support.app import CONNECTORS, SANDBOX_KEY, Api
from tests.support.connectors import render_connectors
from tests.support.sandbox_grants import CLIENT, refresh_requests, sandbox_tokens

RULES_CONNECTOR = """
    type: api_key
    definition:
      auth:
        api_key: {type: password, name: API key}
      validate:
        url: $SANDBOX/apikey/me
        headers: {x-api-key: "{{api_key}}"}
      request:
        base_url: $SANDBOX/apikey
        headers: {X-Api-Key: "{{api_key}}"}
        params: {source: authbridge}
    """


@pytest.fixture
def rules_api(api: Api, api_connectors: Path, sandbox_url: str, tmp_path: Path) -> Api:
    """The API with one more connector, ``rules-apikey``, which declares request rules."""
    folder = tmp_path / "rules" / "sandbox" / "rules-apikey"
    folder.mkdir(parents=True)
    text = textwrap.dedent(RULES_CONNECTOR).replace("$SANDBOX", sandbox_url)
    (folder / "auth.yaml").write_text(text, encoding="utf-8")
    api.bridge.registry = Registry.load([api_connectors, tmp_path / "rules"], include_catalog=False)
    return api


def request_auth(api: Api, auth_id: str, token: str | None = None) -> httpx.Response:
    return api.call("GET", f"/v1/authentications/{auth_id}/request-auth", token=token)


def force_refresh(api: Api, auth_id: str, token: str | None = None) -> httpx.Response:
    return api.call("POST", f"/v1/authentications/{auth_id}/refresh", token=token)


def oauth_auth(
    api: Api,
    sandbox: str,
    user: str = "user-1",
    *,
    due: bool = False,
    refresh_token: str | None = None,
) -> Authentication:
    """A sandbox OAuth 2 authentication with real tokens, due for a refresh or not."""
    tokens = sandbox_tokens(sandbox)
    now = api.bridge.now()
    with api.bridge.session() as session:
        ConnectorConfigRepository(session, api.bridge.keyring).upsert(
            api.environment_id,
            "sandbox-oauth2",
            client_id=CLIENT["client_id"],
            client_secret=CLIENT["client_secret"],
        )
        end_user = EndUserRepository(session).get_or_create(api.environment_id, user)
        return AuthenticationRepository(session, api.bridge.keyring).create(
            environment_id=api.environment_id,
            end_user_id=end_user.id,
            connector_key="sandbox-oauth2",
            connector_version="1",
            auth_type="oauth2",
            name="Sandbox",
            credentials={
                "access_token": tokens["access_token"],
                "refresh_token": refresh_token or tokens["refresh_token"],
                "token_type": "Bearer",
            },
            expires_at=now + timedelta(seconds=30 if due else 3600),
            refresh_due_at=now + (timedelta(seconds=-1) if due else timedelta(minutes=55)),
        )


def stored_access_token(api: Api, auth_id: str) -> str:
    with api.bridge.session() as session:
        repo = AuthenticationRepository(session, api.bridge.keyring)
        auth = repo.get_any(auth_id)
        assert auth is not None
        token: str = repo.credentials(auth)["access_token"]
        return token


def audit_actions(api: Api, auth_id: str) -> list[tuple[str, dict[str, Any]]]:
    events = api.call("GET", "/v1/audit-events", params={"target_id": auth_id}).json()["items"]
    return [(event["action"], event["detail"]) for event in events]


def sandbox_me(sandbox: str, answer: dict[str, Any], path: str) -> httpx.Response:
    """Call the sandbox the way the SDK does: with the wire form applied to an httpx client."""
    rules = RequestAuth.from_json(answer)
    with httpx.Client(base_url=rules.base_url or sandbox, auth=rules.auth()) as client:
        return client.get(path)


# --- request auth -----------------------------------------------------------------------------


def test_an_api_key_connectors_rules_are_rendered_and_work_at_the_provider(
    rules_api: Api, sandbox_url: str
) -> None:
    body = {"connector": "rules-apikey", "external_user_id": "user-1"}
    created = rules_api.call(
        "POST", "/v1/authentications", json=body | {"fields": {"api_key": SANDBOX_KEY}}
    )
    assert created.status_code == 201, created.text
    auth_id = created.json()["id"]

    answer = request_auth(rules_api, auth_id)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "base_url": f"{sandbox_url}/apikey",
        "headers": {"X-Api-Key": SANDBOX_KEY},
        "params": {"source": "authbridge"},
        "basic": None,
        "oauth1": None,
        "expires_at": None,
    }
    me = sandbox_me(sandbox_url, answer.json(), "me")
    assert me.status_code == 200
    assert me.request.url.params["source"] == "authbridge"
    assert audit_actions(rules_api, auth_id)[-1] == ("authentication.request_auth_read", {})


def test_a_connector_without_rules_has_no_base_url(api: Api) -> None:
    created = import_key(api)

    answer = request_auth(api, created["id"])

    assert answer.status_code == 200, answer.text
    assert answer.json()["base_url"] is None
    assert answer.json()["headers"] == {}


def test_an_oauth2_connector_sends_a_bearer_token(api: Api, sandbox_url: str) -> None:
    auth = oauth_auth(api, sandbox_url)
    before = refresh_requests(sandbox_url)

    answer = request_auth(api, auth.id)

    assert answer.status_code == 200, answer.text
    token = stored_access_token(api, auth.id)
    assert answer.json()["headers"] == {"Authorization": f"Bearer {token}"}
    assert "refresh_token" not in answer.text
    assert sandbox_me(sandbox_url, answer.json(), "/oauth2/me").status_code == 200
    assert refresh_requests(sandbox_url) == before  # not due: no refresh


def test_due_credentials_are_refreshed_before_they_are_rendered(api: Api, sandbox_url: str) -> None:
    auth = oauth_auth(api, sandbox_url, due=True)
    old = stored_access_token(api, auth.id)
    before = refresh_requests(sandbox_url)

    answer = request_auth(api, auth.id)

    assert answer.status_code == 200, answer.text
    assert refresh_requests(sandbox_url) == before + 1
    new = stored_access_token(api, auth.id)
    assert new != old
    assert answer.json()["headers"] == {"Authorization": f"Bearer {new}"}


def test_an_expired_token_that_cannot_be_refreshed_is_a_503(
    api: Api, sandbox_url: str, tmp_path: Path
) -> None:
    auth = oauth_auth(api, sandbox_url, due=True)
    api.bridge.registry = dead_provider_registry(tmp_path)
    later = api.bridge.now() + timedelta(minutes=5)
    api.bridge.clock = lambda: later

    problem = assert_problem(request_auth(api, auth.id), 503, "provider_unavailable")

    assert "could not be refreshed" in problem["detail"]
    assert problem["retry_after"] == 30


def test_oauth1_request_auth_signs_requests_the_provider_accepts(
    api: Api, sandbox_url: str
) -> None:
    with api.bridge.session() as session:
        ConnectorConfigRepository(session, api.bridge.keyring).upsert(
            api.environment_id,
            "sandbox-oauth1",
            consumer_key="sandbox-consumer",
            consumer_secret="sandbox-consumer-secret",
        )
    tokens = oauth1_access_token(sandbox_url)
    body = {
        "connector": "sandbox-oauth1",
        "external_user_id": "user-1",
        "tokens": tokens,
        "validate": False,
    }
    created = api.call("POST", "/v1/authentications", json=body)
    assert created.status_code == 201, created.text

    answer = request_auth(api, created.json()["id"])

    assert answer.status_code == 200, answer.text
    assert answer.json()["oauth1"]["token"] == tokens["access_token"]
    me = sandbox_me(sandbox_url, answer.json(), "/oauth1/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "sandbox@example.test"
    # The consumer secret is the host's: an end user's token may not read it.
    token = user_token(api, "user-1")
    problem = assert_problem(request_auth(api, created.json()["id"], token), 403, "forbidden")
    assert "consumer secret" in problem["detail"]


# --- forced refresh ---------------------------------------------------------------------------


def test_a_forced_refresh_rotates_the_access_token_once(api: Api, sandbox_url: str) -> None:
    auth = oauth_auth(api, sandbox_url)
    old = stored_access_token(api, auth.id)
    before = refresh_requests(sandbox_url)

    answer = force_refresh(api, auth.id)

    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "refreshed"
    assert answer.json()["expires_at"] is not None
    assert refresh_requests(sandbox_url) == before + 1
    new = stored_access_token(api, auth.id)
    assert new != old
    assert request_auth(api, auth.id).json()["headers"] == {"Authorization": f"Bearer {new}"}
    assert ("authentication.refresh_forced", {"outcome": "refreshed"}) in audit_actions(
        api, auth.id
    )


def test_an_api_key_cannot_be_refreshed(api: Api) -> None:
    created = import_key(api)

    problem = assert_problem(force_refresh(api, created["id"]), 409, "conflict")

    assert "cannot be refreshed" in problem["detail"]


def test_a_refused_refresh_token_means_the_end_user_must_reconnect(
    api: Api, sandbox_url: str
) -> None:
    auth = oauth_auth(api, sandbox_url, refresh_token="not-a-refresh-token")

    problem = assert_problem(force_refresh(api, auth.id), 409, "conflict")

    assert "must reconnect" in problem["detail"]
    assert "not-a-refresh-token" not in problem["detail"]
    with api.bridge.session() as session:
        stored = AuthenticationRepository(session, api.bridge.keyring).get_any(auth.id)
        assert stored is not None
        assert stored.status is AuthStatus.INVALID
    assert ("authentication.refresh_forced", {"outcome": "invalid"}) in audit_actions(api, auth.id)


def test_a_forced_refresh_the_provider_cannot_answer_is_a_503(
    api: Api, sandbox_url: str, tmp_path: Path
) -> None:
    auth = oauth_auth(api, sandbox_url)
    api.bridge.registry = dead_provider_registry(tmp_path)

    problem = assert_problem(force_refresh(api, auth.id), 503, "provider_unavailable")

    assert problem["retry_after"] > 0
    assert ("authentication.refresh_forced", {"outcome": "failed"}) in audit_actions(api, auth.id)


# --- isolation --------------------------------------------------------------------------------


def test_a_user_token_reaches_only_its_own_authentications(api: Api, sandbox_url: str) -> None:
    mine = import_key(api, "user-1")
    theirs = oauth_auth(api, sandbox_url, "user-2")
    token = user_token(api, "user-1")
    before = refresh_requests(sandbox_url)

    assert request_auth(api, mine["id"], token).status_code == 200
    assert_problem(request_auth(api, theirs.id, token), 404, "not_found")
    assert_problem(force_refresh(api, theirs.id, token), 404, "not_found")
    assert refresh_requests(sandbox_url) == before


def dead_provider_registry(tmp_path: Path) -> Registry:
    """The test connectors with the sandbox's port replaced by one nothing listens on."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    return Registry.load(
        [render_connectors(CONNECTORS, tmp_path / "dead", PORT=port)], include_catalog=False
    )


def oauth1_access_token(sandbox: str) -> dict[str, str]:
    """An access token from the sandbox's OAuth 1.0a provider, obtained as a client would."""
    consumer = {"consumer_key": "sandbox-consumer", "consumer_secret": "sandbox-consumer-secret"}
    with httpx.Client(base_url=sandbox) as client:
        signer = OAuth1Signer(**consumer, callback_url="http://127.0.0.1/callback")
        answer = client.post("/oauth1/request_token", auth=signer)
        request = dict(parse_qsl(answer.raise_for_status().text))
        approved = client.post("/oauth1/authorize", data={"oauth_token": request["oauth_token"]})
        verifier = dict(parse_qsl(urlsplit(approved.headers["location"]).query))["oauth_verifier"]
        signer = OAuth1Signer(
            **consumer,
            token=request["oauth_token"],
            token_secret=request["oauth_token_secret"],
            verifier=verifier,
        )
        answer = client.post("/oauth1/access_token", auth=signer)
        access = dict(parse_qsl(answer.raise_for_status().text))
    return {
        "access_token": access["oauth_token"],
        "access_token_secret": access["oauth_token_secret"],
    }
