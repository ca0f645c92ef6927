"""The OAuth connect popup end to end in Chromium: host page, authbridge, sandbox provider.

Three loopback origins: the host page loads ``/static/authbridge.js`` from authbridge and opens
the connect page in a popup; its "Connect with …" button sends the popup to the sandbox's
consent page; Approve sends it back to authbridge's callback, whose success page hands
``{authId, connector}`` to the host and closes the popup. The stored token then works at the
sandbox. Deny, and a replayed callback, end on the failure page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from authlib.oauth1 import ClientAuth  # type: ignore[import-untyped]
from playwright.sync_api import BrowserContext, Page, Request

# The API tests' running server (on SQLite and PostgreSQL) and its sandbox provider.
from tests.support.app import Api
from tests.support.host_page import HostPage, host_page

pytestmark = pytest.mark.browser

OAUTH2 = "sandbox-oauth2"
OAUTH1 = "sandbox-oauth1"
CLIENTS = {
    OAUTH2: {"client_id": "sandbox-client", "client_secret": "sandbox-secret"},
    OAUTH1: {"consumer_key": "sandbox-consumer", "consumer_secret": "sandbox-consumer-secret"},
}
LABELS = {OAUTH2: "Sandbox OAuth 2", OAUTH1: "Sandbox OAuth 1.0a"}
SANDBOX_EMAIL = "sandbox@example.test"
CONNECT_FAILED = "Connecting account failed"
STATE_LOST = "This sign-in was already completed, has expired, or was started in another browser"


@dataclass
class Host:
    """The host page, and the authbridge server its button opens connect links of."""

    api: Api
    page: HostPage

    @property
    def url(self) -> str:
        return self.page.url

    def open_session(self, connector: str) -> None:
        response = self.api.call(
            "PUT", f"/v1/connector-configs/{connector}", json=CLIENTS[connector]
        )
        assert response.status_code in (200, 201), response.text
        body = {"external_user_id": "user-1", "connector": connector, "origin": self.url}
        response = self.api.call("POST", "/v1/connect/sessions", json=body)
        assert response.status_code == 201, response.text
        self.page.url_to_open = response.json()["url"]


@pytest.fixture
def host(api: Api) -> Iterator[Host]:
    with host_page(api.url) as page:
        yield Host(api, page)


def referrers_of(context: BrowserContext) -> list[tuple[str, str]]:
    """Every request of ``context`` that carried a ``Referer``: (URL, referrer)."""
    seen: list[tuple[str, str]] = []

    def on_request(request: Request) -> None:
        referrer = request.headers.get("referer")
        if referrer:
            seen.append((request.url, referrer))

    context.on("request", on_request)
    return seen


def callbacks_of(context: BrowserContext, host: Host, connector: str) -> list[str]:
    """Every navigation to ``connector``'s callback in ``context``, as the browser sent it."""
    prefix = f"{host.api.url}/auth/{connector}/callback?"
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.startswith(prefix) and request.is_navigation_request():
            seen.append(request.url)

    context.on("request", on_request)
    return seen


def open_popup(page: Page, host: Host, connector: str) -> Page:
    """Open the connect popup from the host page and click its OAuth button."""
    host.open_session(connector)
    page.goto(host.url + "/")
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url == host.page.url_to_open
    button = popup.get_by_role("button", name=f"Connect with {LABELS[connector]}")
    with popup.expect_navigation(url=lambda url: "/authorize?" in url):
        button.click()
    popup.get_by_role("heading", name="Authorize access").wait_for()
    return popup


def approve(page: Page, popup: Page) -> dict[str, Any]:
    """Approve on the sandbox's consent page; the result the host page received."""
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Approve").click()
    page.wait_for_function("document.getElementById('result').textContent !== ''")
    assert page.text_content("#error") == ""
    result: dict[str, Any] = json.loads(page.text_content("#result") or "")
    return result


