"""README.md's tour step 11, as written, in Chromium: the reference's Forms-to-Sheets scenario.

A host applies ``examples/solutions/sandbox-quickstart.yaml``, configures the sandbox's OAuth 2
client (step 7), imports the end user's form-tool account, and opens the configuration wizard
from its own page with ``AuthBridge.configure(url)``. The end user picks the imported account,
connects a new sandbox OAuth 2 account through the consent page, fills the three settings and
finishes; the host reads the enabled instance back through the README's GraphQL query with a
user token, and the new account works through the proxy (step 10).

Two stand-ins, both for the README's own: ``authbridge solutions apply`` needs the server's
database, so the YAML file is sent to its REST twin, ``PUT /v1/solutions/{key}``; and the
connectors are the bundled catalog's sandbox definitions (those ``make run`` serves), pointed at
the test's sandbox instead of port 8400 (the sandbox still names itself ``127.0.0.1:8400``, the
issuer those definitions expect).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from playwright.sync_api import Page

import authbridge
from tests.browser.test_oauth_popup import CLIENTS, SANDBOX_EMAIL
from tests.support.api_calls import user_token

# The API tests' running server (on SQLite and PostgreSQL) and its sandbox provider.
from tests.support.app import Api
from tests.support.host_page import HostPage, host_page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "solutions" / "sandbox-quickstart.yaml"
CATALOG_SANDBOX = Path(authbridge.__file__).resolve().parent / "catalog" / "sandbox"
README_SANDBOX = "http://127.0.0.1:8400/"
USER = "user-42"
FORMS_KEY = "sk_sandbox_forms"
MAPPING_QUERY = (
    "{ viewer { solutionInstances { edges { node { id name enabled authValues { externalId authId }"
    " configValues { externalId value } } } } authentications { edges { node { id name } } } } }"
)


@pytest.fixture(scope="session")
def api_connectors(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_url: str,
) -> Path:
    """The catalog's sandbox connectors, their endpoints on the test's sandbox (replaces the
    API tests' own connectors for the ``api`` fixture of this module)."""
    target = tmp_path_factory.mktemp("readme-connectors") / "sandbox"
    for source in sorted(CATALOG_SANDBOX.rglob("*.yaml")):
        text = source.read_text(encoding="utf-8")
        destination = target / source.relative_to(CATALOG_SANDBOX)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text.replace(README_SANDBOX, sandbox_url + "/"), encoding="utf-8")
    rendered = (target / "oauth2" / "auth.yaml").read_text(encoding="utf-8")
    assert sandbox_url + "/oauth2/authorize" in rendered
    assert "issuer: http://127.0.0.1:8400\n" in rendered
    return target.parent


def call(api: Api, method: str, path: str, status: int, **kw: Any) -> Any:
    """``api.call`` expecting ``status``; the JSON answer."""
    response = api.call(method, path, **kw)
    assert response.status_code == status, f"{method} {path}: {response.text}"
    return response.json()


