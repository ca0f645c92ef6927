"""The configuration wizard and edit links end to end in Chromium, the host page on another
origin.

The host page (``tests/support/host_page.py``) loads ``/static/authbridge.js`` from authbridge
and opens the wizard with ``AuthBridge.configure(url)`` (an edit link with
``AuthBridge.connect(url)``) on a click. The end user picks an existing account for one slot,
connects a new one for the other through the reused connect page, fills the settings form, and
the host page receives the new instance's id; an edit link reconnects an account in place; an
OAuth edit link with ``skipAuthSettings`` goes straight to the sandbox provider's consent page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from playwright.sync_api import Page, Route

from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from tests.support.api_calls import import_key

# The API tests' running server (on SQLite and PostgreSQL) and its sandbox provider.
from tests.support.app import SANDBOX_KEY, Api
from tests.support.host_page import HostPage, host_page
from tests.support.sandbox_grants import CLIENT
from tests.support.wizard_steps import auth_values_of, instance, two_slot_solution

pytestmark = pytest.mark.browser


@dataclass
class Host:
    """The host page, and the authbridge server whose wizard and edit links it opens."""

    api: Api
    page: HostPage

    @property
    def url(self) -> str:
        return self.page.url

    def code(self) -> str:
        body = {"external_user_id": "user-1", "origin": self.url}
        response = self.api.call("POST", "/v1/authorization-codes", json=body)
        assert response.status_code == 201, response.text
        code: str = response.json()["code"]
        return code

    def open(
        self, page: Page, link: str, method: Literal["connect", "configure"] = "configure"
    ) -> Page:
        """Load the host page for ``link`` and click its button; return the popup."""
        self.page.url_to_open, self.page.method = link, method
        page.goto(self.url + "/")
        with page.expect_popup() as opened:
            page.click("#connect")
        popup = opened.value
        popup.wait_for_load_state()
        return popup


@pytest.fixture
def host(api: Api) -> Iterator[Host]:
    with host_page(api.url) as page:
        yield Host(api, page)


def offline_images(page: Page) -> None:
    """The test connector's button image is on a host that does not exist: fail it at once."""

    def abort(route: Route) -> None:
        route.abort()

    page.context.route("https://static.example.test/**", abort)


def received(page: Page) -> dict[str, Any]:
    page.wait_for_function("document.getElementById('result').textContent !== ''")
    assert page.text_content("#error") == ""
    result: dict[str, Any] = json.loads(page.text_content("#result") or "")
    return result


def test_the_wizard_creates_an_enabled_instance_and_hands_its_id_to_the_host(
    page: Page, host: Host
) -> None:
    offline_images(page)
    existing = import_key(host.api)
    solution_id = two_slot_solution(host.api)
    link = f"{host.api.url}/external/solutions/default/{solution_id}?code={host.code()}"
    popup = host.open(page, link)

    popup.get_by_role("heading", name="Choose your Forms account").wait_for()
    popup.get_by_role("button", name=existing["name"]).click()

    popup.get_by_role("heading", name="Choose your Sheets account").wait_for()
    assert popup.get_by_role("button", name=existing["name"]).count() == 0  # force-unique
    popup.get_by_role("button", name="Connect a new account").click()
    popup.get_by_label("API key").fill(SANDBOX_KEY)
    popup.get_by_role("button", name="Connect account").click()

    popup.get_by_role("heading", name="Settings").wait_for()
    assert popup.get_by_label("Sheet").input_value() == "leads"  # the default, prefilled
    popup.get_by_label("Batch size").fill("many")
    popup.get_by_role("button", name="Finish").click()
    popup.get_by_text("enter a whole number").wait_for()
    popup.get_by_label("Batch size").fill("25")
    popup.get_by_label("Mode").select_option(label="replace")
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Finish").click()

    result = received(page)
    created = instance(host.api, result["solutionInstanceId"])
    assert created["enabled"] is True
    values = auth_values_of(created)
    assert values["source"] == existing["id"]
    assert values["target"] not in (existing["id"], values["shared"])


def test_an_edit_link_reconnects_an_account_in_place(page: Page, host: Host) -> None:
    offline_images(page)
    solution_id = two_slot_solution(host.api)
    auth = import_key(host.api)
    with host.api.bridge.session() as session:
        master = Principal(environment_id=host.api.environment_id, actor="test")
        used_by = solutions.create_instance(
            host.api.bridge,
            session,
            master,
            solution_id=solution_id,
            end_user_id=solutions.end_user_id_for(session, master, "user-1"),
            name="mine",
            auth_values={"source": auth["id"]},
        ).id
    link = (
        f"{host.api.url}/external/auth/edit/default/{auth['id']}?code={host.code()}"
        "&skipTitleField=true"
    )
    popup = host.open(page, link, method="connect")

    popup.get_by_role("heading", name=f"Reconnect {auth['name']}").wait_for()
    assert popup.get_by_label("Name").count() == 0  # skipTitleField
    popup.get_by_label("API key").fill(SANDBOX_KEY)
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Reconnect account").click()

    assert received(page) == {"authId": auth["id"], "connector": "sandbox-apikey"}
    assert auth_values_of(instance(host.api, used_by))["source"] == auth["id"]
    listed = host.api.call("GET", "/v1/authentications").json()["items"]
    assert sorted(item["id"] for item in listed if item["external_user_id"] == "user-1") == [
        auth["id"]
    ]


def test_an_oauth_edit_link_with_skip_auth_settings_goes_straight_to_consent(
    page: Page,
    host: Host,
    sandbox_url: str,
) -> None:
    configured = host.api.call("PUT", "/v1/connector-configs/sandbox-oauth2", json=CLIENT)
    assert configured.is_success, configured.text
    body = {
        "external_user_id": "user-1",
        "connector": "sandbox-oauth2",
        "tokens": {"access_token": "stale", "scope": "profile email"},
        "scopes": ["profile", "email"],
        "validate": False,
    }
    auth = host.api.call("POST", "/v1/authentications", json=body).json()
    link = (
        f"{host.api.url}/external/auth/edit/default/{auth['id']}?code={host.code()}"
        "&skipTitleField=true&skipAuthSettings=true"
    )
    popup = host.open(page, link, method="connect")

    popup.get_by_role("heading", name="Authorize access").wait_for()
    assert popup.url.startswith(sandbox_url + "/oauth2/authorize?")
    assert popup.get_by_text("email", exact=True).count() == 1  # the auth's scopes, asked again
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Approve").click()

    assert received(page) == {"authId": auth["id"], "connector": "sandbox-oauth2"}
    credentials = host.api.call("GET", f"/v1/authentications/{auth['id']}/credentials").json()
    assert credentials["credentials"]["access_token"] != "stale"
