"""Connector variants (service environments): their values in every URL, their own OAuth apps.

Two test connectors beside the usual ones: ``sandbox-regions`` (an API key whose ``validate``
path comes from the variant) and ``sandbox-oauth-variants`` (OAuth 2 whose every endpoint's path
comes from the variant; only the ``sandbox`` variant points at the sandbox provider). SQLite and
PostgreSQL (the ``api`` fixture).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from authbridge.connectors.registry import Registry
from authbridge.http import EgressPolicy, OutboundClient
from authbridge.refresh.service import Refresher
from authbridge.services.bridge import Bridge
from tests.support.api_calls import assert_problem
from tests.support.app import SANDBOX_KEY, Api
from tests.support.loopback import port_of
from tests.support.oauth_steps import consent, result_of, start

HOST_ORIGIN = "http://host.example.test"
REGIONS = "sandbox-regions"
OAUTH = "sandbox-oauth-variants"

REGIONS_AUTH = """
type: api_key
definition:
  auth:
    api_key: {type: password, name: API key}
  validate:
    url: http://127.0.0.1:$PORT/{{area}}/me
    headers: {x-api-key: "{{api_key}}"}
"""
REGIONS_MANIFEST = """
key: sandbox-regions
variants:
  live: {label: Live, values: {area: apikey}}
  broken: {label: Broken, values: {area: nowhere}}
"""
OAUTH_AUTH = """
type: oauth2
definition:
  auth_url: http://127.0.0.1:$PORT/{{area}}/authorize
  request_access_token: http://127.0.0.1:$PORT/{{area}}/token
  validate_access_token: http://127.0.0.1:$PORT/{{area}}/me
  request_profile_info: http://127.0.0.1:$PORT/{{area}}/me
  account_name_from_profile_info: email
  scope: [profile]
  scope_delimiter: " "
  issuer: http://127.0.0.1:8400
  issuer_required: true
"""
OAUTH_MANIFEST = """
key: sandbox-oauth-variants
variants:
  production: {values: {area: production}}
  sandbox: {values: {area: oauth2}}
