"""The connect popup end to end in Chromium: a host page on one origin, authbridge on another.

The host page loads ``/static/authbridge.js`` from authbridge and calls
``AuthBridge.connect(url)`` on a click; the connect page opens in a popup, the end user fills
in the API-key form, and the promise resolves with ``{authId, connector}`` posted by the success
page to the host's exact origin (or rejects when the popup is closed without a result).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, Route

# The API tests' running server (on SQLite and PostgreSQL) and its sandbox provider.
from tests.support.app import SANDBOX_KEY, Api
from tests.support.host_page import HostPage, host_page

pytestmark = pytest.mark.browser


@dataclass
class Host:
    """The host page, and the authbridge server its button opens connect links of."""

    api: Api
    page: HostPage

    @property
    def url(self) -> str:
        return self.page.url

    def open_session(self) -> None:
        body = {
            "external_user_id": "user-1",
            "connector": "sandbox-apikey",
            "origin": self.url,
        }
        response = self.api.call("POST", "/v1/connect/sessions", json=body)
        assert response.status_code == 201, response.text
        self.page.url_to_open = response.json()["url"]


@pytest.fixture
def host(api: Api) -> Iterator[Host]:
    with host_page(api.url) as page:
        yield Host(api, page)


def offline_images(page: Page) -> None:
    """The test connector's button image is on a host that does not exist: fail it at once."""

    def abort(route: Route) -> None:
        route.abort()

    page.context.route("https://static.example.test/**", abort)


def test_the_popup_connects_an_account_and_hands_it_to_the_host(page: Page, host: Host) -> None:
    offline_images(page)
    host.open_session()
    page.goto(host.url + "/")
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_label("API key").fill(SANDBOX_KEY)
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Connect account").click()

    page.wait_for_function("document.getElementById('result').textContent !== ''")
    result = json.loads(page.text_content("#result") or "")
    assert result["connector"] == "sandbox-apikey"
    assert page.text_content("#error") == ""
    listed = host.api.call("GET", "/v1/authentications").json()["items"]
    assert [item["id"] for item in listed] == [result["authId"]]


def test_a_wrong_key_shows_the_provider_message_in_the_popup(page: Page, host: Host) -> None:
    offline_images(page)
    host.open_session()
    page.goto(host.url + "/")
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_label("API key").fill("sk_wrong_0123456789")
    popup.get_by_role("button", name="Connect account").click()

    alert = popup.get_by_role("alert")
    alert.wait_for()
    assert "Connecting account failed" in (alert.text_content() or "")
    assert "Invalid API key" in (alert.text_content() or "")
    assert popup.get_by_label("API key").input_value() == ""

    popup.close()
    page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "closed before an account was connected" in (page.text_content("#error") or "")
    assert page.text_content("#result") == ""
    assert host.api.call("GET", "/v1/authentications").json()["items"] == []