def credentials_of(server: Api, auth_id: str) -> dict[str, Any]:
    response = server.call("GET", f"/v1/authentications/{auth_id}/credentials")
    assert response.status_code == 200, response.text
    credentials: dict[str, Any] = response.json()["credentials"]
    return credentials


def listed_ids(server: Api) -> list[str]:
    return [item["id"] for item in server.call("GET", "/v1/authentications").json()["items"]]


def assert_failure_page(popup: Page, reason: str) -> None:
    heading = popup.get_by_role("heading", name=CONNECT_FAILED)
    heading.wait_for()
    assert reason in (popup.text_content("p.message") or "")


def test_oauth2_popup_connects_an_account_with_a_working_token(
    page: Page,
    host: Host,
    sandbox_url: str,
) -> None:
    callbacks = callbacks_of(page.context, host, OAUTH2)
    referrers = referrers_of(page.context)
    popup = open_popup(page, host, OAUTH2)
    assert popup.url.startswith(sandbox_url + "/oauth2/authorize?")
    result = approve(page, popup)

    assert result["connector"] == OAUTH2
    assert listed_ids(host.api) == [result["authId"]]
    assert len(callbacks) == 1
    token = credentials_of(host.api, result["authId"])["access_token"]
    assert token not in callbacks[0]
    # Neither the connect link's code nor the callback's code and state leave as a referrer:
    # the sandbox gets none from authbridge, and the callback page sends none at all.
    assert any("/connect/" in referrer for _, referrer in referrers)  # its own stylesheet
    for url, referrer in referrers:
        assert "/connect/" not in referrer or url.startswith(host.api.url), (url, referrer)
        assert "/callback" not in referrer, (url, referrer)
    me = httpx.get(
        f"{sandbox_url}/oauth2/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert me.status_code == 200, me.text
    assert me.json()["email"] == SANDBOX_EMAIL


def test_oauth1_popup_connects_an_account_with_working_credentials(
    page: Page,
    host: Host,
    sandbox_url: str,
) -> None:
    popup = open_popup(page, host, OAUTH1)
    assert popup.url.startswith(sandbox_url + "/oauth1/authorize?oauth_token=")
    result = approve(page, popup)

    assert result["connector"] == OAUTH1
    assert listed_ids(host.api) == [result["authId"]]
    credentials = credentials_of(host.api, result["authId"])
    signer = ClientAuth(
        CLIENTS[OAUTH1]["consumer_key"],
        CLIENTS[OAUTH1]["consumer_secret"],
        token=credentials["access_token"],
        token_secret=credentials["access_token_secret"],
    )
    url, headers, _ = signer.sign("GET", f"{sandbox_url}/oauth1/me", {}, b"")
    me = httpx.get(url, headers=headers, timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == SANDBOX_EMAIL


@pytest.mark.parametrize(
    ("connector", "reason"),
    [(OAUTH2, "The user denied access"), (OAUTH1, "The authorization was denied")],
)
def test_deny_ends_on_the_failure_page(page: Page, host: Host, connector: str, reason: str) -> None:
    popup = open_popup(page, host, connector)
    popup.get_by_role("button", name="Deny").click()
    assert_failure_page(popup, reason)
    assert popup.url.startswith(f"{host.api.url}/auth/{connector}/callback?")
    assert listed_ids(host.api) == []

    popup.close()
    page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "closed before an account was connected" in (page.text_content("#error") or "")
    assert page.text_content("#result") == ""


def test_a_replayed_callback_is_refused(page: Page, host: Host) -> None:
    callbacks = callbacks_of(page.context, host, OAUTH2)
    popup = open_popup(page, host, OAUTH2)
    # Keep the cookie that binds the flow to this browser: the replay has everything.
    binding = page.context.cookies(host.api.url + "/auth/")
    assert binding
    result = approve(page, popup)
    assert len(callbacks) == 1

    page.context.add_cookies(binding)  # type: ignore[arg-type]
    replay = page.context.new_page()
    replay.goto(callbacks[0])
    assert_failure_page(replay, STATE_LOST)
    assert listed_ids(host.api) == [result["authId"]]
