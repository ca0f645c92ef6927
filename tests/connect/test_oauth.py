"""The OAuth connect flow over real HTTP: connect page → sandbox provider → callback.

One ``httpx.Client`` is the end user's browser (it keeps the cookie that binds a flow to it, and
never follows redirects, so every hop is checked). The sandbox provider runs on another loopback
port; its consent page is "clicked" by posting its form. SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pytest
from authlib.oauth1 import ClientAuth  # type: ignore[import-untyped]
from sqlalchemy import select

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connect.oauth import COOKIE_PREFIX
from authbridge.connectors.registry import Registry
from authbridge.mechanisms.oauth2_discovery import metadata_cache
from authbridge.storage.crypto import unseal_json
from authbridge.storage.models import OAuthState
from tests.support.app import Api
from tests.support.loopback import port_of, serve
from tests.support.oauth2_provider import OAuth2Provider
from tests.support.oauth_steps import consent, query_of, result_of, start

HOST_ORIGIN = "http://host.example.test"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
CONNECT_FAILED = "Connecting account failed"
STATE_LOST = "This sign-in was already completed, has expired, or was started in another browser"
OAUTH2 = "sandbox-oauth2"
OAUTH1 = "sandbox-oauth1"
SANDBOX_EMAIL = "sandbox@example.test"


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def configured(api: Api) -> Api:
    """``api`` with the sandbox's OAuth 2 client and OAuth 1.0a consumer configured."""
    for key, body in (
        (OAUTH2, {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}),
        (
            OAUTH1,
            {"consumer_key": "sandbox-consumer", "consumer_secret": "sandbox-consumer-secret"},
        ),
    ):
        response = api.call("PUT", f"/v1/connector-configs/{key}", json=body)
        assert response.status_code in (200, 201), response.text
    return api


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """The end user's browser: keeps cookies, follows no redirect, sends no token."""
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        yield client


def open_session(api: Api, connector: str = OAUTH2, **extra: Any) -> str:
    body = {"external_user_id": "user-1", "connector": connector, "origin": HOST_ORIGIN} | extra
    response = api.call("POST", "/v1/connect/sessions", json=body)
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    return url


def consent1(browser: httpx.Client, authorize_url: str, decision: str = "approve") -> str:
    """Answer the sandbox's OAuth 1.0a consent page; the callback URL it redirects to."""
    page = browser.get(authorize_url)
    assert page.status_code == 200, page.text
    endpoint = urlunsplit(urlsplit(authorize_url)._replace(query=""))
    form = {"oauth_token": query_of(authorize_url)["oauth_token"]}
    if decision != "approve":
        form["decision"] = decision
    answer = browser.post(endpoint, data=form)
    assert answer.status_code == 303, answer.text
    callback: str = answer.headers["location"]
    return callback


def connect_oauth2(api: Api, browser: httpx.Client, **extra: Any) -> tuple[str, httpx.Response]:
    """The whole OAuth 2 flow; the callback URL and the callback page."""
    callback = consent(browser, start(browser, open_session(api, **extra)))
    return callback, browser.get(callback)


