"""Several versions of one connector side by side: each authentication keeps its own version.

A test folder holds ``sandbox-versioned`` version 1 (an API key) at ``sandbox/versioned/`` and,
once added, version 2 (the API key plus a required account id) at ``sandbox/versioned/v2/``,
both validated by the sandbox provider. SQLite and PostgreSQL (the ``api`` fixture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge.connectors.registry import Registry
from tests.support.api_calls import assert_problem
from tests.support.app import SANDBOX_KEY, Api
from tests.support.loopback import port_of

KEY = "sandbox-versioned"
HOST_ORIGIN = "http://host.example.test"

V1 = """
type: api_key
definition:
  auth:
    api_key: {type: password, name: API key}
  validate:
    url: http://127.0.0.1:$PORT/apikey/me
    headers: {x-api-key: "{{api_key}}"}
"""
V2 = """
type: api_key
definition:
  auth:
    api_key: {type: password, name: API key}
    account_id: {name: Account ID}
  validate:
    url: http://127.0.0.1:$PORT/apikey/me
    headers: {x-api-key: "{{api_key}}", x-account: "{{account_id}}"}
"""


def write_version(root: Path, folder: str, version: str, auth: str, port: int) -> None:
    target = root / "sandbox" / folder
    target.mkdir(parents=True, exist_ok=True)
    (target / "auth.yaml").write_text(auth.replace("$PORT", str(port)), encoding="utf-8")
    manifest = f'key: {KEY}\nlabel: Versioned\nversion: "{version}"\n'
    (target / "manifest.yaml").write_text(manifest, encoding="utf-8")


@pytest.fixture
def versions(api: Api, tmp_path: Path, sandbox_url: str) -> Api:
    """``api`` whose registry also holds ``sandbox-versioned`` version 1 only."""
    write_version(tmp_path, "versioned", "1", V1, port_of(sandbox_url))
    api.bridge.registry = Registry.load([tmp_path], include_catalog=False)
    return api


def add_v2(api: Api, root: Path, sandbox_url: str) -> None:
    """Publish version 2 beside version 1 (as a host's deploy reloads its folder)."""
    write_version(root, "versioned/v2", "2", V2, port_of(sandbox_url))
    api.bridge.registry = Registry.load([root], include_catalog=False)


def post_import(api: Api, **body: Any) -> httpx.Response:
    return api.call(
        "POST", "/v1/authentications", json={"connector": KEY, "external_user_id": "u"} | body
    )


def test_an_auth_imported_on_v1_keeps_working_after_v2_is_added(
    versions: Api, tmp_path: Path, sandbox_url: str
) -> None:
    api = versions
    created = post_import(api, fields={"api_key": SANDBOX_KEY})
    assert created.status_code == 201, created.text
    auth = created.json()
    assert auth["connector_version"] == "1"

    add_v2(api, tmp_path, sandbox_url)
    assert [c.version for c in api.bridge.registry.versions(KEY)] == ["1", "2"]

    read = api.call("GET", f"/v1/authentications/{auth['id']}/credentials")
    assert read.status_code == 200, read.text
    assert read.json()["credentials"] == {"api_key": SANDBOX_KEY}

    # Reconnecting shows and validates version 1's form (v2 would demand an account id).
    body = {
        "external_user_id": "u",
        "connector": KEY,
        "authentication_id": auth["id"],
        "origin": HOST_ORIGIN,
    }
    opened = api.call("POST", "/v1/connect/sessions", json=body)
    assert opened.status_code == 201, opened.text
    url = opened.json()["url"]
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200, page.text
    assert "Account ID" not in page.text
    form = {"action": "connect", "field.api_key": "sk_sandbox_rotated"}
    done = httpx.post(url, data=form, timeout=10)
    assert done.status_code == 200, done.text
    assert "data-result" in done.text
    after = api.call("GET", f"/v1/authentications/{auth['id']}").json()
    assert after["connector_version"] == "1"
    read = api.call("GET", f"/v1/authentications/{auth['id']}/credentials").json()
    assert read["credentials"] == {"api_key": "sk_sandbox_rotated"}


def test_a_new_import_without_version_uses_the_newest(
    versions: Api, tmp_path: Path, sandbox_url: str
) -> None:
    add_v2(versions, tmp_path, sandbox_url)
    missing = post_import(versions, fields={"api_key": SANDBOX_KEY})
    problem = assert_problem(missing, 422, "invalid_input")
    assert problem["field"] == "account_id"
    created = post_import(versions, fields={"api_key": SANDBOX_KEY, "account_id": "acme"})
    assert created.status_code == 201, created.text
    assert created.json()["connector_version"] == "2"


def test_a_v1_import_with_the_field_v2_added_is_refused_by_name(
    versions: Api, tmp_path: Path, sandbox_url: str
) -> None:
    add_v2(versions, tmp_path, sandbox_url)
    for validate in (True, False):
        refused = post_import(
            versions,
            version="1",
            fields={"api_key": SANDBOX_KEY, "account_id": "acme"},
            validate=validate,
        )
        problem = assert_problem(refused, 422, "invalid_input")
        assert problem["field"] == "account_id"
        assert "account_id" in problem["detail"]
        assert SANDBOX_KEY not in refused.text
    accepted = post_import(versions, version="1", fields={"api_key": SANDBOX_KEY})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["connector_version"] == "1"


def test_importing_an_unknown_version_names_the_available_ones(
    versions: Api, tmp_path: Path, sandbox_url: str
) -> None:
    add_v2(versions, tmp_path, sandbox_url)
    refused = post_import(versions, version="3", fields={"api_key": SANDBOX_KEY})
    problem = assert_problem(refused, 404, "connector_not_found")
    assert "versions: 1, 2" in problem["detail"]
    assert versions.call("GET", "/v1/authentications").json()["items"] == []