def test_the_readme_scenario_runs_from_apply_to_graphql_mapping(
    page: Page,
    api: Api,
    sandbox_url: str,
) -> None:
    # authbridge solutions apply examples/solutions/sandbox-quickstart.yaml
    spec = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    applied = call(api, "PUT", f"/v1/solutions/{spec['key']}", 200, json=spec)
    assert applied["created"] is True
    solution_id = applied["solution"]["id"]
    # Step 7: authbridge connector-config set sandbox-oauth2 --client-id … --client-secret …
    configured = api.call(
        "PUT", "/v1/connector-configs/sandbox-oauth2", json=CLIENTS["sandbox-oauth2"]
    )
    assert configured.is_success, configured.text
    # The README's curl: import the end user's form-tool account, checked with the provider.
    imported = call(
        api,
        "POST",
        "/v1/authentications",
        201,
        json={
            "connector": "sandbox-apikey",
            "external_user_id": USER,
            "fields": {"api_key": FORMS_KEY},
        },
    )

    with host_page(api.url) as host:
        code = call(
            api,
            "POST",
            "/v1/authorization-codes",
            201,
            json={"external_user_id": USER, "origin": host.url},
        )["code"]
        host.url_to_open = f"{api.url}/external/solutions/default/{spec['key']}?code={code}"
        host.method = "configure"
        result = run_wizard(page, host, imported["name"], sandbox_url)

    instance_id = result["solutionInstanceId"]
    assert list(result) == ["solutionInstanceId"]
    instance = call(api, "GET", f"/v1/solution-instances/{instance_id}", 200)
    assert instance["enabled"] is True
    assert instance["solution"]["id"] == solution_id
    auth_values = {item["externalId"]: item["authId"] for item in instance["authValues"]}
    assert auth_values["external_forms_authentication"] == imported["id"]
    sheets_auth = auth_values["external_sheets_authentication"]
    assert sheets_auth != imported["id"]

    # The README's GraphQL mapping query, with a user token.
    mapping = call(
        api,
        "POST",
        "/graphql",
        200,
        json={"query": MAPPING_QUERY},
        headers={"Authorization": f"Bearer {user_token(api, USER)}"},
    )
    assert "errors" not in mapping, mapping
    viewer = mapping["data"]["viewer"]
    [node] = [edge["node"] for edge in viewer["solutionInstances"]["edges"]]
    assert node["id"] == instance_id
    assert node["enabled"] is True
    assert sorted(node["authValues"], key=lambda item: item["externalId"]) == [
        {"externalId": "external_forms_authentication", "authId": imported["id"]},
        {"externalId": "external_sheets_authentication", "authId": sheets_auth},
    ]
    assert {item["externalId"]: item["value"] for item in node["configValues"]} == {
        "external_spreadsheet_id": json.dumps("sheet_2026-Q4"),
        "external_form_id": json.dumps("contact form"),
        "external_sheet_name": '"leads"',
    }
    accounts = {
        edge["node"]["id"]: edge["node"]["name"] for edge in viewer["authentications"]["edges"]
    }
    assert accounts == {imported["id"]: imported["name"], sheets_auth: SANDBOX_EMAIL}

    # Step 10: the new OAuth 2 account works at the provider through the proxy.
    me = call(api, "GET", f"/v1/proxy/{sheets_auth}/me", 200)
    assert me["email"] == SANDBOX_EMAIL


def run_wizard(
    page: Page,
    host: HostPage,
    imported_name: str,
    provider_url: str,
) -> dict[str, Any]:
    """The end user's part: open the wizard from the host page, pick, connect, fill, finish;
    the result the host page received."""
    page.goto(host.url + "/")
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.wait_for_load_state()

    popup.get_by_role("heading", name="Choose your Form tool account").wait_for()
    popup.get_by_role("button", name=imported_name).click()

    popup.get_by_role("heading", name="Choose your Spreadsheet account").wait_for()
    popup.get_by_role("button", name="Connect a new account").click()
    popup.get_by_role("button", name="Connect with Sandbox (OAuth 2)").click()
    popup.get_by_role("heading", name="Authorize access").wait_for()
    assert popup.url.startswith(provider_url + "/oauth2/authorize?")
    assert parse_qs(urlsplit(popup.url).query)["scope"] == ["profile"]  # the slot's scopes
    popup.get_by_role("button", name="Approve").click()

    popup.get_by_role("heading", name="Settings").wait_for()
    assert popup.get_by_label("Sheet name").input_value() == "leads"  # the default, prefilled
    popup.get_by_label("Spreadsheet ID").fill("sheet_2026-Q4")
    popup.get_by_label("Form ID").fill("contact form")
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Finish").click()

    page.wait_for_function("document.getElementById('result').textContent !== ''")
    assert page.text_content("#error") == ""
    result: dict[str, Any] = json.loads(page.text_content("#result") or "")
    return result