def assert_failure(response: httpx.Response, reason: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert "data-result" not in response.text
    assert CONNECT_FAILED in response.text or status == 404, response.text
    assert reason in html.unescape(response.text), response.text
    assert_callback_headers(response)


def assert_callback_headers(response: httpx.Response) -> None:
    """No referrer at all, the pages' CSP, and no resource from another origin."""
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert '<meta name="referrer" content="no-referrer">' in response.text
    resources = re.findall(
        r'<(?:script|link|img|iframe)\b[^>]*?(?:src|href)="([^"]*)"', response.text
    )
    assert resources, response.text
    for resource in resources:
        assert resource.startswith("/static/"), resource
    # The only absolute URL is the host's origin the result is posted to (not loaded).
    text = response.text.replace(f'data-origin="{HOST_ORIGIN}"', "")
    assert "http://" not in text
    assert "https://" not in text


def listed(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.call("GET", "/v1/authentications").json()["items"]
    return items


def credentials_of(api: Api, auth_id: str) -> dict[str, Any]:
    response = api.call("GET", f"/v1/authentications/{auth_id}/credentials")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_secrets(api: Api) -> dict[str, Any]:
    """The decrypted secrets of the one pending OAuth state (what the callback will need)."""
    with api.bridge.session(readonly=True) as session:
        states = session.scalars(select(OAuthState)).all()
        assert len(states) == 1
        found: dict[str, Any] = unseal_json(api.bridge.keyring, states[0], "secrets_ct")
    return found


def sandbox_me(sandbox_url: str, access_token: str) -> httpx.Response:
    return httpx.get(
        f"{sandbox_url}/oauth2/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def sandbox_stats(sandbox_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sandbox_url}/sandbox/stats", timeout=10).json()
    return stats


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = query_of(url) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- OAuth 2 ---------------------------------------------------------------------------------


def test_oauth2_connects_an_account_with_a_working_token(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    open_url = open_session(api)
    page = browser.get(consent(browser, start(browser, open_url)))
    result = result_of(page)
    assert result["connector"] == OAUTH2
    assert_callback_headers(page)
    assert [item["id"] for item in listed(api)] == [result["authId"]]
    created = api.call("GET", f"/v1/authentications/{result['authId']}").json()
    assert created["name"] == SANDBOX_EMAIL
    assert created["external_user_id"] == "user-1"

    body = credentials_of(api, result["authId"])
    assert body["auth_type"] == "oauth2"
    assert body["expires_at"] is not None
    credentials = body["credentials"]
    assert "refresh_token" not in credentials
    assert "refresh_token" not in json.dumps(body)
    me = sandbox_me(sandbox_url, credentials["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["email"] == SANDBOX_EMAIL
    # The browser's cookie for the flow is gone with the flow, and the link is used up.
    assert not [name for name in browser.cookies if name.startswith(COOKIE_PREFIX)]
    assert browser.get(open_url).status_code == 404


def test_no_token_travels_in_a_url_or_a_page(configured: Api, browser: httpx.Client) -> None:
    api = configured
    authorize_url = start(browser, open_session(api))
    callback = consent(browser, authorize_url)
    assert set(query_of(callback)) == {"code", "state", "iss"}
    assert urlsplit(callback).fragment == ""
    page = browser.get(callback)
    result = result_of(page)
    credentials = credentials_of(api, result["authId"])["credentials"]
    token = credentials["access_token"]
    assert token
    for url in (authorize_url, callback, str(page.url)):
        assert token not in url
    assert token not in page.text
    assert query_of(callback)["code"] not in page.text


def test_no_token_is_logged(
    configured: Api, browser: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing the server (or the sandbox) logs holds a token, code, state or verifier."""
    api = configured
    caplog.set_level(logging.DEBUG)
    authorize_url = start(browser, open_session(api))
    verifier = stored_secrets(api)["code_verifier"]
    callback = consent(browser, authorize_url)
    result = result_of(browser.get(callback))
    assert_failure(browser.get(callback), STATE_LOST)  # a replay is logged, if anything is
    with api.bridge.session(readonly=True) as session:
        auths = AuthenticationRepository(session, api.bridge.keyring)
        auth = auths.get(api.environment_id, result["authId"], now=api.bridge.now())
        assert auth is not None
        stored = auths.credentials(auth)
    secrets = {
        "access token": stored["access_token"],
        "refresh token": stored["refresh_token"],
        "code": query_of(callback)["code"],
        "state": query_of(callback)["state"],
        "verifier": verifier,
    }
    main = threading.main_thread().ident
    # The test's own client (this thread) logs the URLs it requests: those are not the server's.
    server_lines = [record.getMessage() for record in caplog.records if record.thread != main]
    assert server_lines, "the server's outbound requests are logged by httpx"
    for line in server_lines:
        for what, value in secrets.items():
            assert value not in line, f"{what} logged: {line}"


def test_the_state_cannot_be_replayed(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    authorize_url = start(browser, open_session(api))
    cookies = dict(browser.cookies.items())
    callback = consent(browser, authorize_url)
    result = result_of(browser.get(callback))
    before = sandbox_stats(sandbox_url)["token_requests"]["authorization_code"]

    # The same browser again (the success deleted its cookie) ...
    assert_failure(browser.get(callback), STATE_LOST)
    # ... and with the cookie put back: the replay has everything but a fresh state.
    with httpx.Client(follow_redirects=False, timeout=10, cookies=cookies) as replayer:
        again = replayer.get(callback)
    assert_failure(again, STATE_LOST)
    assert [item["id"] for item in listed(api)] == [result["authId"]]
    assert sandbox_stats(sandbox_url)["token_requests"]["authorization_code"] == before


def test_a_callback_in_another_browser_is_refused(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    callback = consent(browser, start(browser, open_session(api)))
    before = sandbox_stats(sandbox_url)["token_requests"]["authorization_code"]

    with httpx.Client(follow_redirects=False, timeout=10) as other:
        refused = other.get(callback)
        assert_failure(refused, STATE_LOST)
        # Another browser's own (valid) cookie for another flow does not help either.
        start(other, open_session(api))
        other_cookie = next(n for n in other.cookies if n.startswith(COOKIE_PREFIX))
        forged = {mine: other.cookies[other_cookie] for mine in browser.cookies}
        refused = httpx.get(callback, cookies=forged, timeout=10)
        assert_failure(refused, STATE_LOST)
    assert listed(api) == []
    assert sandbox_stats(sandbox_url)["token_requests"]["authorization_code"] == before

    # The flow is intact for the browser that started it.
    result_of(browser.get(callback))
    assert len(listed(api)) == 1


def test_pkce_sends_only_the_s256_challenge(configured: Api, browser: httpx.Client) -> None:
    api = configured
    authorize_url = start(browser, open_session(api))
    query = query_of(authorize_url)
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert "code_verifier" not in query
    assert "code_verifier" not in authorize_url
    assert query["response_type"] == "code"
    assert query["client_id"] == "sandbox-client"
    assert "client_secret" not in query
    assert "sandbox-secret" not in authorize_url
    verifier = stored_secrets(api)["code_verifier"]
    assert re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", verifier)
    digest = hashlib.sha256(verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert verifier not in authorize_url
    assert all(verifier not in value for value in browser.cookies.values())
    # The sandbox checks the verifier against the challenge: the flow goes through.
    result_of(browser.get(consent(browser, authorize_url)))


def test_an_unexpected_issuer_aborts_and_stores_nothing(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    callback = consent(browser, start(browser, open_session(api)))
    assert query_of(callback)["iss"] == "http://127.0.0.1:8400"
    before = sandbox_stats(sandbox_url)["token_requests"]["authorization_code"]

    forged = with_query(callback, iss="http://127.0.0.1:8401")
    page = browser.get(forged)
    assert_failure(page, "issuer")
    assert listed(api) == []
    assert sandbox_stats(sandbox_url)["token_requests"]["authorization_code"] == before
    # The state was used up by the attempt: the genuine redirect cannot follow it.
    assert_failure(browser.get(callback), STATE_LOST)
    assert listed(api) == []


def test_a_missing_issuer_aborts(configured: Api, browser: httpx.Client) -> None:
    api = configured
    callback = consent(browser, start(browser, open_session(api)))
    query = query_of(callback)
    del query["iss"]
    page = browser.get(urlunsplit(urlsplit(callback)._replace(query=urlencode(query))))
    assert_failure(page, "issuer")
    assert listed(api) == []


def test_the_redirect_uri_is_the_same_in_both_requests(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    authorize_url = start(browser, open_session(api))
    redirect_uri = query_of(authorize_url)["redirect_uri"]
    assert redirect_uri == api.url + "/auth/sandbox-oauth2/callback"
    callback = consent(browser, authorize_url)
    assert callback.startswith(redirect_uri + "?")
    before = sandbox_stats(sandbox_url)["token_requests"]["authorization_code"]
    # The sandbox's token endpoint refuses a code whose redirect_uri differs by one byte.
    result_of(browser.get(callback))
    assert sandbox_stats(sandbox_url)["token_requests"]["authorization_code"] == before + 1


def test_a_denied_authorization_ends_on_the_failure_page(
    configured: Api, browser: httpx.Client
) -> None:
    api = configured
    callback = consent(browser, start(browser, open_session(api)), decision="deny")
    assert query_of(callback)["error"] == "access_denied"
    page = browser.get(callback)
    assert_failure(page, "The user denied access")
    assert listed(api) == []


def test_the_providers_reason_is_shown_as_text(configured: Api, browser: httpx.Client) -> None:
    api = configured
    callback = consent(browser, start(browser, open_session(api)), decision="deny")
    page = browser.get(with_query(callback, error_description="<script>alert(1)</script>"))
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert_failure(page, "<script>alert(1)</script>")


def test_an_expired_state_is_refused(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    authorize_url = start(browser, open_session(api))
    callback = consent(browser, authorize_url)
    real_clock = api.bridge.clock
    api.bridge.clock = lambda: real_clock() + timedelta(minutes=11)
    before = sandbox_stats(sandbox_url)["token_requests"]["authorization_code"]
    page = browser.get(callback)
    assert_failure(page, STATE_LOST)
    assert listed(api) == []
    assert sandbox_stats(sandbox_url)["token_requests"]["authorization_code"] == before


def test_a_state_expires_before_its_connect_link(configured: Api, browser: httpx.Client) -> None:
    api = configured
    url = open_session(api)  # valid 10 minutes from now
    real_clock = api.bridge.clock
    api.bridge.clock = lambda: real_clock() - timedelta(minutes=5)
    callback = consent(browser, start(browser, url))  # its state: valid 5 minutes from now
    api.bridge.clock = lambda: real_clock() + timedelta(minutes=6)
    assert browser.get(url).status_code == 200  # the link still is
    assert_failure(browser.get(callback), STATE_LOST)
    assert listed(api) == []


def test_the_scopes_come_from_the_connector_not_the_browser(
    configured: Api, browser: httpx.Client
) -> None:
    api = configured
    url = open_session(api)
    assert browser.get(url).status_code == 200
    started = browser.post(
        url + "/oauth?scope=admin&scopes=admin",
        data={"scope": "profile email admin", "scopes": "admin"},
    )
    assert started.status_code == 303, started.text
    authorize_url = started.headers["location"]
    query = query_of(authorize_url)
    assert query["scope"] == "profile"
    assert "admin" not in authorize_url
    result = result_of(browser.get(consent(browser, authorize_url)))
    created = api.call("GET", f"/v1/authentications/{result['authId']}").json()
    assert created["scopes"] == ["profile"]


def test_skip_auth_settings_goes_straight_to_the_provider(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    url = open_session(api, skip_auth_settings=True)
    response = browser.get(url + "?scope=admin")
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(sandbox_url + "/oauth2/authorize?")
    assert query_of(location)["scope"] == "profile"
    assert any(name.startswith(COOKIE_PREFIX) for name in browser.cookies)
    result = result_of(browser.get(consent(browser, location)))
    assert result["connector"] == OAUTH2


def test_the_page_shows_the_oauth_button(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    page = browser.get(open_session(configured))
    assert page.status_code == 200
    assert "Connect with Sandbox OAuth 2" in page.text
    assert 'name="field.' not in page.text
    # Browsers check form-action on the redirect to the provider's sign-in page.
    sandbox_origin = "http://127.0.0.1:" + str(port_of(sandbox_url))
    expected = CSP.replace("form-action 'self'", f"form-action 'self' https: {sandbox_origin}")
    assert page.headers["content-security-policy"] == expected


def test_reconnecting_in_place_keeps_the_id(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    _, page = connect_oauth2(api, browser)
    auth_id = result_of(page)["authId"]
    first = credentials_of(api, auth_id)["credentials"]["access_token"]

    _, again = connect_oauth2(api, browser, authentication_id=auth_id)
    assert result_of(again)["authId"] == auth_id
    assert [item["id"] for item in listed(api)] == [auth_id]
    second = credentials_of(api, auth_id)["credentials"]["access_token"]
    assert second != first
    assert sandbox_me(sandbox_url, second).status_code == 200


def set_stored_profile(api: Api, auth_id: str, profile: dict[str, Any]) -> None:
    """Pretend the authentication was connected with another provider account."""
    with api.bridge.session() as session:
        auths = AuthenticationRepository(session, api.bridge.keyring)
        auth = auths.get(api.environment_id, auth_id, now=api.bridge.now())
        assert auth is not None
        auths.update_credentials(
            auth, auths.credentials(auth), profile=profile, name=str(profile["email"])
        )


def test_reconnecting_another_account_is_refused(configured: Api, browser: httpx.Client) -> None:
    api = configured
    _, page = connect_oauth2(api, browser)
    auth_id = result_of(page)["authId"]
    before = credentials_of(api, auth_id)["credentials"]["access_token"]
    set_stored_profile(api, auth_id, {"id": "someone-else", "email": "else@example.test"})

    _, refused = connect_oauth2(api, browser, authentication_id=auth_id)
    assert_failure(
        refused,
        "You signed in as sandbox@example.test, but this connection belongs to else@example.test",
    )
    assert credentials_of(api, auth_id)["credentials"]["access_token"] == before
    assert [item["id"] for item in listed(api)] == [auth_id]


def test_allow_account_change_lets_a_reconnect_change_the_account(
    configured: Api, browser: httpx.Client
) -> None:
    api = configured
    _, page = connect_oauth2(api, browser)
    auth_id = result_of(page)["authId"]
    set_stored_profile(api, auth_id, {"id": "someone-else", "email": "else@example.test"})

    _, again = connect_oauth2(api, browser, authentication_id=auth_id, allow_account_change=True)
    assert result_of(again)["authId"] == auth_id
    with api.bridge.session() as session:
        auths = AuthenticationRepository(session, api.bridge.keyring)
        auth = auths.get(api.environment_id, auth_id, now=api.bridge.now())
        assert auth is not None
        profile = auths.profile(auth)
    assert profile is not None
    assert profile["id"] == "sandbox-user-1"


def test_an_unknown_connector_in_the_callback_shows_a_page(
    configured: Api, browser: httpx.Client
) -> None:
    api = configured
    callback = consent(browser, start(browser, open_session(api)))
    other = callback.replace("/auth/sandbox-oauth2/", "/auth/no-such-connector/")
    page = browser.get(other)
    assert 400 <= page.status_code < 500, page.text
    assert "<h1>" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert listed(api) == []
    # Another (real) connector's callback path does not take this flow's state either.
    page = browser.get(callback.replace("/auth/sandbox-oauth2/", "/auth/sandbox-apikey/"))
    assert 400 <= page.status_code < 500, page.text
    assert listed(api) == []


def test_a_redirect_uri_registered_in_camel_case_reaches_its_connector(
    api: Api, api_connectors: Path, browser: httpx.Client, tmp_path: Path
) -> None:
    """The reference's ``/auth/myService/callback`` for a connector keyed ``my-service``."""
    folder = tmp_path / "connectors" / "acme" / "myService"
    folder.mkdir(parents=True)
    shutil.copy(api_connectors / "sandbox" / "oauth" / "auth.yaml", folder / "auth.yaml")
    (folder / "manifest.yaml").write_text("key: my-service\nlabel: My Service\n")
    api.bridge.registry = Registry.load(
        [api_connectors, tmp_path / "connectors"], include_catalog=False
    )
    registered = api.url + "/auth/myService/callback"
    body = {
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "redirect_uri": registered,
    }
    response = api.call("PUT", "/v1/connector-configs/my-service", json=body)
    assert response.status_code in (200, 201), response.text

    authorize_url = start(browser, open_session(api, connector="my-service"))
    assert query_of(authorize_url)["redirect_uri"] == registered
    callback = consent(browser, authorize_url)
    assert callback.startswith(registered + "?")
    result = result_of(browser.get(callback))
    assert result["connector"] == "my-service"
    assert [item["id"] for item in listed(api)] == [result["authId"]]


@pytest.fixture
def discovered_provider(
    api: Api, api_connectors: Path, tmp_path: Path
) -> Iterator[tuple[OAuth2Provider, str]]:
    """A loopback server announcing RFC 9207 in its metadata, and a connector (``acme-found``)
    that declares only its ``issuer``: endpoints come from the metadata."""
    provider = OAuth2Provider(client_id="acme-client", client_secret="acme-secret")
    provider.metadata["authorization_response_iss_parameter_supported"] = True
    metadata_cache.clear()
    with serve(provider.app) as url:
        folder = tmp_path / "connectors" / "acme" / "found"
        folder.mkdir(parents=True)
        (folder / "auth.yaml").write_text(
            "type: oauth2\n"
            "definition:\n"
            f"  issuer: {url}\n"
            f"  request_profile_info: {url}/me\n"
            "  account_name_from_profile_info: login\n"
        )
        (folder / "manifest.yaml").write_text("key: acme-found\nlabel: Acme Found\n")
        api.bridge.registry = Registry.load(
            [api_connectors, tmp_path / "connectors"], include_catalog=False
        )
        body = {"client_id": provider.client_id, "client_secret": provider.client_secret}
        response = api.call("PUT", "/v1/connector-configs/acme-found", json=body)
        assert response.status_code in (200, 201), response.text
        yield provider, url
    metadata_cache.clear()


def _provider_redirect(provider: OAuth2Provider, authorize_url: str, **extra: str) -> str:
    """What the provider's consent page would redirect to: a code, the state, ``extra``."""
    query = query_of(authorize_url)
    code = provider.issue_code_for(authorize_url)
    return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']} | extra)}"


def test_a_connector_declaring_only_its_issuer_connects_through_its_metadata(
    api: Api, browser: httpx.Client, discovered_provider: tuple[OAuth2Provider, str]
) -> None:
    provider, url = discovered_provider
    authorize_url = start(browser, open_session(api, connector="acme-found"))
    assert authorize_url.startswith(f"{url}/authorize?")

    result = result_of(browser.get(_provider_redirect(provider, authorize_url, iss=url)))

    assert result["connector"] == "acme-found"
    assert [item["id"] for item in listed(api)] == [result["authId"]]
    assert len(provider.token_requests) == 1
    assert provider.metadata_requests == 1  # the callback used the cached document


@pytest.mark.parametrize(
    ("iss", "reason"),
    [(None, "has no 'iss' parameter"), ("http://127.0.0.1:1", "unexpected issuer")],
)
def test_a_discovered_issuer_is_checked_at_the_callback(
    api: Api,
    browser: httpx.Client,
    discovered_provider: tuple[OAuth2Provider, str],
    iss: str | None,
    reason: str,
) -> None:
    provider, _ = discovered_provider
    authorize_url = start(browser, open_session(api, connector="acme-found"))
    extra = {} if iss is None else {"iss": iss}

    assert_failure(browser.get(_provider_redirect(provider, authorize_url, **extra)), reason)
    assert listed(api) == []
    assert provider.token_requests == []


def test_an_iss_from_a_connector_with_no_issuer_is_refused(
    api: Api, api_connectors: Path, browser: httpx.Client, tmp_path: Path
) -> None:
    """A provider sending ``iss`` to a connector that declares no issuer is refused, not
    trusted blindly (RFC 9207 §2.4)."""
    provider = OAuth2Provider(client_id="acme-client", client_secret="acme-secret")
    with serve(provider.app) as url:
        folder = tmp_path / "connectors" / "acme" / "plain"
        folder.mkdir(parents=True)
        (folder / "auth.yaml").write_text(
            "type: oauth2\n"
            "definition:\n"
            f"  auth_url: {url}/authorize\n"
            f"  request_access_token: {url}/token\n"
        )
        (folder / "manifest.yaml").write_text("key: acme-plain\nlabel: Acme Plain\n")
        api.bridge.registry = Registry.load(
            [api_connectors, tmp_path / "connectors"], include_catalog=False
        )
        body = {"client_id": provider.client_id, "client_secret": provider.client_secret}
        assert api.call("PUT", "/v1/connector-configs/acme-plain", json=body).status_code in (
            200,
            201,
        )
        authorize_url = start(browser, open_session(api, connector="acme-plain"))
        page = browser.get(_provider_redirect(provider, authorize_url, iss=url))
        assert_failure(page, "declares none to compare it with")
        assert listed(api) == []
        assert provider.token_requests == []


def test_a_callback_without_state_shows_a_page(configured: Api, browser: httpx.Client) -> None:
    page = browser.get(configured.url + "/auth/sandbox-oauth2/callback?code=abc")
    assert_failure(page, STATE_LOST)


def test_starting_from_another_origin_is_refused(configured: Api, browser: httpx.Client) -> None:
    api = configured
    url = open_session(api)
    refused = browser.post(url + "/oauth", headers={"Origin": "http://evil.example.test"})
    assert refused.status_code == 403
    assert "location" not in refused.headers
    assert not [name for name in browser.cookies if name.startswith(COOKIE_PREFIX)]
    refused = browser.post(url + "/oauth", headers={"Origin": "null"})
    assert refused.status_code == 403
    started = browser.post(url + "/oauth", headers={"Origin": api.url})
    assert started.status_code == 303


def test_the_state_cookie_is_bound_to_the_callback_path(
    configured: Api, browser: httpx.Client
) -> None:
    api = configured
    started = browser.post(open_session(api) + "/oauth")
    assert started.status_code == 303
    cookie = started.headers["set-cookie"]
    assert cookie.startswith(COOKIE_PREFIX)
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/auth/" in attributes
    state = query_of(started.headers["location"])["state"]
    assert state not in cookie


# --- OAuth 1.0a -------------------------------------------------------------------------------


def sandbox_me1(sandbox_url: str, credentials: dict[str, Any]) -> httpx.Response:
    """``GET /oauth1/me``, signed with the consumer and the stored token credentials."""
    signer = ClientAuth(
        "sandbox-consumer",
        "sandbox-consumer-secret",
        token=credentials["access_token"],
        token_secret=credentials["access_token_secret"],
    )
    url, headers, _ = signer.sign("GET", f"{sandbox_url}/oauth1/me", {}, b"")
    return httpx.get(url, headers=headers, timeout=10)


def test_oauth1_connects_an_account_with_working_credentials(
    configured: Api, browser: httpx.Client, sandbox_url: str
) -> None:
    api = configured
    authorize_url = start(browser, open_session(api, connector=OAUTH1))
    assert authorize_url.startswith(sandbox_url + "/oauth1/authorize?oauth_token=")
    callback = consent1(browser, authorize_url)
    assert callback.startswith(api.url + "/auth/sandbox-oauth1/callback?")
    assert set(query_of(callback)) == {"oauth_token", "oauth_verifier"}
    page = browser.get(callback)
    result = result_of(page)
    assert result["connector"] == OAUTH1
    assert_callback_headers(page)
    assert [item["id"] for item in listed(api)] == [result["authId"]]
    created = api.call("GET", f"/v1/authentications/{result['authId']}").json()
    assert created["name"] == SANDBOX_EMAIL

    body = credentials_of(api, result["authId"])
    assert body["auth_type"] == "oauth1"
    credentials = body["credentials"]
    assert credentials["access_token"]
    assert credentials["access_token_secret"]
    assert credentials["access_token"] != query_of(callback)["oauth_token"]
    assert credentials["access_token"] not in page.text
    me = sandbox_me1(sandbox_url, credentials)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == SANDBOX_EMAIL


def test_oauth1_callback_cannot_be_replayed_or_moved(
    configured: Api, browser: httpx.Client
) -> None:
    api = configured
    callback = consent1(browser, start(browser, open_session(api, connector=OAUTH1)))
    with httpx.Client(follow_redirects=False, timeout=10) as other:
        assert_failure(other.get(callback), STATE_LOST)
    result_of(browser.get(callback))
    assert_failure(browser.get(callback), STATE_LOST)
    assert len(listed(api)) == 1


def test_oauth1_deny_ends_on_the_failure_page(configured: Api, browser: httpx.Client) -> None:
    api = configured
    authorize_url = start(browser, open_session(api, connector=OAUTH1))
    page = browser.get(authorize_url)
    assert "Deny" in page.text
    callback = consent1(browser, authorize_url, decision="deny")
    query = query_of(callback)
    assert set(query) == {"denied"}
    assert query["denied"] == query_of(authorize_url)["oauth_token"]
    failed = browser.get(callback)
    assert_failure(failed, "denied")
    assert listed(api) == []


def test_an_unconfigured_oauth_connector_says_so(api: Api, browser: httpx.Client) -> None:
    url = open_session(api)
    response = browser.post(url + "/oauth", headers={"Origin": api.url})
    assert response.status_code == 503
    assert "is not set up yet: its OAuth client id is missing" in response.text
    assert "set-cookie" not in response.headers
