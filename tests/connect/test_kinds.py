"""Connect pages for connectors that are neither forms nor redirects, and on_connected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.connect.test_pages import get, listed_ids, open_session, post, success_of
from tests.support.app import SANDBOX_KEY, Api


def test_client_credentials_connect_with_one_button(api: Api) -> None:
    secrets = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    api.call("PUT", "/v1/connector-configs/sandbox-cc", json=secrets).raise_for_status()
    url = open_session(api, connector="sandbox-cc")

    page = get(url)
    assert 'name="action" value="connect"' in page.text
    assert "/oauth" not in page.text
    result, _ = success_of(post(url, {"action": "connect"}))

    credentials = api.call("GET", f"/v1/authentications/{result['authId']}/credentials").json()
    assert credentials["credentials"]["access_token"]
    assert credentials["expires_at"] is not None


def test_on_connected_runs_after_the_store_with_the_authentication(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "hooked.txt"
    monkeypatch.setenv("SANDBOX_HOOKED_RECORD", str(record))
    url = open_session(api, connector="sandbox-hooked")
    result, _ = success_of(post(url, {"action": "connect", "field.api_key": SANDBOX_KEY}))
    assert listed_ids(api) == [result["authId"]]
    assert record.read_text() == result["authId"]


def test_a_reconnect_whose_on_connected_fails_keeps_the_account(api: Api) -> None:
    url = open_session(api, connector="sandbox-hooked")
    result, _ = success_of(post(url, {"action": "connect", "field.api_key": SANDBOX_KEY}))
    again = open_session(api, connector="sandbox-hooked", authentication_id=result["authId"])
    refused = post(again, {"action": "connect", "field.api_key": SANDBOX_KEY + "_closed"})
    assert "on_connected failed: this workspace is closed" in refused.text
    assert listed_ids(api) == [result["authId"]]


def test_a_failing_on_connected_stores_nothing(api: Api) -> None:
    url = open_session(api, connector="sandbox-hooked")
    refused = post(url, {"action": "connect", "field.api_key": SANDBOX_KEY + "_closed"})
    assert "on_connected failed: this workspace is closed" in refused.text
    assert listed_ids(api) == []
    assert get(url).status_code == 200  # the link is still usable
    result, _ = success_of(post(url, {"action": "connect", "field.api_key": SANDBOX_KEY}))
    assert listed_ids(api) == [result["authId"]]