"""


@pytest.fixture
def variants(api: Api, api_connectors: Path, tmp_path: Path, sandbox_url: str) -> Api:
    """``api`` whose registry also holds the two connectors with variants."""
    port = str(port_of(sandbox_url))
    for folder, auth, manifest in (
        ("regions", REGIONS_AUTH, REGIONS_MANIFEST),
        ("oauth-variants", OAUTH_AUTH, OAUTH_MANIFEST),
    ):
        target = tmp_path / "sandbox" / folder
        target.mkdir(parents=True)
        (target / "auth.yaml").write_text(auth.replace("$PORT", port), encoding="utf-8")
        (target / "manifest.yaml").write_text(manifest, encoding="utf-8")
    api.bridge.registry = Registry.load([api_connectors, tmp_path], include_catalog=False)
    return api


def post_import(api: Api, **body: Any) -> httpx.Response:
    return api.call(
        "POST", "/v1/authentications", json={"connector": REGIONS, "external_user_id": "u"} | body
    )


def test_the_variant_values_fill_the_validate_url(variants: Api) -> None:
    default = post_import(variants, fields={"api_key": SANDBOX_KEY})
    assert default.status_code == 201, default.text
    assert default.json()["connector_variant"] is None
    named_default = post_import(variants, variant="live", fields={"api_key": SANDBOX_KEY})
    assert named_default.status_code == 201, named_default.text
    assert named_default.json()["connector_variant"] is None

    # The broken variant's path does not exist at the provider: its validate cannot pass.
    refused = post_import(variants, variant="broken", fields={"api_key": SANDBOX_KEY})
    assert_problem(refused, 422, "credentials_rejected")
    assert SANDBOX_KEY not in refused.text
    skipped = post_import(
        variants, variant="broken", fields={"api_key": SANDBOX_KEY}, validate=False
    )
    assert skipped.status_code == 201, skipped.text
    assert skipped.json()["connector_variant"] == "broken"


def test_an_unknown_variant_names_the_valid_ones(variants: Api) -> None:
    refused = post_import(variants, variant="staging", fields={"api_key": SANDBOX_KEY})
    problem = assert_problem(refused, 422, "invalid_input")
    assert problem["field"] == "variant"
    assert "staging" in problem["detail"]
    assert "live, broken" in problem["detail"]
    plain = post_import(
        variants, connector="sandbox-apikey", variant="live", fields={"api_key": SANDBOX_KEY}
    )
    assert "declares no variants" in assert_problem(plain, 422, "invalid_input")["detail"]
    session = variants.call(
        "POST",
        "/v1/connect/sessions",
        json={"external_user_id": "u", "connector": REGIONS, "variant": "staging"},
    )
    assert assert_problem(session, 422, "invalid_input")["field"] == "variant"


def test_each_variant_has_its_own_configuration(variants: Api) -> None:
    path = f"/v1/connector-configs/{OAUTH}"
    put = variants.call("PUT", path, params={"variant": "sandbox"}, json={"client_id": "sb"})
    assert put.status_code == 200, put.text
    assert put.json()["variant"] == "sandbox"
    assert_problem(variants.call("GET", path), 404, "not_found")
    assert variants.call("GET", path, params={"variant": "sandbox"}).json()["client_id"] == "sb"

    production = variants.call("PUT", path, json={"client_id": "prod"})
    assert production.json()["variant"] is None
    # The default variant by name is the same configuration as no variant.
    named = variants.call("GET", path, params={"variant": "production"}).json()
    assert named["client_id"] == "prod"
    listed = [
        (c["connector"], c["variant"]) for c in variants.call("GET", "/v1/connector-configs").json()
    ]
    assert listed == [(OAUTH, None), (OAUTH, "sandbox")]

    unknown = variants.call("PUT", path, params={"variant": "qa"}, json={"client_id": "x"})
    assert "production, sandbox" in assert_problem(unknown, 422, "invalid_input")["detail"]
    deleted = variants.call("DELETE", path, params={"variant": "sandbox"})
    assert deleted.status_code == 204
    assert variants.call("GET", path).json()["client_id"] == "prod"


def test_an_oauth_connect_uses_the_variants_app_and_hosts(variants: Api) -> None:
    path = f"/v1/connector-configs/{OAUTH}"
    variants.call("PUT", path, json={"client_id": "prod-client", "client_secret": "prod-secret"})
    sandbox_app = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    assert variants.call("PUT", path, params={"variant": "sandbox"}, json=sandbox_app).is_success

    def open_session(**extra: Any) -> str:
        body = {"external_user_id": "u", "connector": OAUTH, "origin": HOST_ORIGIN} | extra
        response = variants.call("POST", "/v1/connect/sessions", json=body)
        assert response.status_code == 201, response.text
        url: str = response.json()["url"]
        return url

    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        production = start(browser, open_session())
    assert urlsplit(production).path == "/production/authorize"
    assert dict(parse_qsl(urlsplit(production).query))["client_id"] == "prod-client"

    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        authorize = start(browser, open_session(variant="sandbox"))
        assert urlsplit(authorize).path == "/oauth2/authorize"
        assert dict(parse_qsl(urlsplit(authorize).query))["client_id"] == "sandbox-client"
        result = result_of(browser.get(consent(browser, authorize)))
    auth = variants.call("GET", f"/v1/authentications/{result['authId']}").json()
    assert auth["connector_variant"] == "sandbox"
    read = variants.call("GET", f"/v1/authentications/{result['authId']}/credentials")
    assert read.status_code == 200, read.text
    first_token = read.json()["credentials"]["access_token"]
    assert first_token

    # A refresh goes to the sandbox variant's token URL with the sandbox variant's client
    # (the production variant's URL does not exist at the provider).
    outcome = asyncio.run(refresh(variants.bridge, result["authId"]))
    assert outcome.kind == "refreshed", outcome
    again = variants.call("GET", f"/v1/authentications/{result['authId']}/credentials").json()
    assert again["credentials"]["access_token"] != first_token


async def refresh(bridge: Bridge, auth_id: str) -> Any:
    """Force a refresh in this test's own event loop, with an outbound client of its own."""
    async with OutboundClient(EgressPolicy(allow_loopback=True), timeout=5) as http:
        return await Refresher(dataclasses.replace(bridge, http=http)).refresh(auth_id, force=True)


def test_a_variant_without_its_own_oauth_app_is_not_configured(variants: Api) -> None:
    path = f"/v1/connector-configs/{OAUTH}"
    variants.call("PUT", path, json={"client_id": "prod-client", "client_secret": "prod-secret"})
    body = {
        "external_user_id": "u",
        "connector": OAUTH,
        "origin": HOST_ORIGIN,
        "variant": "sandbox",
    }
    url = variants.call("POST", "/v1/connect/sessions", json=body).json()["url"]
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        assert browser.get(url).status_code == 200
        started = browser.post(url + "/oauth")
    assert started.status_code == 503, started.text
    assert "client id is missing" in started.text


def test_the_import_template_names_the_variant_to_send(variants: Api) -> None:
    path = f"/v1/connectors/{REGIONS}/import-template"
    assert variants.call("GET", path).json()["variant"] == "live"
    template = variants.call("GET", path, params={"variant": "broken"}).json()
    assert template["variant"] == "broken"
    template |= {"external_user_id": "u", "name": "Broken", "fields": {"api_key": SANDBOX_KEY}}
    created = variants.call("POST", "/v1/authentications", json=template | {"validate": False})
    assert created.status_code == 201, created.text
    assert created.json()["connector_variant"] == "broken"
    listed = variants.call("GET", f"/v1/connectors/{REGIONS}").json()
    assert listed["variants"] == ["live", "broken"]
