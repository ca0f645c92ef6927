"""The sandbox provider (``authbridge.sandbox``) and ``authbridge sandbox``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
from authlib.oauth1 import ClientAuth
from typer.testing import CliRunner

from authbridge.cli import app as cli_app
from authbridge.sandbox import SandboxSettings, create_app
from authbridge.spec.rfc7636 import code_challenge, generate_code_verifier
from tests.support.loopback import serve

ISSUER = "http://127.0.0.1:8400"
REDIRECT = "http://127.0.0.1:9999/callback"
BASIC = "Basic " + base64.b64encode(b"sandbox-client:sandbox-secret").decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock: Clock) -> Iterator[httpx.Client]:
    app = create_app(SandboxSettings(issuer=ISSUER, token_lifetime=120), clock=clock)
    with serve(app) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def authorize(
    client: httpx.Client, decision: str = "approve", challenge: str | None = None, **extra: str
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "sandbox-client",
        "redirect_uri": REDIRECT,
        "scope": "profile email",
        "state": "xyz",
        **extra,
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    shown = client.get("/oauth2/authorize", params=params)
    assert shown.status_code == 200
    response = client.post("/oauth2/authorize", data={**params, "decision": decision})
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


def exchange(client: httpx.Client, code: str, verifier: str | None = None, **extra: str) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    return client.post("/oauth2/token", data=data, headers={"Authorization": BASIC})


def refresh(client: httpx.Client, token: str) -> Any:
    return client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    )


def me(client: httpx.Client, token: str) -> Any:
    return client.get("/oauth2/me", headers={"Authorization": f"Bearer {token}"})


def connected(client: httpx.Client) -> dict[str, Any]:
    verifier = generate_code_verifier()
    result = authorize(client, challenge=code_challenge(verifier))
    response = exchange(client, result["code"], verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- OAuth 2 -------------------------------------------------------------------------------


def test_consent_page_shows_client_scopes_and_no_referrer(client: httpx.Client) -> None:
    response = client.get(
        "/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": "sandbox-client",
            "redirect_uri": REDIRECT,
            "scope": "profile <b>x</b>",
        },
    )
    assert response.status_code == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    text = response.text
    assert "sandbox-client" in text
    assert "<code>profile</code>" in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text
    assert "<b>x</b>" not in text
    assert 'value="approve"' in text
    assert 'value="deny"' in text
    assert "http://" not in text.split("<body>")[0]  # no third-party resources in <head>
    assert "<script" not in text
    assert "<link" not in text


def test_consent_approve_redirects_with_code_state_and_iss(client: httpx.Client) -> None:
    result = authorize(client)
    assert set(result) == {"code", "state", "iss"}
    assert result["state"] == "xyz"
    assert result["iss"] == ISSUER
    token = exchange(client, result["code"]).json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 120
    assert token["scope"] == "profile email"
    profile = me(client, token["access_token"]).json()
    assert set(profile) == {"id", "login", "name", "email"}


def test_consent_deny_redirects_with_access_denied(client: httpx.Client) -> None:
    response = client.post(
        "/oauth2/authorize",
        data={
            "response_type": "code",
            "client_id": "sandbox-client",
            "redirect_uri": REDIRECT,
            "state": "s1",
            "decision": "deny",
        },
    )
    assert response.status_code == 303
    query = urlsplit(response.headers["location"]).query
    assert "error=access_denied&error_description=The+user+denied+access" in query
    assert parse_qs(query)["state"] == ["s1"]
    assert parse_qs(query)["iss"] == [ISSUER]
    assert "code" not in parse_qs(query)


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        ("someone-else", REDIRECT),
        ("sandbox-client", "https://evil.example/callback"),
        ("sandbox-client", "javascript:alert(1)"),
    ],
)
def test_authorize_refuses_unknown_client_or_remote_redirect(
    client: httpx.Client, client_id: str, redirect_uri: str
) -> None:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    assert client.get("/oauth2/authorize", params=params).status_code == 400
    response = client.post("/oauth2/authorize", data={**params, "decision": "approve"})
    assert response.status_code == 400
    assert "location" not in response.headers


def test_pkce_wrong_verifier_refused(client: httpx.Client) -> None:
    verifier = generate_code_verifier()
    result = authorize(client, challenge=code_challenge(verifier))
    response = exchange(client, result["code"], generate_code_verifier())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_pkce_missing_verifier_refused(client: httpx.Client) -> None:
    result = authorize(client, challenge=code_challenge(generate_code_verifier()))
    assert exchange(client, result["code"]).json()["error"] == "invalid_grant"


def test_code_is_single_use_and_reuse_revokes_tokens(client: httpx.Client) -> None:
    result = authorize(client)
    first = exchange(client, result["code"])
    assert first.status_code == 200
    second = exchange(client, result["code"])
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert me(client, first.json()["access_token"]).status_code == 401


def test_code_expires_after_60_seconds(client: httpx.Client, clock: Clock) -> None:
    result = authorize(client)
    clock.now += 61
    assert exchange(client, result["code"]).json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_exactly(client: httpx.Client) -> None:
    result = authorize(client)
    response = exchange(client, result["code"], redirect_uri=REDIRECT + "/")
    assert response.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(client: httpx.Client) -> None:
    result = authorize(client)
    bad = "Basic " + base64.b64encode(b"sandbox-client:nope").decode()
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": result["code"], "redirect_uri": REDIRECT},
        headers={"Authorization": bad},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_refresh_rotates_and_counts(client: httpx.Client) -> None:
    first = connected(client)
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["access_token"] != first["access_token"]
    third = refresh(client, rotated["refresh_token"])
    assert third.status_code == 200
    assert me(client, third.json()["access_token"]).status_code == 200
    stats = client.get("/sandbox/stats").json()
    assert stats["token_requests"]["refresh_token"] == 2
    assert stats["token_requests"]["authorization_code"] == 1


def test_refresh_reuse_revokes_the_whole_grant(client: httpx.Client) -> None:
    first = connected(client)
    rotated = refresh(client, first["refresh_token"]).json()
    assert me(client, rotated["access_token"]).status_code == 200
    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert me(client, rotated["access_token"]).status_code == 401
    assert me(client, first["access_token"]).status_code == 401
    assert refresh(client, rotated["refresh_token"]).json()["error"] == "invalid_grant"
    assert client.get("/sandbox/stats").json()["refresh_reuse_detected"] == 1


def test_access_token_expires_after_configured_lifetime(client: httpx.Client, clock: Clock) -> None:
    token = connected(client)["access_token"]
    clock.now += 119
    assert me(client, token).status_code == 200
    clock.now += 2
    assert me(client, token).status_code == 401


def test_client_credentials(client: httpx.Client) -> None:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "reports"},
        headers={"Authorization": BASIC},
    )
    assert response.status_code == 200
    body = response.json()
    assert "refresh_token" not in body
    assert body["scope"] == "reports"
    assert me(client, body["access_token"]).json()["id"] == "sandbox-client"
    assert client.get("/sandbox/stats").json()["token_requests"]["client_credentials"] == 1


def test_me_refuses_unknown_token(client: httpx.Client) -> None:
    response = me(client, "not-a-token")
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]


def test_metadata(client: httpx.Client) -> None:
    body = client.get("/.well-known/oauth-authorization-server").json()
    assert body["issuer"] == ISSUER
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["token_endpoint"] == ISSUER + "/oauth2/token"
    assert body["code_challenge_methods_supported"] == ["S256"]


# -- API key and password ------------------------------------------------------------------


def test_api_key_service(client: httpx.Client) -> None:
    good = client.get("/apikey/me", headers={"X-API-Key": "sk_sandbox_123"})
    assert good.status_code == 200
    assert good.json()["login"] == "sandbox"
    for key in ("sk_live_123", "sk_sandbox_", ""):
        bad = client.get("/apikey/me", headers={"X-API-Key": key})
        assert bad.status_code == 401
        assert bad.json() == {"message": "Invalid API key"}


def test_password_service(client: httpx.Client, clock: Clock) -> None:
    wrong = client.post("/pwd/login", json={"username": "ann", "password": "nope"})
    assert wrong.status_code == 401
    login = client.post("/pwd/login", json={"username": "ann", "password": "sandbox"})
    assert login.status_code == 200
    body = login.json()
    assert body["expires"] == 120
    auth = {"Authorization": f"Bearer {body['token']}"}
    profile = client.get("/pwd/me", headers=auth)
    assert profile.status_code == 200
    assert profile.json()["username"] == "ann"
    assert client.get("/pwd/me", headers={"Authorization": "Bearer other"}).status_code == 401
    clock.now += 121
    assert client.get("/pwd/me", headers=auth).status_code == 401


def test_password_login_rejects_malformed_body(client: httpx.Client) -> None:
    response = client.post("/pwd/login", content=b"{not json", headers={"content-type": "x"})
    assert response.status_code == 400
    assert client.post("/pwd/login", json=["sandbox"]).status_code == 400


# -- OAuth 1.0a ----------------------------------------------------------------------------

CALLBACK = "http://localhost:9999/oauth1/callback"


def signed(client: httpx.Client, method: str, path: str, auth: ClientAuth) -> Any:
    uri, headers, _ = auth.prepare(method, str(client.base_url.join(path)), {}, "")
    return client.request(method, uri, headers=headers)


def test_oauth1_full_flow(client: httpx.Client) -> None:
    initiate = ClientAuth("sandbox-consumer", "sandbox-consumer-secret", redirect_uri=CALLBACK)
    response = signed(client, "POST", "/oauth1/request_token", initiate)
    assert response.status_code == 200, response.text
    temporary = dict(parse_qsl(response.text))
    assert temporary["oauth_callback_confirmed"] == "true"

    page = client.get("/oauth1/authorize", params={"oauth_token": temporary["oauth_token"]})
    assert page.status_code == 200
    assert "Approve" in page.text
    approved = client.post("/oauth1/authorize", data={"oauth_token": temporary["oauth_token"]})
    assert approved.status_code == 303
    location = approved.headers["location"]
    assert location.startswith(CALLBACK + "?")
    back = dict(parse_qsl(urlsplit(location).query))
    assert back["oauth_token"] == temporary["oauth_token"]

    exchange_auth = ClientAuth(
        "sandbox-consumer",
        "sandbox-consumer-secret",
        token=temporary["oauth_token"],
        token_secret=temporary["oauth_token_secret"],
        verifier=back["oauth_verifier"],
    )
    response = signed(client, "POST", "/oauth1/access_token", exchange_auth)
    assert response.status_code == 200, response.text
    access = dict(parse_qsl(response.text))

    resource = ClientAuth(
        "sandbox-consumer",
        "sandbox-consumer-secret",
        token=access["oauth_token"],
        token_secret=access["oauth_token_secret"],
    )
    profile = signed(client, "GET", "/oauth1/me", resource)
    assert profile.status_code == 200
    assert profile.json()["login"] == "sandbox"

    # the request token is spent; a forged signature is refused
    assert signed(client, "POST", "/oauth1/access_token", exchange_auth).status_code == 401
    forged = ClientAuth(
        "sandbox-consumer",
        "wrong-secret",
        token=access["oauth_token"],
        token_secret=access["oauth_token_secret"],
    )
    refused = signed(client, "GET", "/oauth1/me", forged)
    assert refused.status_code == 401
    assert "oauth_problem" in refused.text


def test_oauth1_wrong_verifier_refused(client: httpx.Client) -> None:
    initiate = ClientAuth("sandbox-consumer", "sandbox-consumer-secret", redirect_uri=CALLBACK)
    temporary = dict(parse_qsl(signed(client, "POST", "/oauth1/request_token", initiate).text))
    client.post("/oauth1/authorize", data={"oauth_token": temporary["oauth_token"]})
    bad = ClientAuth(
        "sandbox-consumer",
        "sandbox-consumer-secret",
        token=temporary["oauth_token"],
        token_secret=temporary["oauth_token_secret"],
        verifier="guess",
    )
    response = signed(client, "POST", "/oauth1/access_token", bad)
    assert response.status_code == 401
    assert "verifier_invalid" in response.text


def test_oauth1_refuses_remote_callback_and_unknown_consumer(client: httpx.Client) -> None:
    remote = ClientAuth(
        "sandbox-consumer", "sandbox-consumer-secret", redirect_uri="https://evil.example/cb"
    )
    assert signed(client, "POST", "/oauth1/request_token", remote).status_code == 400
    unknown = ClientAuth("who", "sandbox-consumer-secret", redirect_uri=CALLBACK)
    assert signed(client, "POST", "/oauth1/request_token", unknown).status_code == 401


# -- CLI -----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_refuses_remote_host_without_allow_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr("authbridge.cli.sandbox.uvicorn.run", lambda *a, **k: started.append(k))
    result = runner.invoke(cli_app, ["sandbox", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "Refusing" in result.output
    assert started == []


def test_cli_runs_on_loopback_and_prints_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(
        "authbridge.cli.sandbox.uvicorn.run", lambda app, **k: started.append((app, k))
    )
    result = runner.invoke(cli_app, ["sandbox", "--port", "8411", "--token-lifetime", "30"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8411/oauth2/authorize" in result.output
    assert "sandbox-client" in result.output
    assert "sandbox-secret" in result.output
    assert "30 s" in result.output
    assert len(started) == 1
    assert started[0][1]["host"] == "127.0.0.1"
    assert started[0][1]["port"] == 8411


def test_cli_allow_remote_binds_anyway(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr("authbridge.cli.sandbox.uvicorn.run", lambda *a, **k: started.append(k))
    result = runner.invoke(cli_app, ["sandbox", "--host", "0.0.0.0", "--allow-remote"])
    assert result.exit_code == 0, result.output
    assert started[0]["host"] == "0.0.0.0"
